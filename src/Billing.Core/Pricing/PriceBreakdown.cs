namespace Billing.Pricing;

/// <summary>The result of pricing a quantity: the total and the lines it is made of.</summary>
/// <remarks>The total is always the exact sum of the components' amounts. Two breakdowns are equal when their
/// quantity, total and components are.</remarks>
public sealed class PriceBreakdown : IEquatable<PriceBreakdown>
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

    /// <summary>Rebuilds a breakdown from its components (for example when reading it back from storage).</summary>
    /// <param name="quantity">The quantity that was priced (zero or more).</param>
    /// <param name="currency">The currency of every component.</param>
    /// <param name="components">The components, in tier order.</param>
    /// <returns>The breakdown; its total is the sum of the components.</returns>
    /// <exception cref="ArgumentException">
    /// A negative quantity, a component with a negative quantity or unit amount, a component in another currency, or a
    /// component whose amount is not its quantity × unit amount.
    /// </exception>
    /// <exception cref="OverflowException">The total does not fit in 64 bits.</exception>
    public static PriceBreakdown FromComponents(long quantity, Currency currency, IEnumerable<PriceComponent> components)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        ArgumentNullException.ThrowIfNull(currency);
        ArgumentNullException.ThrowIfNull(components);
        PriceComponent[] list = [.. components];
        long total = 0;
        foreach (var c in list)
        {
            if (c.Quantity < 0 || c.UnitAmount < 0 || !ReferenceEquals(c.Amount.Currency, currency) || c.Amount.MinorUnits != checked(c.Quantity * c.UnitAmount))
            {
                throw new ArgumentException($"The component {c} is not quantity × unit amount in {currency.Code}.", nameof(components));
            }

            total = checked(total + c.Amount.MinorUnits);
        }

        return new PriceBreakdown(quantity, new Money(total, currency), list);
    }

    /// <inheritdoc />
    public bool Equals(PriceBreakdown? other) =>
        other is not null && (ReferenceEquals(this, other) || (Quantity == other.Quantity && Total == other.Total && Components.SequenceEqual(other.Components)));

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as PriceBreakdown);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Quantity, Total, Components.Count);
}
