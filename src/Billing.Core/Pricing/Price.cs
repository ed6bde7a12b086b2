namespace Billing.Pricing;

/// <summary>
/// A price model: a pure function from a quantity to an amount, with the breakdown that explains it.
/// The closed set of models is <see cref="FlatPrice"/>, <see cref="PerUnitPrice"/>, <see cref="GraduatedPrice"/>,
/// <see cref="VolumePrice"/> and <see cref="PackagePrice"/>.
/// </summary>
/// <remarks>
/// Prices are immutable. A quantity is a whole number of units, zero or more. Amounts are minor units of
/// <see cref="Currency"/>; arithmetic is checked, so a total that does not fit in 64 bits throws
/// <see cref="OverflowException"/>.
/// </remarks>
public abstract class Price
{
    private protected Price(Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        Currency = currency;
    }

    /// <summary>The currency of every amount this price produces.</summary>
    public Currency Currency { get; }

    /// <summary>Which pricing scheme this is.</summary>
    public abstract PriceModel Model { get; }

    /// <summary>Prices a quantity and returns the total with its breakdown.</summary>
    /// <param name="quantity">Units, zero or more.</param>
    /// <returns>The breakdown; its total is the sum of its components.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="quantity"/> is negative.</exception>
    /// <exception cref="OverflowException">The total does not fit in 64 bits.</exception>
    public PriceBreakdown Calculate(long quantity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        var components = new List<PriceComponent>(4);
        AddComponents(quantity, components);
        long total = 0;
        foreach (var component in components)
        {
            total = checked(total + component.Amount.MinorUnits);
        }

        return new PriceBreakdown(quantity, new Money(total, Currency), [.. components]);
    }

    /// <summary>Prices a quantity and returns only the total, without allocating.</summary>
    /// <param name="quantity">Units, zero or more.</param>
    /// <returns>The same total as <see cref="Calculate"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="quantity"/> is negative.</exception>
    /// <exception cref="OverflowException">The total does not fit in 64 bits.</exception>
    public Money CalculateTotal(long quantity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        return new Money(TotalMinorUnits(quantity), Currency);
    }

    private protected abstract long TotalMinorUnits(long quantity);

    private protected abstract void AddComponents(long quantity, List<PriceComponent> components);

    private protected PriceComponent Component(PriceComponentKind kind, int tier, long quantity, long unitAmount) =>
        new(kind, tier, quantity, unitAmount, new Money(checked(quantity * unitAmount), Currency));

    /// <summary>A component of a tier that covers units <paramref name="from"/> to <paramref name="upTo"/> (null: open-ended).</summary>
    private protected PriceComponent TierComponent(PriceComponentKind kind, int tier, long from, long? upTo, long quantity, long unitAmount) =>
        Component(kind, tier, quantity, unitAmount) with { TierFrom = from, TierUpTo = upTo };

    private protected static long NonNegative(long amount, string paramName) =>
        amount >= 0 ? amount : throw new ArgumentOutOfRangeException(paramName, amount, "Amounts of a price must be zero or positive minor units.");
}
