using Billing.Invoices;
using Billing.Pricing;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

/// <summary>POST /v1/invoices/{id}/pay (body optional): <c>paymentMethod</c> for this attempt (default: the
/// subscription's, else the customer's).</summary>
internal sealed class PayInvoiceRequest
{
    public string? PaymentMethod { get; init; }

    public void Validate()
    {
        var errors = new FieldErrors();
        CustomerMapping.PaymentMethod(errors, PaymentMethod);
        errors.ThrowIfAny();
    }
}

internal sealed record PriceComponentDto(string Kind, int TierIndex, long Quantity, long UnitAmount, long Amount, long? TierFrom, long? TierUpTo);

/// <summary>How a usage (or plan) line's amount was priced: per tier or block, quantity × unit amount.</summary>
internal sealed record PriceBreakdownDto(long Quantity, long Total, IReadOnlyList<PriceComponentDto> Components)
{
    public static PriceBreakdownDto? From(PriceBreakdown? b) => b is null ? null : new(
        b.Quantity,
        b.Total.MinorUnits,
        [.. b.Components.Select(c => new PriceComponentDto(PlanMapping.Snake(c.Kind.ToString()), c.TierIndex, c.Quantity, c.UnitAmount, c.Amount.MinorUnits, c.TierFrom, c.TierUpTo))]);
}

/// <summary>An invoice line; <c>amount</c> in minor units (negative for credits and discounts).</summary>
internal sealed record InvoiceLineDto(
    string Kind,
    string Description,
    long Amount,
    long Quantity,
    PeriodDto? Period,
    ProrationFormulaDto? Proration,
    string? MeterKey,
    string? PlanId,
    PriceBreakdownDto? Breakdown,
    TaxRateDto? TaxRate)
{
    public static InvoiceLineDto From(InvoiceLine l) => new(
        PlanMapping.Snake(l.Kind.ToString()),
        l.Description,
        l.Amount.MinorUnits,
        l.Quantity,
        PeriodDto.From(l.Period),
        l.Proration is { } p ? ProrationFormulaDto.From(p) : null,
        l.MeterKey,
        l.PlanId,
        PriceBreakdownDto.From(l.Breakdown),
        l.TaxRate is { } t ? new TaxRateDto(t.Name, t.PartsPerMillion, t.Inclusive) : null);
}

/// <summary>An invoice with its lines; every amount is minor units of <c>currency</c> (<c>discount</c> and credits are
/// negative), <c>total</c> is the exact sum
/// of the lines (inclusive tax lines are informational).</summary>
internal sealed record InvoiceDto(
    string Id,
    string Object,
    string CustomerId,
    string? SubscriptionId,
    string? Number,
    string Status,
    string BillingReason,
    string Currency,
    PeriodDto? Period,
    IReadOnlyList<InvoiceLineDto> Lines,
    long Subtotal,
    long Discount,
    long Tax,
    long Total,
    long CreditApplied,
    long AmountDue,
    long AmountPaid,
    int PaymentAttempts,
    DateTimeOffset? NextPaymentAttemptAt,
    string? TestClockId,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinalizedAt,
    DateTimeOffset? ClosedAt)
{
    public static InvoiceDto From(Invoice i) => new(
        i.Id,
        "invoice",
        i.CustomerId,
        i.SubscriptionId,
        i.Number,
        PlanMapping.Snake(i.Status.ToString()),
        PlanMapping.Snake(i.Reason.ToString()),
        i.Currency.Code,
        PeriodDto.From(i.Period),
        [.. i.Lines.Select(InvoiceLineDto.From)],
        i.Subtotal.MinorUnits,
        i.Discount.MinorUnits,
        i.Tax.MinorUnits,
        i.Total.MinorUnits,
        i.CreditApplied.MinorUnits,
        i.AmountDue.MinorUnits,
        i.AmountPaid.MinorUnits,
        i.PaymentAttempts,
        i.Dunning.NextAttemptAt,
        i.TestClockId,
        i.CreatedAt,
        i.FinalizedAt,
        i.ClosedAt);
}

/// <summary>The next renewal invoice of a subscription, as it would be now (nothing stored).</summary>
internal sealed record UpcomingInvoiceDto(
    string Object,
    string SubscriptionId,
    string Currency,
    IReadOnlyList<InvoiceLineDto> Lines,
    long Subtotal,
    long Discount,
    long Tax,
    bool TaxIsInclusive,
    long Total,
    long CreditApplied,
    long AmountDue,
    long CreditBalanceAfter)
{
    public static UpcomingInvoiceDto From(string subscriptionId, InvoiceCalculation c) => new(
        "upcoming_invoice",
        subscriptionId,
        c.Total.Currency.Code,
        [.. c.Lines.Select(InvoiceLineDto.From)],
        c.Subtotal.MinorUnits,
        c.Discount.MinorUnits,
        c.Tax.MinorUnits,
        c.TaxIsInclusive,
        c.Total.MinorUnits,
        c.CreditApplied.MinorUnits,
        c.AmountDue.MinorUnits,
        c.CreditBalanceAfter.MinorUnits);
}

/// <summary>One payment attempt of an invoice: <c>outcome</c> succeeded, requires_action (with
/// <c>clientSecret</c>), declined (with <c>declineType</c> hard/soft and <c>declineCode</c>) or failed_retryable.</summary>
internal sealed record PaymentDto(
    string Id,
    string Object,
    string InvoiceId,
    string CustomerId,
    int Attempt,
    long Amount,
    string Currency,
    string PaymentMethod,
    string Status,
    string? Outcome,
    string? DeclineType,
    string? DeclineCode,
    string? Message,
    string? ClientSecret,
    string? GatewayPaymentId,
    long AmountRefunded,
    DateTimeOffset CreatedAt)
{
    public static PaymentDto From(Billing.Payments.Payment p) => new(
        p.Id,
        "payment",
        p.InvoiceId,
        p.CustomerId,
        p.Attempt,
        p.Amount.MinorUnits,
        p.Amount.Currency.Code,
        p.PaymentMethod,
        PlanMapping.Snake(p.Status.ToString()),
        p.Result is { } r ? PlanMapping.Snake(r.Outcome.ToString()) : null,
        p.Result?.DeclineType is { } d ? PlanMapping.Snake(d.ToString()) : null,
        p.Result?.DeclineCode,
        p.Result?.Message,
        p.Result?.ClientSecret,
        p.GatewayPaymentId,
        p.AmountRefunded.MinorUnits,
        p.CreatedAt);
}
