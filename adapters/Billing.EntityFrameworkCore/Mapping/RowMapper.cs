using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Billing.Catalog;
using Billing.Customers;
using Billing.Dunning;
using Billing.EntityFrameworkCore.Model;
using Billing.Events;
using Billing.Invoices;
using Billing.Payments;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Usage;

namespace Billing.EntityFrameworkCore.Mapping;

/// <summary>Converts domain records to rows and back. Enums are stored as snake_case names; nested values as JSON.</summary>
internal static class RowMapper
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>(StringComparer.Ordinal);

    // ------------------------------------------------------------------ customers

    public static CustomerRow ToRow(Customer c) => new()
    {
        Id = c.Id,
        Name = c.Name,
        Email = c.Email,
        Currency = c.Currency.Code,
        TimeZoneId = c.TimeZoneId,
        DefaultPaymentMethod = c.DefaultPaymentMethod,
        CreditBalanceMinor = SameCurrency(c.CreditBalance, c.Currency, "credit_balance"),
        TaxRates = Serialize(c.TaxRates.Select(ToDto).ToList()),
        ExternalId = c.ExternalId,
        TestClockId = c.TestClockId,
        Metadata = SerializeMap(c.Metadata),
        CreatedAt = c.CreatedAt.ToUniversalTime(),
        Version = c.Version,
    };

    public static Customer ToDomain(CustomerRow r)
    {
        var currency = Currency.FromCode(r.Currency);
        return new Customer
        {
            Id = r.Id,
            Name = r.Name,
            Email = r.Email,
            Currency = currency,
            TimeZoneId = r.TimeZoneId,
            DefaultPaymentMethod = r.DefaultPaymentMethod,
            CreditBalance = new Money(r.CreditBalanceMinor, currency),
            TaxRates = Deserialize<List<TaxRateDto>>(r.TaxRates).Select(FromDto).ToList(),
            ExternalId = r.ExternalId,
            TestClockId = r.TestClockId,
            Metadata = DeserializeMap(r.Metadata),
            CreatedAt = r.CreatedAt,
            Version = r.Version,
        };
    }

    // ------------------------------------------------------------------ plans

    public static PlanRow ToRow(Plan p) => new()
    {
        Id = p.Id,
        Name = p.Name,
        Description = p.Description,
        Currency = p.Currency.Code,
        Price = Serialize(ToDto(p.Price)),
        IntervalUnit = Names<BillingIntervalUnit>.Of(p.Interval.Unit),
        IntervalCount = p.Interval.Count,
        TrialDays = p.TrialDays,
        Archived = p.Archived,
        Metadata = SerializeMap(p.Metadata),
        CreatedAt = p.CreatedAt.ToUniversalTime(),
        Version = p.Version,
        MeteredPrices = p.MeteredPrices.Count == 0 ? "[]" : Serialize(p.MeteredPrices.Select(ToDto).ToList()),
        Entitlements = p.Entitlements.Count == 0 ? "[]" : Serialize(p.Entitlements.Select(ToDto).ToList()),
    };

    public static Plan ToDomain(PlanRow r) => new()
    {
        Id = r.Id,
        Name = r.Name,
        Description = r.Description,
        Price = FromDto(Deserialize<PriceDto>(r.Price)),
        Interval = new BillingInterval(Names<BillingIntervalUnit>.Parse(r.IntervalUnit), r.IntervalCount),
        TrialDays = r.TrialDays,
        Archived = r.Archived,
        Metadata = DeserializeMap(r.Metadata),
        CreatedAt = r.CreatedAt,
        Version = r.Version,
        MeteredPrices = r.MeteredPrices is "[]" or "" ? [] : [.. Deserialize<List<MeteredPriceDto>>(r.MeteredPrices).Select(FromDto)],
        Entitlements = r.Entitlements is "[]" or "" ? [] : [.. Deserialize<List<EntitlementDto>>(r.Entitlements).Select(FromDto)],
    };

    // ------------------------------------------------------------------ subscriptions

    public static SubscriptionRow ToRow(Subscription s) => new()
    {
        Id = s.Id,
        CustomerId = s.CustomerId,
        PlanId = s.PlanId,
        Quantity = s.Quantity,
        Status = Names<SubscriptionStatus>.Of(s.Status),
        ScheduleStart = s.ScheduleStart.ToUniversalTime(),
        AnchorLocal = DateTime.SpecifyKind(s.AnchorLocal, DateTimeKind.Unspecified),
        CurrentPeriodStart = s.CurrentPeriod.Start.ToUniversalTime(),
        CurrentPeriodEnd = s.CurrentPeriod.End.ToUniversalTime(),
        TrialEnd = s.TrialEnd?.ToUniversalTime(),
        CancelAtPeriodEnd = s.CancelAtPeriodEnd,
        CanceledAt = s.CanceledAt?.ToUniversalTime(),
        PausedAt = s.PausedAt?.ToUniversalTime(),
        PendingChange = s.PendingChange is { } change ? Serialize(new ScheduledChangeDto(change.PlanId, change.Quantity)) : null,
        PendingLines = Serialize(s.PendingLines.Select(ToDto).ToList()),
        Discount = s.Discount is { } d ? Serialize(new DiscountDto(ToDto(d.Coupon), d.PeriodsRemaining)) : null,
        PaymentMethod = s.PaymentMethod,
        LatestInvoiceId = s.LatestInvoiceId,
        NextActionAt = s.NextActionAt?.ToUniversalTime(),
        TestClockId = s.TestClockId,
        CreatedAt = s.CreatedAt.ToUniversalTime(),
        Version = s.Version,
    };

    public static Subscription ToDomain(SubscriptionRow r) => new()
    {
        Id = r.Id,
        CustomerId = r.CustomerId,
        PlanId = r.PlanId,
        Quantity = r.Quantity,
        Status = Names<SubscriptionStatus>.Parse(r.Status),
        ScheduleStart = r.ScheduleStart,
        AnchorLocal = DateTime.SpecifyKind(r.AnchorLocal, DateTimeKind.Unspecified),
        CurrentPeriod = new BillingPeriod(r.CurrentPeriodStart, r.CurrentPeriodEnd),
        TrialEnd = r.TrialEnd,
        CancelAtPeriodEnd = r.CancelAtPeriodEnd,
        CanceledAt = r.CanceledAt,
        PausedAt = r.PausedAt,
        PendingChange = r.PendingChange is { } change ? Deserialize<ScheduledChangeDto>(change) is var c ? new ScheduledChange(c.PlanId, c.Quantity) : null : null,
        PendingLines = Deserialize<List<LineDto>>(r.PendingLines).Select(FromDto).ToList(),
        Discount = r.Discount is { } discount ? Deserialize<DiscountDto>(discount) is var d ? new AppliedDiscount(FromDto(d.Coupon), d.PeriodsRemaining) : null : null,
        PaymentMethod = r.PaymentMethod,
        LatestInvoiceId = r.LatestInvoiceId,
        NextActionAt = r.NextActionAt,
        TestClockId = r.TestClockId,
        CreatedAt = r.CreatedAt,
        Version = r.Version,
    };

    // ------------------------------------------------------------------ invoices

    public static InvoiceRow ToRow(Invoice i, bool withLines)
    {
        var row = new InvoiceRow
        {
            Id = i.Id,
            CustomerId = i.CustomerId,
            SubscriptionId = i.SubscriptionId,
            DedupKey = i.DedupKey,
            Reason = Names<BillingReason>.Of(i.Reason),
            Number = i.Number,
            Status = Names<InvoiceStatus>.Of(i.Status),
            Currency = i.Currency.Code,
            PeriodStart = i.Period?.Start.ToUniversalTime(),
            PeriodEnd = i.Period?.End.ToUniversalTime(),
            SubtotalMinor = SameCurrency(i.Subtotal, i.Currency, "subtotal"),
            DiscountMinor = SameCurrency(i.Discount, i.Currency, "discount"),
            TaxMinor = SameCurrency(i.Tax, i.Currency, "tax"),
            TotalMinor = SameCurrency(i.Total, i.Currency, "total"),
            CreditAppliedMinor = SameCurrency(i.CreditApplied, i.Currency, "credit_applied"),
            AmountDueMinor = SameCurrency(i.AmountDue, i.Currency, "amount_due"),
            AmountPaidMinor = SameCurrency(i.AmountPaid, i.Currency, "amount_paid"),
            Coupon = i.Coupon is { } coupon ? Serialize(ToDto(coupon)) : null,
            Dunning = Serialize(new DunningDto(i.Dunning.PolicyVersion, i.Dunning.FailedAttempts, i.Dunning.FirstFailureAt?.ToUniversalTime(), i.Dunning.NextAttemptAt?.ToUniversalTime(), i.Dunning.Exhausted, i.Dunning.Resolved)),
            PaymentAttempts = i.PaymentAttempts,
            NextActionAt = i.NextActionAt?.ToUniversalTime(),
            TestClockId = i.TestClockId,
            CreatedAt = i.CreatedAt.ToUniversalTime(),
            FinalizedAt = i.FinalizedAt?.ToUniversalTime(),
            ClosedAt = i.ClosedAt?.ToUniversalTime(),
            Version = i.Version,
        };
        if (withLines)
        {
            row.Lines = LineRows(i);
        }

        return row;
    }

    public static List<InvoiceLineRow> LineRows(Invoice i)
    {
        var rows = new List<InvoiceLineRow>(i.Lines.Count);
        for (var n = 0; n < i.Lines.Count; n++)
        {
            var l = i.Lines[n];
            rows.Add(new InvoiceLineRow
            {
                InvoiceId = i.Id,
                LineNo = n + 1,
                Kind = Names<InvoiceLineKind>.Of(l.Kind),
                Description = l.Description,
                AmountMinor = l.Amount.MinorUnits,
                Currency = l.Amount.Currency.Code,
                Quantity = l.Quantity,
                PeriodStart = l.Period?.Start.ToUniversalTime(),
                PeriodEnd = l.Period?.End.ToUniversalTime(),
                Proration = l.Proration is { } p ? Serialize(ToDto(p)) : null,
                MeterKey = l.MeterKey,
                TaxRate = l.TaxRate is { } t ? Serialize(ToDto(t)) : null,
                PlanId = l.PlanId,
                Breakdown = l.Breakdown is { } b ? Serialize(ToDto(b)) : null,
            });
        }

        return rows;
    }

    public static Invoice ToDomain(InvoiceRow r, IEnumerable<InvoiceLineRow> lines)
    {
        var currency = Currency.FromCode(r.Currency);
        var d = Deserialize<DunningDto>(r.Dunning);
        return new Invoice
        {
            Id = r.Id,
            CustomerId = r.CustomerId,
            SubscriptionId = r.SubscriptionId,
            DedupKey = r.DedupKey,
            Reason = Names<BillingReason>.Parse(r.Reason),
            Number = r.Number,
            Status = Names<InvoiceStatus>.Parse(r.Status),
            Currency = currency,
            Period = r.PeriodStart is { } ps && r.PeriodEnd is { } pe ? new BillingPeriod(ps, pe) : null,
            Lines = lines.OrderBy(l => l.LineNo).Select(l => new InvoiceLine(Names<InvoiceLineKind>.Parse(l.Kind), l.Description, new Money(l.AmountMinor, Currency.FromCode(l.Currency)))
            {
                Quantity = l.Quantity,
                Period = l.PeriodStart is { } s && l.PeriodEnd is { } e ? new BillingPeriod(s, e) : null,
                Proration = l.Proration is { } p ? FromDto(Deserialize<ProrationDto>(p)) : null,
                MeterKey = l.MeterKey,
                TaxRate = l.TaxRate is { } t ? FromDto(Deserialize<TaxRateDto>(t)) : null,
                PlanId = l.PlanId,
                Breakdown = l.Breakdown is { } b ? FromDto(Deserialize<BreakdownDto>(b), Currency.FromCode(l.Currency)) : null,
            }).ToList(),
            Coupon = r.Coupon is { } coupon ? FromDto(Deserialize<CouponDto>(coupon)) : null,
            Subtotal = new Money(r.SubtotalMinor, currency),
            Discount = new Money(r.DiscountMinor, currency),
            Tax = new Money(r.TaxMinor, currency),
            Total = new Money(r.TotalMinor, currency),
            CreditApplied = new Money(r.CreditAppliedMinor, currency),
            AmountDue = new Money(r.AmountDueMinor, currency),
            AmountPaid = new Money(r.AmountPaidMinor, currency),
            Dunning = new DunningState(d.PolicyVersion, d.FailedAttempts, d.FirstFailureAt, d.NextAttemptAt, d.Exhausted, d.Resolved),
            PaymentAttempts = r.PaymentAttempts,
            NextActionAt = r.NextActionAt,
            TestClockId = r.TestClockId,
            CreatedAt = r.CreatedAt,
            FinalizedAt = r.FinalizedAt,
            ClosedAt = r.ClosedAt,
            Version = r.Version,
        };
    }

    // ------------------------------------------------------------------ payments, clocks, events, idempotency

    public static PaymentRow ToRow(Payment p) => new()
    {
        Id = p.Id,
        InvoiceId = p.InvoiceId,
        CustomerId = p.CustomerId,
        Attempt = p.Attempt,
        IdempotencyKey = p.IdempotencyKey,
        AmountMinor = p.Amount.MinorUnits,
        Currency = p.Amount.Currency.Code,
        PaymentMethod = p.PaymentMethod,
        Status = Names<PaymentStatus>.Of(p.Status),
        GatewayPaymentId = p.GatewayPaymentId,
        Result = p.Result is { } r ? Serialize(new PaymentResultDto(Names<PaymentOutcome>.Of(r.Outcome), r.GatewayPaymentId, r.ClientSecret, r.DeclineType is { } dt ? Names<DeclineType>.Of(dt) : null, r.DeclineCode, r.Message)) : null,
        AmountRefundedMinor = SameCurrency(p.AmountRefunded, p.Amount.Currency, "amount_refunded"),
        RefundCount = p.RefundCount,
        CreatedAt = p.CreatedAt.ToUniversalTime(),
        Version = p.Version,
    };

    public static Payment ToDomain(PaymentRow r)
    {
        var currency = Currency.FromCode(r.Currency);
        return new Payment
        {
            Id = r.Id,
            InvoiceId = r.InvoiceId,
            CustomerId = r.CustomerId,
            Attempt = r.Attempt,
            IdempotencyKey = r.IdempotencyKey,
            Amount = new Money(r.AmountMinor, currency),
            PaymentMethod = r.PaymentMethod,
            Status = Names<PaymentStatus>.Parse(r.Status),
            GatewayPaymentId = r.GatewayPaymentId,
            Result = r.Result is { } json ? FromDto(Deserialize<PaymentResultDto>(json)) : null,
            AmountRefunded = new Money(r.AmountRefundedMinor, currency),
            RefundCount = r.RefundCount,
            CreatedAt = r.CreatedAt,
            Version = r.Version,
        };
    }

    public static TestClockRow ToRow(TestClock c) => new() { Id = c.Id, Name = c.Name, FrozenTime = c.FrozenTime.ToUniversalTime(), Version = c.Version };

    public static TestClock ToDomain(TestClockRow r) => new() { Id = r.Id, Name = r.Name, FrozenTime = r.FrozenTime, Version = r.Version };

    public static OutboxEventRow ToRow(BillingEvent e) => new()
    {
        EventId = e.Id,
        Type = e.Type,
        OccurredAt = e.OccurredAt.ToUniversalTime(),
        ObjectType = e.ObjectType,
        ObjectId = e.ObjectId,
        CustomerId = e.CustomerId,
        Data = SerializeMap(e.Data),
    };

    public static OutboxEntry ToDomain(OutboxEventRow r) => new(r.Position ?? throw new InvalidOperationException("The outbox row has no position yet."), new BillingEvent
    {
        Id = r.EventId,
        Type = r.Type,
        OccurredAt = r.OccurredAt,
        ObjectType = r.ObjectType,
        ObjectId = r.ObjectId,
        CustomerId = r.CustomerId,
        Data = DeserializeMap(r.Data),
    });

    public static IdempotencyRecordRow ToRow(IdempotencyRecord r) => new()
    {
        Scope = r.Scope,
        Key = r.Key,
        RequestHash = r.RequestHash,
        Response = r.Response,
        CreatedAt = r.CreatedAt.ToUniversalTime(),
        ExpiresAt = r.ExpiresAt.ToUniversalTime(),
    };

    public static IdempotencyRecord ToDomain(IdempotencyRecordRow r) => new(r.Scope, r.Key, r.RequestHash, r.Response, r.CreatedAt, r.ExpiresAt);

    // ------------------------------------------------------------------ JSON shapes

    private static long SameCurrency(Money amount, Currency currency, string field) =>
        ReferenceEquals(amount.Currency, currency)
            ? amount.MinorUnits
            : throw new BillingValidationException(field, $"The amount is in {amount.Currency.Code} but the record is in {currency.Code}.");

    private static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Json);

    private static T Deserialize<T>(string json) =>
        JsonSerializer.Deserialize<T>(json, Json) ?? throw new InvalidOperationException($"The stored JSON '{json}' is not a {typeof(T).Name}.");

    private static string SerializeMap(IReadOnlyDictionary<string, string> map) => map.Count == 0 ? "{}" : JsonSerializer.Serialize(map, Json);

    private static IReadOnlyDictionary<string, string> DeserializeMap(string json) =>
        json == "{}" ? NoMetadata : new Dictionary<string, string>(Deserialize<Dictionary<string, string>>(json), StringComparer.Ordinal);

    private sealed record TaxRateDto(string Name, long Ppm, bool Inclusive);

    private static TaxRateDto ToDto(TaxRate t) => new(t.Name, t.PartsPerMillion, t.Inclusive);

    private static TaxRate FromDto(TaxRateDto t) => new(t.Name, t.Ppm, t.Inclusive);

    private sealed record TierDto(long? UpTo, long UnitAmount, long FlatAmount);

    private sealed record PriceDto(string Model, string Currency, long? Amount = null, List<TierDto>? Tiers = null, long? PackageSize = null);

    private static PriceDto ToDto(Price price) => price switch
    {
        FlatPrice f => new("flat", f.Currency.Code, Amount: f.Amount.MinorUnits),
        PerUnitPrice u => new("per_unit", u.Currency.Code, Amount: u.UnitAmount.MinorUnits),
        GraduatedPrice g => new("graduated", g.Currency.Code, Tiers: [.. g.Tiers.Select(t => new TierDto(t.UpTo, t.UnitAmount, t.FlatAmount))]),
        VolumePrice v => new("volume", v.Currency.Code, Tiers: [.. v.Tiers.Select(t => new TierDto(t.UpTo, t.UnitAmount, t.FlatAmount))]),
        PackagePrice p => new("package", p.Currency.Code, Amount: p.PackageAmount.MinorUnits, PackageSize: p.PackageSize),
        _ => throw new NotSupportedException($"The price model {price.GetType().Name} has no stored form."),
    };

    private static Price FromDto(PriceDto p)
    {
        var currency = Currency.FromCode(p.Currency);
        IEnumerable<PriceTier> Tiers() => (p.Tiers ?? []).Select(t => new PriceTier(t.UpTo, t.UnitAmount, t.FlatAmount));
        return p.Model switch
        {
            "flat" => new FlatPrice(new Money(p.Amount!.Value, currency)),
            "per_unit" => new PerUnitPrice(new Money(p.Amount!.Value, currency)),
            "graduated" => new GraduatedPrice(currency, Tiers()),
            "volume" => new VolumePrice(currency, Tiers()),
            "package" => new PackagePrice(new Money(p.Amount!.Value, currency), p.PackageSize!.Value),
            _ => throw new InvalidOperationException($"The stored price model '{p.Model}' is unknown."),
        };
    }

    private sealed record MeterDto(string Key, string Aggregation, string? UniqueProperty);

    private sealed record MeteredPriceDto(MeterDto Meter, PriceDto Price, string? Description);

    private static MeteredPriceDto ToDto(MeteredPrice m) =>
        new(new MeterDto(m.Meter.Key, Names<MeterAggregation>.Of(m.Meter.Aggregation), m.Meter.UniqueProperty), ToDto(m.Price), m.Description);

    private static MeteredPrice FromDto(MeteredPriceDto m) => new()
    {
        Meter = new Meter { Key = m.Meter.Key, Aggregation = Names<MeterAggregation>.Parse(m.Meter.Aggregation), UniqueProperty = m.Meter.UniqueProperty },
        Price = FromDto(m.Price),
        Description = m.Description,
    };

    private sealed record EntitlementDto(string Feature, string Kind, long? Limit, string? MeterKey, string Enforcement, List<long>? Thresholds);

    private static EntitlementDto ToDto(Entitlement e) =>
        new(e.Feature, Names<EntitlementKind>.Of(e.Kind), e.Limit, e.MeterKey, Names<LimitEnforcement>.Of(e.Enforcement), e.Thresholds.Count == 0 ? null : [.. e.Thresholds]);

    private static Entitlement FromDto(EntitlementDto e) => new()
    {
        Feature = e.Feature,
        Kind = Names<EntitlementKind>.Parse(e.Kind),
        Limit = e.Limit,
        MeterKey = e.MeterKey,
        Enforcement = Names<LimitEnforcement>.Parse(e.Enforcement),
        Thresholds = e.Thresholds ?? [],
    };

    private sealed record ScheduledChangeDto(string PlanId, long Quantity);

    private sealed record ProrationDto(long FullAmount, string Currency, long NumeratorSeconds, long DenominatorSeconds, string Rounding);

    private static ProrationDto ToDto(ProrationFormula p) =>
        new(p.FullAmount.MinorUnits, p.FullAmount.Currency.Code, p.NumeratorSeconds, p.DenominatorSeconds, Names<RoundingMode>.Of(p.Rounding));

    private static ProrationFormula FromDto(ProrationDto p) =>
        new(new Money(p.FullAmount, Currency.FromCode(p.Currency)), p.NumeratorSeconds, p.DenominatorSeconds, Names<RoundingMode>.Parse(p.Rounding));

    private sealed record LineDto(string Kind, string Description, long Amount, string Currency, long Quantity, DateTimeOffset? PeriodStart, DateTimeOffset? PeriodEnd, ProrationDto? Proration, string? MeterKey, TaxRateDto? TaxRate);

    private static LineDto ToDto(InvoiceLine l) =>
        new(Names<InvoiceLineKind>.Of(l.Kind), l.Description, l.Amount.MinorUnits, l.Amount.Currency.Code, l.Quantity, l.Period?.Start.ToUniversalTime(), l.Period?.End.ToUniversalTime(), l.Proration is { } p ? ToDto(p) : null, l.MeterKey, l.TaxRate is { } t ? ToDto(t) : null);

    private static InvoiceLine FromDto(LineDto l) =>
        new(Names<InvoiceLineKind>.Parse(l.Kind), l.Description, new Money(l.Amount, Currency.FromCode(l.Currency)))
        {
            Quantity = l.Quantity,
            Period = l.PeriodStart is { } s && l.PeriodEnd is { } e ? new BillingPeriod(s, e) : null,
            Proration = l.Proration is { } p ? FromDto(p) : null,
            MeterKey = l.MeterKey,
            TaxRate = l.TaxRate is { } t ? FromDto(t) : null,
        };

    private sealed record ComponentDto(string Kind, int Tier, long? From, long? UpTo, long Quantity, long UnitAmount, long Amount);

    private sealed record BreakdownDto(long Quantity, List<ComponentDto> Components);

    private static BreakdownDto ToDto(PriceBreakdown b) =>
        new(b.Quantity, [.. b.Components.Select(c => new ComponentDto(Names<PriceComponentKind>.Of(c.Kind), c.TierIndex, c.TierFrom, c.TierUpTo, c.Quantity, c.UnitAmount, c.Amount.MinorUnits))]);

    private static PriceBreakdown FromDto(BreakdownDto b, Currency currency) =>
        PriceBreakdown.FromComponents(b.Quantity, currency, b.Components.Select(c =>
            new PriceComponent(Names<PriceComponentKind>.Parse(c.Kind), c.Tier, c.Quantity, c.UnitAmount, new Money(c.Amount, currency)) { TierFrom = c.From, TierUpTo = c.UpTo }));

    private sealed record CouponDto(string Id, long? PercentOffPpm, long? AmountOff, string? Currency, string Duration, int? DurationInPeriods);

    private static CouponDto ToDto(Coupon c) =>
        new(c.Id, c.PercentOffPartsPerMillion, c.AmountOff?.MinorUnits, c.AmountOff?.Currency.Code, Names<CouponDuration>.Of(c.Duration), c.DurationInPeriods);

    private static Coupon FromDto(CouponDto c) =>
        c.PercentOffPpm is { } ppm
            ? Coupon.PercentOff(c.Id, ppm, Names<CouponDuration>.Parse(c.Duration), c.DurationInPeriods)
            : Coupon.AmountOffEach(c.Id, new Money(c.AmountOff!.Value, Currency.FromCode(c.Currency!)), Names<CouponDuration>.Parse(c.Duration), c.DurationInPeriods);

    private sealed record DiscountDto(CouponDto Coupon, int? PeriodsRemaining);

    private sealed record DunningDto(int PolicyVersion, int FailedAttempts, DateTimeOffset? FirstFailureAt, DateTimeOffset? NextAttemptAt, bool Exhausted, bool Resolved);

    private sealed record PaymentResultDto(string Outcome, string? GatewayPaymentId, string? ClientSecret, string? DeclineType, string? DeclineCode, string? Message);

    private static PaymentResult FromDto(PaymentResultDto r) => Names<PaymentOutcome>.Parse(r.Outcome) switch
    {
        PaymentOutcome.Succeeded => PaymentResult.Succeeded(r.GatewayPaymentId!),
        PaymentOutcome.RequiresAction => PaymentResult.RequiresAction(r.GatewayPaymentId!, r.ClientSecret!),
        PaymentOutcome.Declined => PaymentResult.Declined(Names<DeclineType>.Parse(r.DeclineType!), r.DeclineCode!, r.Message ?? "", r.GatewayPaymentId),
        PaymentOutcome.FailedRetryable => PaymentResult.FailedRetryable(r.Message!),
        var other => throw new InvalidOperationException($"The stored payment outcome '{other}' is unknown."),
    };
}

/// <summary>snake_case names of an enum's members, both ways, computed once.</summary>
/// <typeparam name="T">The enum.</typeparam>
internal static class Names<T>
    where T : struct, Enum
{
    private static readonly ConcurrentDictionary<T, string> ByValue = new(Enum.GetValues<T>().ToDictionary(v => v, v => BillingModelBuilderExtensions.Snake(v.ToString())));
    private static readonly Dictionary<string, T> ByName = ByValue.ToDictionary(p => p.Value, p => p.Key, StringComparer.Ordinal);

    public static string Of(T value) => ByValue.TryGetValue(value, out var name) ? name : throw new ArgumentOutOfRangeException(nameof(value), value, $"Not a defined {typeof(T).Name}.");

    public static T Parse(string name) =>
        ByName.TryGetValue(name, out var value) ? value : throw new InvalidOperationException($"The stored value '{name}' is not a {typeof(T).Name}.");
}
