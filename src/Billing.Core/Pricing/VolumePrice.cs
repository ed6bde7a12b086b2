namespace Billing.Pricing;

/// <summary>
/// Tiered pricing where every unit is priced at the tier the total quantity falls in: with tiers 1–10 at 5.00
/// and 11+ at 4.00, 12 units cost 12 × 4.00 = 48.00.
/// </summary>
/// <remarks>
/// The tier's flat fee is added once. Quantity zero falls in the first tier and costs its flat fee only.
/// By design the total can drop when the quantity crosses into a cheaper tier (10 units above cost 50.00).
/// </remarks>
public sealed class VolumePrice : Price
{
    private readonly PriceTier[] _tiers;

    /// <summary>Creates a volume price.</summary>
    /// <param name="currency">The currency of the tier amounts.</param>
    /// <param name="tiers">The tiers, in ascending order; the last one open-ended.</param>
    /// <exception cref="ArgumentException">The tiers are empty, not ascending, not open-ended at the end, or have negative amounts.</exception>
    public VolumePrice(Currency currency, IEnumerable<PriceTier> tiers)
        : base(currency)
    {
        _tiers = PriceTier.Validate(tiers, nameof(tiers));
    }

    /// <summary>The tiers, in ascending order.</summary>
    public IReadOnlyList<PriceTier> Tiers => _tiers;

    /// <inheritdoc />
    public override PriceModel Model => PriceModel.Volume;

    /// <summary>The zero-based index of the tier a quantity falls in.</summary>
    /// <param name="quantity">Units, zero or more.</param>
    /// <returns>The first tier whose upper bound is at least <paramref name="quantity"/>.</returns>
    public int TierIndexFor(long quantity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        var i = 0;
        while (_tiers[i].UpTo is { } upTo && quantity > upTo)
        {
            i++;
        }

        return i;
    }

    private protected override long TotalMinorUnits(long quantity)
    {
        var tier = _tiers[TierIndexFor(quantity)];
        return checked(tier.FlatAmount + (quantity * tier.UnitAmount));
    }

    private protected override void AddComponents(long quantity, List<PriceComponent> components)
    {
        var index = TierIndexFor(quantity);
        var tier = _tiers[index];
        var from = index == 0 ? 1 : _tiers[index - 1].UpTo!.Value + 1;
        if (tier.FlatAmount != 0)
        {
            components.Add(TierComponent(PriceComponentKind.FlatFee, index, from, tier.UpTo, 1, tier.FlatAmount));
        }

        if (quantity > 0)
        {
            components.Add(TierComponent(PriceComponentKind.Units, index, from, tier.UpTo, quantity, tier.UnitAmount));
        }
    }
}
