namespace Billing.Pricing;

/// <summary>An amount per package of <see cref="PackageSize"/> units; a partial package costs a whole one.</summary>
/// <remarks>
/// With 10 units per package at 5.00: 0 units cost 0.00, 1 to 10 units cost 5.00, 11 units cost 10.00.
/// </remarks>
public sealed class PackagePrice : Price
{
    /// <summary>Creates a package price.</summary>
    /// <param name="packageAmount">The amount per package, zero or more.</param>
    /// <param name="packageSize">Units per package, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">A negative amount or a package size below 1.</exception>
    public PackagePrice(Money packageAmount, long packageSize)
        : base(packageAmount.Currency)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(packageSize, 1);
        NonNegative(packageAmount.MinorUnits, nameof(packageAmount));
        PackageAmount = packageAmount;
        PackageSize = packageSize;
    }

    /// <summary>The amount per package.</summary>
    public Money PackageAmount { get; }

    /// <summary>Units per package.</summary>
    public long PackageSize { get; }

    /// <inheritdoc />
    public override PriceModel Model => PriceModel.Package;

    /// <summary>How many packages a quantity needs: the quantity divided by the package size, rounded up.</summary>
    /// <param name="quantity">Units, zero or more.</param>
    /// <returns>The number of packages.</returns>
    public long PackagesFor(long quantity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        return quantity == 0 ? 0 : ((quantity - 1) / PackageSize) + 1;
    }

    private protected override long TotalMinorUnits(long quantity) => checked(PackagesFor(quantity) * PackageAmount.MinorUnits);

    private protected override void AddComponents(long quantity, List<PriceComponent> components) =>
        components.Add(Component(PriceComponentKind.Packages, -1, PackagesFor(quantity), PackageAmount.MinorUnits));
}
