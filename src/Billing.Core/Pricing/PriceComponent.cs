namespace Billing.Pricing;

/// <summary>One line of a <see cref="PriceBreakdown"/>: what was charged, for how many units, at what rate.</summary>
/// <param name="Kind">What the line charges for.</param>
/// <param name="TierIndex">The zero-based tier the line belongs to, or -1 for prices without tiers.</param>
/// <param name="Quantity">Units (or packages, for <see cref="PriceComponentKind.Packages"/>) charged; 1 for a flat fee.</param>
/// <param name="UnitAmount">Minor units charged per unit, per package, or for the flat fee.</param>
/// <param name="Amount">The line's amount: <paramref name="Quantity"/> × <paramref name="UnitAmount"/>.</param>
/// <remarks>
/// Tiered prices (<see cref="GraduatedPrice"/>, <see cref="VolumePrice"/>) also give the tier's bounds in
/// <see cref="TierFrom"/> and <see cref="TierUpTo"/>; a tier with both a flat fee and units gives two components with
/// the same bounds. For a graduated price, <see cref="Quantity"/> of a units component is the quantity that fell in
/// that tier; for a volume price it is the whole quantity (all units are priced at the tier the total falls in).
/// </remarks>
public readonly record struct PriceComponent(PriceComponentKind Kind, int TierIndex, long Quantity, long UnitAmount, Money Amount)
{
    /// <summary>The first unit of the component's tier (1 for the first tier); null for prices without tiers.</summary>
    public long? TierFrom { get; init; }

    /// <summary>The last unit of the component's tier (inclusive); null for the open-ended last tier and for prices without tiers.</summary>
    public long? TierUpTo { get; init; }
}
