namespace Billing.Proration;

/// <summary>Whether a proration line gives money back or charges it.</summary>
public enum ProrationLineKind
{
    /// <summary>Unused time on the old price, returned to the customer (amount ≤ 0).</summary>
    Credit = 0,

    /// <summary>Remaining time on the new price, charged to the customer (amount ≥ 0).</summary>
    Debit = 1,
}
