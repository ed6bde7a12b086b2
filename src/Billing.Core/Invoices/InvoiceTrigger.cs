namespace Billing.Invoices;

/// <summary>What can happen to an invoice; <see cref="InvoiceStateMachine"/> says where each leads.</summary>
public enum InvoiceTrigger
{
    /// <summary>Assign a number and freeze the lines.</summary>
    Finalize = 0,

    /// <summary>The amount due was paid (by the gateway, by credit, or manually).</summary>
    Pay = 1,

    /// <summary>Cancel the invoice; nothing is owed.</summary>
    Void = 2,

    /// <summary>Write the invoice off.</summary>
    MarkUncollectible = 3,
}
