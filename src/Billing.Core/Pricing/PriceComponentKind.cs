namespace Billing.Pricing;

/// <summary>What one line of a <see cref="PriceBreakdown"/> charges for.</summary>
public enum PriceComponentKind
{
    /// <summary>A fixed amount that does not depend on the quantity (a flat price, or a tier's flat fee).</summary>
    FlatFee = 0,

    /// <summary>A number of units times a unit amount.</summary>
    Units = 1,

    /// <summary>A number of packages (blocks of units) times the package amount.</summary>
    Packages = 2,
}
