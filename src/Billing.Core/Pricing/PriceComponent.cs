namespace Billing.Pricing;

/// <summary>One line of a <see cref="PriceBreakdown"/>: what was charged, for how many units, at what rate.</summary>
/// <param name="Kind">What the line charges for.</param>
/// <param name="TierIndex">The zero-based tier the line belongs to, or -1 for prices without tiers.</param>
/// <param name="Quantity">Units (or packages, for <see cref="PriceComponentKind.Packages"/>) charged; 1 for a flat fee.</param>
/// <param name="UnitAmount">Minor units charged per unit, per package, or for the flat fee.</param>
/// <param name="Amount">The line's amount: <paramref name="Quantity"/> × <paramref name="UnitAmount"/>.</param>
public readonly record struct PriceComponent(PriceComponentKind Kind, int TierIndex, long Quantity, long UnitAmount, Money Amount);
