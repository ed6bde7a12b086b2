namespace Billing.Proration;

/// <summary>What happens to the proration of a mid-period change (Stripe's <c>proration_behavior</c>).</summary>
public enum ProrationBehavior
{
    /// <summary>Compute the credit and debit lines and add them to the next invoice (the default).</summary>
    CreateProrations = 0,

    /// <summary>Compute the credit and debit lines and invoice them immediately.</summary>
    AlwaysInvoice = 1,

    /// <summary>No proration: the change takes effect without credit or debit.</summary>
    None = 2,
}
