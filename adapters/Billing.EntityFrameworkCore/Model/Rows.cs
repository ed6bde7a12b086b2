namespace Billing.EntityFrameworkCore.Model;

// Row shapes of the billing tables. Internal: the domain records are the public face; these only carry columns.
// Instants are UTC DateTimeOffset (timestamptz on PostgreSQL, ticks on SQLite); nested values are JSON strings.
#pragma warning disable CA1819 // rows are plain column carriers

/// <summary>A row listed newest first (see <c>NewestFirst</c>).</summary>
internal interface IListedRow
{
    string Id { get; }

    DateTimeOffset CreatedAt { get; }
}

internal sealed class CustomerRow : IListedRow
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string Email { get; set; } = "";
    public string Currency { get; set; } = "";
    public string TimeZoneId { get; set; } = "";
    public string? DefaultPaymentMethod { get; set; }
    public long CreditBalanceMinor { get; set; }
    public string TaxRates { get; set; } = "[]";
    public string? ExternalId { get; set; }
    public string? TestClockId { get; set; }
    public string Metadata { get; set; } = "{}";
    public DateTimeOffset CreatedAt { get; set; }
    public long Version { get; set; }
}

internal sealed class PlanRow : IListedRow
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string? Description { get; set; }
    public string Currency { get; set; } = "";
    public string Price { get; set; } = "{}";
    public string IntervalUnit { get; set; } = "";
    public int IntervalCount { get; set; }
    public int TrialDays { get; set; }
    public bool Archived { get; set; }
    public string Metadata { get; set; } = "{}";
    public DateTimeOffset CreatedAt { get; set; }
    public long Version { get; set; }
    public string MeteredPrices { get; set; } = "[]";
    public string Entitlements { get; set; } = "[]";
}

internal sealed class SubscriptionRow
{
    public string Id { get; set; } = "";
    public string CustomerId { get; set; } = "";
    public string PlanId { get; set; } = "";
    public long Quantity { get; set; }
    public string Status { get; set; } = "";
    public DateTimeOffset ScheduleStart { get; set; }
    public DateTime AnchorLocal { get; set; }
    public DateTimeOffset CurrentPeriodStart { get; set; }
    public DateTimeOffset CurrentPeriodEnd { get; set; }
    public DateTimeOffset? TrialEnd { get; set; }
    public bool CancelAtPeriodEnd { get; set; }
    public DateTimeOffset? CanceledAt { get; set; }
    public DateTimeOffset? PausedAt { get; set; }
    public string? PendingChange { get; set; }
    public string PendingLines { get; set; } = "[]";
    public string? Discount { get; set; }
    public string? PaymentMethod { get; set; }
    public string? LatestInvoiceId { get; set; }
    public DateTimeOffset? NextActionAt { get; set; }
    public string? TestClockId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public long Version { get; set; }
    public DateTimeOffset? ClaimExpiresAt { get; set; }
}

internal sealed class InvoiceRow
{
    public string Id { get; set; } = "";
    public string CustomerId { get; set; } = "";
    public string? SubscriptionId { get; set; }
    public string DedupKey { get; set; } = "";
    public string Reason { get; set; } = "";
    public string? Number { get; set; }
    public string Status { get; set; } = "";
    public string Currency { get; set; } = "";
    public DateTimeOffset? PeriodStart { get; set; }
    public DateTimeOffset? PeriodEnd { get; set; }
    public long SubtotalMinor { get; set; }
    public long DiscountMinor { get; set; }
    public long TaxMinor { get; set; }
    public long TotalMinor { get; set; }
    public long CreditAppliedMinor { get; set; }
    public long AmountDueMinor { get; set; }
    public long AmountPaidMinor { get; set; }
    public string? Coupon { get; set; }
    public string Dunning { get; set; } = "{}";
    public int PaymentAttempts { get; set; }
    public DateTimeOffset? NextActionAt { get; set; }
    public string? TestClockId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? FinalizedAt { get; set; }
    public DateTimeOffset? ClosedAt { get; set; }
    public long Version { get; set; }
    public DateTimeOffset? ClaimExpiresAt { get; set; }
    public List<InvoiceLineRow> Lines { get; set; } = [];
}

internal sealed class InvoiceLineRow
{
    public string InvoiceId { get; set; } = "";
    public int LineNo { get; set; }
    public string Kind { get; set; } = "";
    public string Description { get; set; } = "";
    public long AmountMinor { get; set; }
    public string Currency { get; set; } = "";
    public long Quantity { get; set; }
    public DateTimeOffset? PeriodStart { get; set; }
    public DateTimeOffset? PeriodEnd { get; set; }
    public string? Proration { get; set; }
    public string? MeterKey { get; set; }
    public string? TaxRate { get; set; }
    public string? PlanId { get; set; }
    public string? Breakdown { get; set; }
}

internal sealed class PaymentRow
{
    public string Id { get; set; } = "";
    public string InvoiceId { get; set; } = "";
    public string CustomerId { get; set; } = "";
    public int Attempt { get; set; }
    public string IdempotencyKey { get; set; } = "";
    public long AmountMinor { get; set; }
    public string Currency { get; set; } = "";
    public string PaymentMethod { get; set; } = "";
    public string Status { get; set; } = "";
    public string? GatewayPaymentId { get; set; }
    public string? Result { get; set; }
    public long AmountRefundedMinor { get; set; }
    public int RefundCount { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public long Version { get; set; }
}

internal sealed class TestClockRow
{
    public string Id { get; set; } = "";
    public string? Name { get; set; }
    public DateTimeOffset FrozenTime { get; set; }
    public long Version { get; set; }
}

internal sealed class OutboxEventRow
{
    public long Id { get; set; }
    public long? Position { get; set; }
    public string EventId { get; set; } = "";
    public string Type { get; set; } = "";
    public DateTimeOffset OccurredAt { get; set; }
    public string ObjectType { get; set; } = "";
    public string ObjectId { get; set; } = "";
    public string? CustomerId { get; set; }
    public string Data { get; set; } = "{}";
}

internal sealed class IdempotencyRecordRow
{
    public string Scope { get; set; } = "";
    public string Key { get; set; } = "";
    public string RequestHash { get; set; } = "";
    public string Response { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
}

internal sealed class UsageEventRow
{
    public string CustomerId { get; set; } = "";
    public string IdempotencyKey { get; set; } = "";
    public string MeterKey { get; set; } = "";
    public DateTimeOffset PeriodStart { get; set; }
    public string? SubscriptionId { get; set; }
    public long Quantity { get; set; }
    public DateTimeOffset Timestamp { get; set; }
    public string? UniqueValue { get; set; }
    public string Properties { get; set; } = "{}";
    public DateTimeOffset ReceivedAt { get; set; }
    public long? TotalAfter { get; set; }
    public bool Appended { get; set; } = true;
    public long? AcceptanceToken { get; set; }
}

internal sealed class UsageCounterRow
{
    public string CustomerId { get; set; } = "";
    public string MeterKey { get; set; } = "";
    public DateTimeOffset PeriodStart { get; set; }
    public long Total { get; set; }
    public DateTimeOffset? LastTimestamp { get; set; }
    public string? LastKey { get; set; }
}
