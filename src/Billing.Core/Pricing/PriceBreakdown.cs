namespace Billing.Pricing;

/// <summary>The result of pricing a quantity: the total and the lines it is made of.</summary>
/// <remarks>The total is always the exact sum of the components' amounts.</remarks>
public sealed class PriceBreakdown
{
    internal PriceBreakdown(long quantity, Money total, PriceComponent[] components)
    {
        Quantity = quantity;
        Total = total;
        Components = components;
    }

    /// <summary>The quantity that was priced.</summary>
    public long Quantity { get; }

    /// <summary>The total: the exact sum of <see cref="Components"/>.</summary>
    public Money Total { get; }

    /// <summary>The lines, in tier order; a zero quantity gives only the flat fees that apply at zero.</summary>
    public IReadOnlyList<PriceComponent> Components { get; }
}
