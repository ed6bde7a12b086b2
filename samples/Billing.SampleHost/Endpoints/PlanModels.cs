using System.Text.Json.Serialization;
using Billing.Catalog;
using Billing.Engine;
using Billing.Periods;
using Billing.Pricing;
using Billing.SampleHost.Http;
using Billing.Usage;

namespace Billing.SampleHost.Endpoints;

/// <summary>A price in the plan's currency, amounts in minor units. <c>model</c>: <c>flat</c> (<c>amount</c>),
/// <c>per_unit</c> (<c>unitAmount</c>), <c>package</c> (<c>packageAmount</c>, <c>packageSize</c>), <c>graduated</c>
/// or <c>volume</c> (<c>tiers</c>).</summary>
internal sealed class PriceInput
{
    public string? Model { get; init; }

    public long? Amount { get; init; }

    public long? UnitAmount { get; init; }

    public long? PackageAmount { get; init; }

    public long? PackageSize { get; init; }

    public List<TierInput>? Tiers { get; init; }
}

/// <summary>A tier: units up to <c>upTo</c> (null for the last, open-ended tier).</summary>
internal sealed class TierInput
{
    public long? UpTo { get; init; }

    public long? UnitAmount { get; init; }

    public long? FlatAmount { get; init; }
}

/// <summary>How often a plan bills: <c>unit</c> day, week, month or year, times <c>count</c> (1–1000, default 1).</summary>
internal sealed class IntervalInput
{
    public string? Unit { get; init; }

    public int? Count { get; init; }
}

/// <summary>A meter: <c>key</c>, <c>aggregation</c> (sum, count, max, last, unique_count; default sum).</summary>
internal sealed class MeterInput
{
    public string? Key { get; init; }

    public string? Aggregation { get; init; }

    public string? UniqueProperty { get; init; }
}

/// <summary>A usage-based price on a meter.</summary>
internal sealed class MeteredPriceInput
{
    public MeterInput? Meter { get; init; }

    public PriceInput? Price { get; init; }

    public string? Description { get; init; }
}

/// <summary>A feature the plan grants: <c>kind</c> boolean, limit or metered_limit; <c>enforcement</c> soft or hard.</summary>
internal sealed class EntitlementInput
{
    public string? Feature { get; init; }

    public string? Kind { get; init; }

    public long? Limit { get; init; }

    public string? MeterKey { get; init; }

    public string? Enforcement { get; init; }

    public List<long>? Thresholds { get; init; }
}

/// <summary>POST /v1/plans.</summary>
internal sealed class CreatePlanRequest
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    public string? Currency { get; init; }

    public PriceInput? Price { get; init; }

    public IntervalInput? Interval { get; init; }

    public int? TrialDays { get; init; }

    public Dictionary<string, string>? Metadata { get; init; }

    public List<MeteredPriceInput>? MeteredPrices { get; init; }

    public List<EntitlementInput>? Entitlements { get; init; }

    public NewPlan ToNewPlan()
    {
        var errors = new FieldErrors();
        Validation.Name(errors, "name", Name, required: true);
        Validation.Description(errors, "description", Description);
        Validation.Metadata(errors, "metadata", Metadata);
        var currency = Validation.Currency(errors, "currency", Currency);
        errors.Check(TrialDays is null or (>= 0 and <= 730), "trialDays", "trialDays is 0 to 730.");
        var interval = PlanMapping.Interval(errors, "interval", Interval);
        // With an unknown currency the price is still checked (against USD) so every error shows at once.
        var price = PlanMapping.Price(errors, "price", Price, currency ?? global::Billing.Currency.USD);
        var metered = new List<MeteredPrice>();
        errors.Check(MeteredPrices is null || MeteredPrices.Count <= 20, "meteredPrices", "A plan has at most 20 metered prices.");
        for (var i = 0; MeteredPrices is not null && i < Math.Min(MeteredPrices.Count, 20); i++)
        {
            if (PlanMapping.Metered(errors, $"meteredPrices[{i}]", MeteredPrices[i], currency ?? global::Billing.Currency.USD) is { } m)
            {
                metered.Add(m);
            }
        }

        var entitlements = new List<Entitlement>();
        errors.Check(Entitlements is null || Entitlements.Count <= 100, "entitlements", "A plan has at most 100 entitlements.");
        for (var i = 0; Entitlements is not null && i < Math.Min(Entitlements.Count, 100); i++)
        {
            if (PlanMapping.Entitlement(errors, $"entitlements[{i}]", Entitlements[i]) is { } e)
            {
                entitlements.Add(e);
            }
        }

        errors.ThrowIfAny();
        return new NewPlan(Name!, price!, interval!.Value)
        {
            Description = Description,
            TrialDays = TrialDays ?? 0,
            Metadata = Metadata,
            MeteredPrices = metered,
            Entitlements = entitlements,
        };
    }
}

/// <summary>PATCH /v1/plans/{id}: only the name, description and metadata change (a new price is a new plan).</summary>
internal sealed class UpdatePlanRequest
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    public Dictionary<string, string>? Metadata { get; init; }

    public void Validate()
    {
        var errors = new FieldErrors();
        Validation.Name(errors, "name", Name, required: false);
        Validation.Description(errors, "description", Description);
        Validation.Metadata(errors, "metadata", Metadata);
        errors.ThrowIfAny();
    }
}

internal sealed record TierDto(long? UpTo, long UnitAmount, long FlatAmount);

/// <summary>A price; only the members of its model are present.</summary>
internal sealed record PriceDto(
    string Model,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? Amount,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? UnitAmount,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? PackageAmount,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? PackageSize,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<TierDto>? Tiers);

internal sealed record IntervalDto(string Unit, int Count);

internal sealed record MeterDto(string Key, string Aggregation, string? UniqueProperty);

internal sealed record MeteredPriceDto(MeterDto Meter, PriceDto Price, string? Description);

internal sealed record EntitlementDto(string Feature, string Kind, long? Limit, string? MeterKey, string Enforcement, IReadOnlyList<long> Thresholds);

/// <summary>A plan as the API shows it; amounts are minor units of <c>currency</c>.</summary>
internal sealed record PlanDto(
    string Id,
    string Object,
    string Name,
    string? Description,
    string Currency,
    PriceDto Price,
    IntervalDto Interval,
    int TrialDays,
    bool Archived,
    IReadOnlyDictionary<string, string> Metadata,
    IReadOnlyList<MeteredPriceDto> MeteredPrices,
    IReadOnlyList<EntitlementDto> Entitlements,
    DateTimeOffset CreatedAt)
{
    public static PlanDto From(Plan plan) => new(
        plan.Id,
        "plan",
        plan.Name,
        plan.Description,
        plan.Currency.Code,
        PlanMapping.ToDto(plan.Price),
        new IntervalDto(PlanMapping.Snake(plan.Interval.Unit.ToString()), plan.Interval.Count),
        plan.TrialDays,
        plan.Archived,
        plan.Metadata,
        [.. plan.MeteredPrices.Select(m => new MeteredPriceDto(new MeterDto(m.Meter.Key, PlanMapping.Snake(m.Meter.Aggregation.ToString()), m.Meter.UniqueProperty), PlanMapping.ToDto(m.Price), m.Description))],
        [.. plan.Entitlements.Select(e => new EntitlementDto(e.Feature, PlanMapping.Snake(e.Kind.ToString()), e.Limit, e.MeterKey, PlanMapping.Snake(e.Enforcement.ToString()), e.Thresholds))],
        plan.CreatedAt);
}

internal static class PlanMapping
{
    /// <summary>The <c>archived</c> list filter: <c>true</c> (archived plans only), <c>false</c> (active plans only), or null when absent.</summary>
    public static bool? ArchivedFilter(FieldErrors errors, HttpRequest request)
    {
        var values = request.Query["archived"];
        if (values.Count == 0)
        {
            return null;
        }

        var ok = values.Count == 1 && values[0] is "true" or "false";
        return errors.Check(ok, "archived", "archived is true or false.") ? values[0] == "true" : null;
    }

    public static BillingInterval? Interval(FieldErrors errors, string field, IntervalInput? input)
    {
        if (input is null)
        {
            errors.Add(field, $"{field} is required.");
            return null;
        }

        var unitOk = TryEnum<BillingIntervalUnit>(input.Unit, out var unit);
        errors.Check(unitOk, $"{field}.unit", "unit is one of day, week, month, year.");
        var count = input.Count ?? 1;
        errors.Check(count is >= 1 and <= BillingInterval.MaxCount, $"{field}.count", $"count is 1 to {BillingInterval.MaxCount}.");
        return unitOk && count is >= 1 and <= BillingInterval.MaxCount ? new BillingInterval(unit, count) : null;
    }

    public static Price? Price(FieldErrors errors, string field, PriceInput? input, Currency currency)
    {
        if (input is null)
        {
            errors.Add(field, $"{field} is required.");
            return null;
        }

        bool NonNegative(long? value, string name) =>
            errors.Check(value is >= 0, $"{field}.{name}", value is null ? $"{name} is required for this model." : $"{name} is a whole number of minor units, 0 or more.");

        switch (input.Model)
        {
            case "flat":
                return NonNegative(input.Amount, "amount") ? new FlatPrice(new Money(input.Amount!.Value, currency)) : null;
            case "per_unit":
                return NonNegative(input.UnitAmount, "unitAmount") ? new PerUnitPrice(new Money(input.UnitAmount!.Value, currency)) : null;
            case "package":
                var amountOk = NonNegative(input.PackageAmount, "packageAmount");
                var sizeOk = errors.Check(input.PackageSize is >= 1, $"{field}.packageSize", "packageSize is a whole number of units, 1 or more.");
                return amountOk && sizeOk ? new PackagePrice(new Money(input.PackageAmount!.Value, currency), input.PackageSize!.Value) : null;
            case "graduated":
            case "volume":
                if (input.Tiers is not { Count: >= 1 and <= 50 })
                {
                    errors.Add($"{field}.tiers", "A tiered price has 1 to 50 tiers.");
                    return null;
                }

                var tiers = new List<PriceTier>();
                for (var i = 0; i < input.Tiers.Count; i++)
                {
                    var tier = input.Tiers[i];
                    var ok = tier is not null
                        & errors.Check(tier?.UnitAmount is >= 0, $"{field}.tiers[{i}].unitAmount", "unitAmount is required: minor units per unit, 0 or more.")
                        & errors.Check(tier?.FlatAmount is null or >= 0, $"{field}.tiers[{i}].flatAmount", "flatAmount is minor units, 0 or more.")
                        & errors.Check(tier?.UpTo is null or >= 1, $"{field}.tiers[{i}].upTo", "upTo is a unit count, 1 or more (null for the last tier).");
                    if (ok)
                    {
                        tiers.Add(new PriceTier(tier!.UpTo, tier.UnitAmount!.Value, tier.FlatAmount ?? 0));
                    }
                }

                if (tiers.Count != input.Tiers.Count)
                {
                    return null;
                }

                try
                {
                    return input.Model == "graduated" ? new GraduatedPrice(currency, tiers) : new VolumePrice(currency, tiers);
                }
                catch (ArgumentException e)
                {
                    errors.Add($"{field}.tiers", e.Message.Split(" (Parameter", 2)[0]);
                    return null;
                }

            default:
                errors.Add($"{field}.model", "model is one of flat, per_unit, package, graduated, volume.");
                return null;
        }
    }

    public static MeteredPrice? Metered(FieldErrors errors, string field, MeteredPriceInput? input, Currency currency)
    {
        if (input is null)
        {
            errors.Add(field, "A metered price is required.");
            return null;
        }

        var keyOk = errors.Check(Meter.IsValidKey(input.Meter?.Key), $"{field}.meter.key", $"A meter key has 1 to {Meter.MaxKeyLength} characters: a-z, 0-9, '_', '-', '.'.");
        var aggregation = MeterAggregation.Sum;
        var aggOk = input.Meter?.Aggregation is null || errors.Check(TryEnum(input.Meter.Aggregation, out aggregation), $"{field}.meter.aggregation", "aggregation is one of sum, count, max, last, unique_count.");
        errors.Check(input.Description is null || input.Description.Length is >= 1 and <= 200, $"{field}.description", "description has 1 to 200 characters.");
        var price = Price(errors, $"{field}.price", input.Price, currency);
        return keyOk && aggOk && price is not null
            ? new MeteredPrice { Meter = new Meter { Key = input.Meter!.Key!, Aggregation = aggregation, UniqueProperty = input.Meter.UniqueProperty }, Price = price, Description = input.Description }
            : null;
    }

    public static Entitlement? Entitlement(FieldErrors errors, string field, EntitlementInput? input)
    {
        if (input is null)
        {
            errors.Add(field, "An entitlement is required.");
            return null;
        }

        var featureOk = errors.Check(Meter.IsValidKey(input.Feature), $"{field}.feature", $"A feature key has 1 to {Meter.MaxKeyLength} characters: a-z, 0-9, '_', '-', '.'.");
        var kind = EntitlementKind.Boolean;
        var kindOk = input.Kind is null || errors.Check(TryEnum(input.Kind, out kind), $"{field}.kind", "kind is one of boolean, limit, metered_limit.");
        var enforcement = LimitEnforcement.Soft;
        var enforcementOk = input.Enforcement is null || errors.Check(TryEnum(input.Enforcement, out enforcement), $"{field}.enforcement", "enforcement is soft or hard.");
        var thresholdsOk = errors.Check(input.Thresholds is null || input.Thresholds.Count <= 10, $"{field}.thresholds", "At most 10 thresholds.");
        return featureOk && kindOk && enforcementOk && thresholdsOk
            ? new Entitlement { Feature = input.Feature!, Kind = kind, Limit = input.Limit, MeterKey = input.MeterKey, Enforcement = enforcement, Thresholds = input.Thresholds ?? [] }
            : null;
    }

    public static PriceDto ToDto(Price price) => price switch
    {
        FlatPrice p => new PriceDto("flat", p.Amount.MinorUnits, null, null, null, null),
        PerUnitPrice p => new PriceDto("per_unit", null, p.UnitAmount.MinorUnits, null, null, null),
        PackagePrice p => new PriceDto("package", null, null, p.PackageAmount.MinorUnits, p.PackageSize, null),
        GraduatedPrice p => new PriceDto("graduated", null, null, null, null, [.. p.Tiers.Select(t => new TierDto(t.UpTo, t.UnitAmount, t.FlatAmount))]),
        VolumePrice p => new PriceDto("volume", null, null, null, null, [.. p.Tiers.Select(t => new TierDto(t.UpTo, t.UnitAmount, t.FlatAmount))]),
        _ => throw new NotSupportedException($"Unknown price model {price.Model}."),
    };

    /// <summary><c>UniqueCount</c> → <c>unique_count</c>.</summary>
    public static string Snake(string pascal) => ErrorHandlingMiddleware.SnakeCase(pascal);

    /// <summary>Parses a snake_case API value into an enum member (exact names only, no numbers).</summary>
    public static bool TryEnum<TEnum>(string? value, out TEnum result)
        where TEnum : struct, Enum
    {
        foreach (var member in Enum.GetValues<TEnum>())
        {
            if (string.Equals(Snake(member.ToString()), value, StringComparison.Ordinal))
            {
                result = member;
                return true;
            }
        }

        result = default;
        return false;
    }
}
