using Billing.Usage;

namespace Billing.Catalog;

/// <summary>The rules a plan's metered prices and entitlements follow.</summary>
public static class PlanUsageRules
{
    /// <summary>The most metered prices on one plan.</summary>
    public const int MaxMeteredPrices = 20;

    /// <summary>The most entitlements on one plan.</summary>
    public const int MaxEntitlements = 100;

    /// <summary>Throws when a plan's metered prices or entitlements are invalid.</summary>
    /// <param name="currency">The plan's currency.</param>
    /// <param name="meteredPrices">The metered prices.</param>
    /// <param name="entitlements">The entitlements.</param>
    /// <exception cref="BillingValidationException">The first problem, with its field.</exception>
    /// <remarks>
    /// One metered price per meter key, each in the plan's currency; one entitlement per feature; a limit ≥ 0 on
    /// limit kinds and none on boolean ones; a metered limit limits the meter of one of the plan's metered prices (give
    /// the price a zero unit amount to limit usage that is not charged). Thresholds are positive and below the limit.
    /// </remarks>
    public static void Validate(Currency currency, IReadOnlyList<MeteredPrice> meteredPrices, IReadOnlyList<Entitlement> entitlements)
    {
        ArgumentNullException.ThrowIfNull(meteredPrices);
        ArgumentNullException.ThrowIfNull(entitlements);
        Require(meteredPrices.Count <= MaxMeteredPrices, "metered_prices", $"A plan has at most {MaxMeteredPrices} metered prices.");
        Require(entitlements.Count <= MaxEntitlements, "entitlements", $"A plan has at most {MaxEntitlements} entitlements.");
        var meters = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < meteredPrices.Count; i++)
        {
            var field = $"metered_prices[{i}]";
            var price = meteredPrices[i] ?? throw new BillingValidationException(field, "A metered price is required.");
            Require(price.Meter is not null, $"{field}.meter", "A metered price needs a meter.");
            price.Meter!.Validate($"{field}.meter");
            Require(price.Price is not null && price.Price.Currency == currency, $"{field}.price", "A metered price needs a price in the plan's currency.");
            Require(price.Description is null || price.Description.Length is >= 1 and <= 200, $"{field}.description", "A description has 1 to 200 characters.");
            Require(meters.Add(price.Meter.Key), $"{field}.meter.key", $"Meter '{price.Meter.Key}' is priced twice.");
        }

        var features = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < entitlements.Count; i++)
        {
            var field = $"entitlements[{i}]";
            var e = entitlements[i] ?? throw new BillingValidationException(field, "An entitlement is required.");
            Require(Meter.IsValidKey(e.Feature), $"{field}.feature", $"A feature key has 1 to {Meter.MaxKeyLength} characters: a-z, 0-9, '_', '-', '.'.");
            Require(features.Add(e.Feature), $"{field}.feature", $"Feature '{e.Feature}' is granted twice.");
            Require(Enum.IsDefined(e.Kind), $"{field}.kind", "Unknown entitlement kind.");
            Require(Enum.IsDefined(e.Enforcement), $"{field}.enforcement", "Unknown enforcement.");
            if (e.Kind == EntitlementKind.Boolean)
            {
                Require(e.Limit is null && e.MeterKey is null && e.Thresholds.Count == 0, $"{field}.limit", "A boolean entitlement has no limit, meter or thresholds.");
                continue;
            }

            Require(e.Limit is >= 0, $"{field}.limit", "A limit is a whole number ≥ 0.");
            Require(e.Kind == EntitlementKind.MeteredLimit ? e.MeterKey is not null && meters.Contains(e.MeterKey) : e.MeterKey is null, $"{field}.meter_key", "A metered limit names one of the plan's metered price meters; a fixed limit names none.");
            Require(e.Thresholds.Count <= 10 && e.Thresholds.All(t => t > 0 && t < e.Limit) && e.Thresholds.Distinct().Count() == e.Thresholds.Count, $"{field}.thresholds", "Up to 10 distinct thresholds, each above 0 and below the limit.");
        }
    }

    private static void Require(bool condition, string field, string message)
    {
        if (!condition)
        {
            throw new BillingValidationException(field, message);
        }
    }
}
