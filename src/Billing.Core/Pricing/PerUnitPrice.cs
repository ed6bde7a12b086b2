namespace Billing.Pricing;

/// <summary>A unit amount times the quantity (seats, API calls, gigabytes).</summary>
public sealed class PerUnitPrice : Price
{
    /// <summary>Creates a per-unit price.</summary>
    /// <param name="unitAmount">The amount per unit, zero or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">The unit amount is negative.</exception>
    public PerUnitPrice(Money unitAmount)
        : base(unitAmount.Currency)
    {
        UnitAmount = unitAmount;
        NonNegative(unitAmount.MinorUnits, nameof(unitAmount));
    }

    /// <summary>The amount per unit.</summary>
    public Money UnitAmount { get; }

    /// <inheritdoc />
    public override PriceModel Model => PriceModel.PerUnit;

    private protected override long TotalMinorUnits(long quantity) => checked(quantity * UnitAmount.MinorUnits);

    private protected override void AddComponents(long quantity, List<PriceComponent> components) =>
        components.Add(Component(PriceComponentKind.Units, -1, quantity, UnitAmount.MinorUnits));
}
