namespace Billing.Invoices;

/// <summary>What an invoice line charges or credits.</summary>
public enum InvoiceLineKind
{
    /// <summary>The plan's charge for a period (price × quantity).</summary>
    Plan = 0,

    /// <summary>A metered usage charge for a period.</summary>
    Usage = 1,

    /// <summary>Unused time on the old price after a change (negative).</summary>
    ProrationCredit = 2,

    /// <summary>Remaining time on the new price after a change (positive).</summary>
    ProrationDebit = 3,

    /// <summary>A one-off charge or credit added by hand.</summary>
    Adjustment = 4,

    /// <summary>A coupon's discount (negative). Added by <see cref="InvoiceCalculator"/>.</summary>
    Discount = 5,

    /// <summary>Tax at one rate. Added by <see cref="InvoiceCalculator"/>.</summary>
    Tax = 6,
}
