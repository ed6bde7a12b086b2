namespace Billing.Pricing;

/// <summary>The pricing scheme of a <see cref="Price"/>.</summary>
public enum PriceModel
{
    /// <summary>One fixed amount per period, whatever the quantity (<see cref="FlatPrice"/>).</summary>
    Flat = 0,

    /// <summary>A unit amount times the quantity (<see cref="PerUnitPrice"/>).</summary>
    PerUnit = 1,

    /// <summary>Each unit priced in the tier it falls in (<see cref="GraduatedPrice"/>).</summary>
    Graduated = 2,

    /// <summary>All units priced at the tier the total quantity falls in (<see cref="VolumePrice"/>).</summary>
    Volume = 3,

    /// <summary>An amount per block of N units, partial blocks rounded up (<see cref="PackagePrice"/>).</summary>
    Package = 4,
}
