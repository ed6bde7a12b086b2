using Billing.Invoices;
using Billing.Periods;
using Billing.Proration;

namespace Billing.Subscriptions;

/// <summary>A customer's subscription to a plan.</summary>
/// <remarks>
/// Its billing periods come from a <see cref="BillingSchedule"/> rebuilt from <see cref="ScheduleStart"/>,
/// <see cref="AnchorLocal"/>, the plan's interval and the customer's time zone. <see cref="NextActionAt"/> is
/// when the billing run must next look at it (trial end, period end, scheduled change or cancellation).
/// </remarks>
public sealed record Subscription
{
    /// <summary>The subscription's id (<c>sub_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The customer.</summary>
    public required string CustomerId { get; init; }

    /// <summary>The current plan.</summary>
    public required string PlanId { get; init; }

    /// <summary>The quantity (seats), 1 or more.</summary>
    public required long Quantity { get; init; }

    /// <summary>The lifecycle state.</summary>
    public required SubscriptionStatus Status { get; init; }

    /// <summary>Where the billing schedule starts (the subscription start, or the trial end).</summary>
    public required DateTimeOffset ScheduleStart { get; init; }

    /// <summary>The billing anchor on the customer's calendar.</summary>
    public required DateTime AnchorLocal { get; init; }

    /// <summary>The current period (the trial while trialing).</summary>
    public required BillingPeriod CurrentPeriod { get; init; }

    /// <summary>When the trial ends, if there is one.</summary>
    public DateTimeOffset? TrialEnd { get; init; }

    /// <summary>Whether the subscription cancels at the end of the current period.</summary>
    public bool CancelAtPeriodEnd { get; init; }

    /// <summary>When it was canceled, if it was.</summary>
    public DateTimeOffset? CanceledAt { get; init; }

    /// <summary>When it was paused, if it is.</summary>
    public DateTimeOffset? PausedAt { get; init; }

    /// <summary>A plan or quantity change to apply at the next renewal, if any.</summary>
    public ScheduledChange? PendingChange { get; init; }

    /// <summary>Proration lines waiting for the next invoice (<see cref="ProrationBehavior.CreateProrations"/>).</summary>
    /// <remarks>
    /// Billed and cleared by the next renewal, or by the final invoice made at an immediate plan change (to the same
    /// interval), at a cancellation (by hand, at period end, or by dunning): whichever comes first, so each is billed once.
    /// </remarks>
    public IReadOnlyList<InvoiceLine> PendingLines { get; init; } = [];

    /// <summary>The coupon in effect and how many more periods it applies, if any.</summary>
    public AppliedDiscount? Discount { get; init; }

    /// <summary>The payment method for this subscription, overriding the customer's default.</summary>
    public string? PaymentMethod { get; init; }

    /// <summary>The most recent invoice.</summary>
    public string? LatestInvoiceId { get; init; }

    /// <summary>When the billing run must next act on the subscription, or null when nothing is due ever.</summary>
    public DateTimeOffset? NextActionAt { get; init; }

    /// <summary>The customer's test clock (copied so due work can be found per clock), or null.</summary>
    public string? TestClockId { get; init; }

    /// <summary>When it was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>The optimistic-concurrency version.</summary>
    public long Version { get; init; }
}

/// <summary>A plan or quantity change applied at the next renewal.</summary>
/// <param name="PlanId">The plan after the change.</param>
/// <param name="Quantity">The quantity after the change.</param>
public sealed record ScheduledChange(string PlanId, long Quantity);

/// <summary>A coupon in effect on a subscription.</summary>
/// <param name="Coupon">The coupon.</param>
/// <param name="PeriodsRemaining">For once and repeating coupons: how many more invoices it applies to; null for forever.</param>
public sealed record AppliedDiscount(Coupon Coupon, int? PeriodsRemaining);
