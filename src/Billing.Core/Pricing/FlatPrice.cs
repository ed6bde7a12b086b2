namespace Billing.Pricing;

/// <summary>A fixed amount per period, whatever the quantity.</summary>
/// <remarks>Quantity zero costs the full amount too: a flat price is the "flat part" of a plan.</remarks>
public sealed class FlatPrice : Price
{
    /// <summary>Creates a flat price.</summary>
    /// <param name="amount">The amount, zero or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">The amount is negative.</exception>
    public FlatPrice(Money amount)
        : base(amount.Currency)
    {
        Amount = amount;
        NonNegative(amount.MinorUnits, nameof(amount));
    }

    /// <summary>The fixed amount.</summary>
    public Money Amount { get; }

    /// <inheritdoc />
    public override PriceModel Model => PriceModel.Flat;

    private protected override long TotalMinorUnits(long quantity) => Amount.MinorUnits;

    private protected override void AddComponents(long quantity, List<PriceComponent> components) =>
        components.Add(Component(PriceComponentKind.FlatFee, -1, 1, Amount.MinorUnits));
}
