namespace Billing.Invoices;

/// <summary>The lifecycle state of an invoice.</summary>
public enum InvoiceStatus
{
    /// <summary>Being assembled: lines can change; no number yet.</summary>
    Draft = 0,

    /// <summary>Finalized: numbered, frozen, awaiting payment.</summary>
    Open = 1,

    /// <summary>Paid in full. Final.</summary>
    Paid = 2,

    /// <summary>Canceled after finalization; nothing is owed. Final.</summary>
    Void = 3,

    /// <summary>Written off as unlikely to be paid; it can still be paid or voided.</summary>
    Uncollectible = 4,
}
