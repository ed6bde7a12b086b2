using Billing.Dunning;
using Billing.Periods;

namespace Billing.Invoices;

/// <summary>Why an invoice was created.</summary>
public enum BillingReason
{
    /// <summary>The first invoice of a subscription.</summary>
    SubscriptionCreate = 0,

    /// <summary>A renewal.</summary>
    SubscriptionCycle = 1,

    /// <summary>A mid-period change invoiced immediately (<c>always_invoice</c>).</summary>
    SubscriptionUpdate = 2,

    /// <summary>Created by hand.</summary>
    Manual = 3,
}

/// <summary>An invoice. Lines and amounts are frozen once it leaves <see cref="InvoiceStatus.Draft"/>.</summary>
/// <remarks>
/// <see cref="Total"/> is always the exact sum of the lines (inclusive tax lines excepted, see
/// <see cref="InvoiceLine.IsInclusiveTax"/>). <see cref="DedupKey"/> is unique per store, which makes a second
/// invoice for the same subscription period impossible even when two billing runs race.
/// </remarks>
public sealed record Invoice
{
    /// <summary>The invoice's id (<c>in_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The customer.</summary>
    public required string CustomerId { get; init; }

    /// <summary>The subscription billed, if any.</summary>
    public string? SubscriptionId { get; init; }

    /// <summary>
    /// Unique per store: <c>{subscription}/period/{start ticks}</c> for the periods of a billing cycle (so a period
    /// is never invoiced twice), <c>{subscription}/update/v{version}</c> for invoices made by a change (an immediate
    /// proration, a restart, a resume or a new interval, which open a new cycle).
    /// </summary>
    public required string DedupKey { get; init; }

    /// <summary>Why it was created.</summary>
    public required BillingReason Reason { get; init; }

    /// <summary>The human number (<c>INV-000042</c>), assigned gap-free on finalization; null while draft.</summary>
    public string? Number { get; init; }

    /// <summary>The lifecycle state.</summary>
    public required InvoiceStatus Status { get; init; }

    /// <summary>The currency.</summary>
    public required Currency Currency { get; init; }

    /// <summary>The subscription period billed, if any.</summary>
    public BillingPeriod? Period { get; init; }

    /// <summary>The lines: items, then discount, then tax.</summary>
    public required IReadOnlyList<InvoiceLine> Lines { get; init; }

    /// <summary>Sum of the item lines.</summary>
    public required Money Subtotal { get; init; }

    /// <summary>The discount (zero or negative).</summary>
    public required Money Discount { get; init; }

    /// <summary>
    /// The coupon applied to this invoice, if any. Kept so that the discount is computed again when a draft's usage
    /// lines are priced again at finalization.
    /// </summary>
    public Coupon? Coupon { get; init; }

    /// <summary>The tax (added, or contained when inclusive).</summary>
    public required Money Tax { get; init; }

    /// <summary>The total: the exact sum of the lines.</summary>
    public required Money Total { get; init; }

    /// <summary>Customer credit balance used on this invoice.</summary>
    public required Money CreditApplied { get; init; }

    /// <summary>What must be charged: total minus credit applied, never negative.</summary>
    public required Money AmountDue { get; init; }

    /// <summary>What has been paid so far.</summary>
    public required Money AmountPaid { get; init; }

    /// <summary>Where the invoice stands in dunning.</summary>
    public required DunningState Dunning { get; init; }

    /// <summary>How many charge attempts were made (the next attempt's key uses this + 1).</summary>
    public int PaymentAttempts { get; init; }

    /// <summary>When the billing run must next act on it (finalize a draft, retry a payment), or null.</summary>
    public DateTimeOffset? NextActionAt { get; init; }

    /// <summary>The customer's test clock, or null.</summary>
    public string? TestClockId { get; init; }

    /// <summary>When it was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it was finalized.</summary>
    public DateTimeOffset? FinalizedAt { get; init; }

    /// <summary>When it was paid, voided or marked uncollectible.</summary>
    public DateTimeOffset? ClosedAt { get; init; }

    /// <summary>The optimistic-concurrency version.</summary>
    public long Version { get; init; }
}
