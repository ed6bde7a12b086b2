using Billing.Engine;
using Billing.Invoices;
using Billing.Periods;
using Billing.Proration;
using Billing.SampleHost.Http;
using Billing.Subscriptions;

namespace Billing.SampleHost.Endpoints;

/// <summary>POST /v1/subscriptions: <c>customerId</c>, <c>planId</c>, <c>quantity</c> (1–1,000,000,000, default 1),
/// <c>trialDays</c> (0–730, overrides the plan's; 0 for none), <c>paymentMethod</c> (overrides the customer's).</summary>
internal sealed class CreateSubscriptionRequest
{
    public string? CustomerId { get; init; }

    public string? PlanId { get; init; }

    public long? Quantity { get; init; }

    public int? TrialDays { get; init; }

    public string? PaymentMethod { get; init; }

    public CouponInput? Coupon { get; init; }

    public NewSubscription ToNewSubscription()
    {
        var errors = new FieldErrors();
        errors.Check(Validation.Id(CustomerId), "customerId", "customerId is required: a customer id.");
        errors.Check(Validation.Id(PlanId), "planId", "planId is required: a plan id.");
        SubscriptionMapping.Quantity(errors, Quantity);
        errors.Check(TrialDays is null or (>= 0 and <= 730), "trialDays", "trialDays is 0 to 730.");
        CustomerMapping.PaymentMethod(errors, PaymentMethod);
        var coupon = Coupon is null ? null : Coupon.ToCoupon(errors);
        errors.ThrowIfAny();
        return new NewSubscription(CustomerId!, PlanId!) { Quantity = Quantity ?? 1, TrialDays = TrialDays, PaymentMethod = PaymentMethod, Coupon = coupon };
    }
}

/// <summary>A discount from the first invoice: <c>id</c>; <c>percentOff</c> in parts per million (1–1,000,000;
/// 250000 is 25%) or <c>amountOff</c> in minor units of <c>currency</c>; <c>duration</c> once, repeating (with
/// <c>durationInPeriods</c>) or forever.</summary>
internal sealed class CouponInput
{
    public string? Id { get; init; }

    public long? PercentOff { get; init; }

    public long? AmountOff { get; init; }

    public string? Currency { get; init; }

    public string? Duration { get; init; }

    public int? DurationInPeriods { get; init; }

    public Coupon? ToCoupon(FieldErrors errors)
    {
        var ok = errors.Check(Id is { Length: >= 1 and <= 100 } && !string.IsNullOrWhiteSpace(Id), "coupon.id", "id has 1 to 100 characters.");
        ok &= errors.Check((PercentOff is null) != (AmountOff is null), "coupon.percentOff", "Give percentOff or amountOff (not both).");
        ok &= errors.Check(PercentOff is null or (>= 1 and <= 1_000_000), "coupon.percentOff", "percentOff is 1 to 1,000,000 parts per million (250000 is 25%).");
        ok &= errors.Check(AmountOff is null or >= 1, "coupon.amountOff", "amountOff is a whole number of minor units, 1 or more.");
        Currency? currency = null;
        if (AmountOff is not null)
        {
            currency = Validation.Currency(errors, "coupon.currency", Currency);
            ok &= currency is not null;
        }

        var duration = CouponDuration.Once;
        ok &= errors.Check(Duration is null || PlanMapping.TryEnum(Duration, out duration), "coupon.duration", "duration is once, repeating or forever.");
        ok &= errors.Check((duration == CouponDuration.Repeating) == (DurationInPeriods is not null) && DurationInPeriods is null or (>= 1 and <= 1000), "coupon.durationInPeriods", "durationInPeriods (1 to 1000) goes with duration repeating, and only with it.");
        if (!ok)
        {
            return null;
        }

        return PercentOff is { } ppm
            ? global::Billing.Invoices.Coupon.PercentOff(Id!, ppm, duration, DurationInPeriods)
            : global::Billing.Invoices.Coupon.AmountOffEach(Id!, new Money(AmountOff!.Value, currency!), duration, DurationInPeriods);
    }
}

/// <summary>A subscription's coupon and how many invoices it still applies to (null: forever).</summary>
internal sealed record DiscountDto(string CouponId, long? PercentOff, long? AmountOff, string Duration, int? PeriodsRemaining)
{
    public static DiscountDto? From(AppliedDiscount? d) => d is null ? null : new(
        d.Coupon.Id, d.Coupon.PercentOffPartsPerMillion, d.Coupon.AmountOff?.MinorUnits, PlanMapping.Snake(d.Coupon.Duration.ToString()), d.PeriodsRemaining);
}

/// <summary>POST /v1/subscriptions/{id}/cancel (body optional): <c>atPeriodEnd</c> (default false: now) and, when
/// canceling now, <c>prorate</c> (credit the unused time to the customer's balance; default false).</summary>
internal sealed class CancelSubscriptionRequest
{
    public bool? AtPeriodEnd { get; init; }

    public bool? Prorate { get; init; }

    public void Validate()
    {
        var errors = new FieldErrors();
        errors.Check(!(AtPeriodEnd == true && Prorate == true), "prorate", "prorate applies only when canceling now (atPeriodEnd false).");
        errors.ThrowIfAny();
    }
}

/// <summary>POST /v1/subscriptions/{id}/change and /change_preview: <c>planId</c> and/or <c>quantity</c>;
/// <c>atPeriodEnd</c> (default false); <c>prorationBehavior</c> create_prorations (default), always_invoice or none;
/// <c>prorationDate</c> (an instant in the current period, as previewed).</summary>
internal sealed class ChangeSubscriptionRequest
{
    public string? PlanId { get; init; }

    public long? Quantity { get; init; }

    public bool? AtPeriodEnd { get; init; }

    public string? ProrationBehavior { get; init; }

    public DateTimeOffset? ProrationDate { get; init; }

    public SubscriptionChange ToChange(bool preview)
    {
        var errors = new FieldErrors();
        errors.Check(PlanId is not null || Quantity is not null, "planId", "Give planId, quantity or both.");
        errors.Check(PlanId is null || Validation.Id(PlanId), "planId", "planId is a plan id.");
        if (Quantity is not null)
        {
            SubscriptionMapping.Quantity(errors, Quantity);
        }

        var behavior = global::Billing.Proration.ProrationBehavior.CreateProrations;
        errors.Check(ProrationBehavior is null || PlanMapping.TryEnum(ProrationBehavior, out behavior), "prorationBehavior", "prorationBehavior is one of create_prorations, always_invoice, none.");
        errors.Check(!(preview && AtPeriodEnd == true), "atPeriodEnd", "A preview is of an immediate change; a change at period end is not prorated.");
        errors.Check(!(AtPeriodEnd == true && ProrationDate is not null), "prorationDate", "prorationDate applies to immediate changes only.");
        errors.ThrowIfAny();
        return new SubscriptionChange
        {
            PlanId = PlanId,
            Quantity = Quantity,
            AtPeriodEnd = AtPeriodEnd ?? false,
            ProrationBehavior = behavior,
            ProrationDate = ProrationDate,
        };
    }
}

internal sealed record PeriodDto(DateTimeOffset Start, DateTimeOffset End)
{
    public static PeriodDto From(BillingPeriod period) => new(period.Start, period.End);

    public static PeriodDto? From(BillingPeriod? period) => period is { } p ? new(p.Start, p.End) : null;
}

internal sealed record PendingChangeDto(string PlanId, long Quantity);

/// <summary>A subscription as the API shows it.</summary>
internal sealed record SubscriptionDto(
    string Id,
    string Object,
    string CustomerId,
    string PlanId,
    long Quantity,
    string Status,
    PeriodDto CurrentPeriod,
    DateTimeOffset? TrialEnd,
    bool CancelAtPeriodEnd,
    DateTimeOffset? CanceledAt,
    DateTimeOffset? PausedAt,
    PendingChangeDto? PendingChange,
    DiscountDto? Discount,
    string? PaymentMethod,
    string? LatestInvoiceId,
    string? TestClockId,
    DateTimeOffset CreatedAt)
{
    public static SubscriptionDto From(Subscription s) => new(
        s.Id,
        "subscription",
        s.CustomerId,
        s.PlanId,
        s.Quantity,
        PlanMapping.Snake(s.Status.ToString()),
        PeriodDto.From(s.CurrentPeriod),
        s.TrialEnd,
        s.CancelAtPeriodEnd,
        s.CanceledAt,
        s.PausedAt,
        s.PendingChange is { } p ? new PendingChangeDto(p.PlanId, p.Quantity) : null,
        DiscountDto.From(s.Discount),
        s.PaymentMethod,
        s.LatestInvoiceId,
        s.TestClockId,
        s.CreatedAt);
}

/// <summary>How a proration amount was computed: <c>round(fullAmount × numeratorSeconds / denominatorSeconds)</c>.</summary>
internal sealed record ProrationFormulaDto(long FullAmount, long NumeratorSeconds, long DenominatorSeconds, string Rounding)
{
    public static ProrationFormulaDto From(ProrationFormula f) => new(f.FullAmount.MinorUnits, f.NumeratorSeconds, f.DenominatorSeconds, PlanMapping.Snake(f.Rounding.ToString()));
}

internal sealed record ProrationLineDto(string Kind, long Amount, DateTimeOffset From, DateTimeOffset To, ProrationFormulaDto Formula)
{
    public static ProrationLineDto? Create(ProrationLine? line) => line is { } l
        ? new(PlanMapping.Snake(l.Kind.ToString()), l.Amount.MinorUnits, l.From, l.To, ProrationFormulaDto.From(l.Formula))
        : null;
}

/// <summary>The proration of an immediate change: a credit for the unused time of the old price, a debit for the
/// rest of the period at the new one, and the net (minor units of <c>currency</c>).</summary>
internal sealed record ProrationPreviewDto(string Object, string ProrationBehavior, string Currency, ProrationLineDto? Credit, ProrationLineDto? Debit, long Net, bool InvoiceImmediately)
{
    public static ProrationPreviewDto From(ProrationResult r) => new(
        "proration_preview",
        PlanMapping.Snake(r.Behavior.ToString()),
        r.Net.Currency.Code,
        ProrationLineDto.Create(r.Credit),
        ProrationLineDto.Create(r.Debit),
        r.Net.MinorUnits,
        r.InvoiceImmediately);
}

internal static class SubscriptionMapping
{
    public static void Quantity(FieldErrors errors, long? quantity) =>
        errors.Check(quantity is null or (>= 1 and <= 1_000_000_000), "quantity", "quantity is 1 to 1,000,000,000.");

    /// <summary>A single-valued query filter (1 to 100 characters) or null when absent.</summary>
    public static string? Filter(FieldErrors errors, HttpRequest request, string name)
    {
        var values = request.Query[name];
        if (values.Count == 0)
        {
            return null;
        }

        errors.Check(values.Count == 1 && Validation.Id(values[0]), name, $"{name} is one id (1 to 100 characters).");
        return values[0];
    }

    /// <summary>A status filter: one of the enum's snake_case names, returned as stored.</summary>
    public static string? StatusFilter<TEnum>(FieldErrors errors, HttpRequest request)
        where TEnum : struct, Enum
    {
        var values = request.Query["status"];
        if (values.Count == 0)
        {
            return null;
        }

        var names = string.Join(", ", Enum.GetValues<TEnum>().Select(v => PlanMapping.Snake(v.ToString())));
        return errors.Check(values.Count == 1 && PlanMapping.TryEnum<TEnum>(values[0], out _), "status", $"status is one of {names}.") ? values[0] : null;
    }
}
