namespace Billing.Pricing;

/// <summary>
/// Tiered pricing where each unit is priced in the tier it falls in: with tiers 1–10 at 5.00 and 11+ at 4.00,
/// 12 units cost 10 × 5.00 + 2 × 4.00 = 58.00.
/// </summary>
/// <remarks>
/// A tier's flat fee is charged once the quantity reaches that tier. The first tier's flat fee is always
/// charged, also for quantity zero, so a zero quantity costs exactly the first tier's flat fee (the "flat part"
/// of the price). The total never decreases as the quantity grows.
/// </remarks>
public sealed class GraduatedPrice : Price
{
    private readonly PriceTier[] _tiers;

    /// <summary>Creates a graduated price.</summary>
    /// <param name="currency">The currency of the tier amounts.</param>
    /// <param name="tiers">The tiers, in ascending order; the last one open-ended.</param>
    /// <exception cref="ArgumentException">The tiers are empty, not ascending, not open-ended at the end, or have negative amounts.</exception>
    public GraduatedPrice(Currency currency, IEnumerable<PriceTier> tiers)
        : base(currency)
    {
        _tiers = PriceTier.Validate(tiers, nameof(tiers));
    }

    /// <summary>The tiers, in ascending order.</summary>
    public IReadOnlyList<PriceTier> Tiers => _tiers;

    /// <inheritdoc />
    public override PriceModel Model => PriceModel.Graduated;

    private protected override long TotalMinorUnits(long quantity)
    {
        long total = 0;
        long previous = 0;
        for (var i = 0; i < _tiers.Length; i++)
        {
            var tier = _tiers[i];
            var units = UnitsInTier(quantity, previous, tier.UpTo);
            if (i == 0 || units > 0)
            {
                total = checked(total + tier.FlatAmount + (units * tier.UnitAmount));
            }

            if (tier.UpTo is not { } upTo || quantity <= upTo)
            {
                break;
            }

            previous = upTo;
        }

        return total;
    }

    private protected override void AddComponents(long quantity, List<PriceComponent> components)
    {
        long previous = 0;
        for (var i = 0; i < _tiers.Length; i++)
        {
            var tier = _tiers[i];
            var units = UnitsInTier(quantity, previous, tier.UpTo);
            if (i == 0 || units > 0)
            {
                if (tier.FlatAmount != 0)
                {
                    components.Add(TierComponent(PriceComponentKind.FlatFee, i, previous + 1, tier.UpTo, 1, tier.FlatAmount));
                }

                if (units > 0)
                {
                    components.Add(TierComponent(PriceComponentKind.Units, i, previous + 1, tier.UpTo, units, tier.UnitAmount));
                }
            }

            if (tier.UpTo is not { } upTo || quantity <= upTo)
            {
                break;
            }

            previous = upTo;
        }
    }

    private static long UnitsInTier(long quantity, long previousUpTo, long? upTo)
    {
        if (quantity <= previousUpTo)
        {
            return 0;
        }

        return upTo is { } bound ? Math.Min(quantity, bound) - previousUpTo : quantity - previousUpTo;
    }
}
