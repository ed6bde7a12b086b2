using Billing.Ports;
using Billing.SampleHost.Http;
using Billing.Usage;

namespace Billing.SampleHost.Endpoints;

/// <summary>A usage event: <c>customerId</c> and/or <c>subscriptionId</c>, <c>meter</c>, <c>quantity</c> (≥ 0,
/// default 1), <c>timestamp</c> (default: now on the customer's clock), <c>idempotencyKey</c> (1–255 characters,
/// unique per customer), <c>properties</c>.</summary>
internal sealed class UsageEventRequest
{
    public string? CustomerId { get; init; }

    public string? SubscriptionId { get; init; }

    public string? Meter { get; init; }

    public long? Quantity { get; init; }

    public DateTimeOffset? Timestamp { get; init; }

    public string? IdempotencyKey { get; init; }

    public Dictionary<string, string>? Properties { get; init; }

    private static readonly string IdempotencyKeyMessage = $"idempotencyKey is required: 1 to {UsageCounterEvents.MaxIdempotencyKeyLength} characters, none of them NUL (U+0000).";
    private static readonly string MeterMessage = $"meter is required: 1 to {Billing.Usage.Meter.MaxKeyLength} characters a-z, 0-9, '_', '-', '.'.";
    private static readonly string PropertiesMessage = $"At most {UsageEventInput.MaxProperties} properties; keys and values are strings of up to {UsageEventInput.MaxPropertyLength} characters without NUL (U+0000).";

    /// <summary>Whether <see cref="Check"/> would find nothing (no strings built: the batch checks every event with it first).</summary>
    public bool IsValid() =>
        UsageEventInput.IsValidIdempotencyKey(IdempotencyKey)
        && (CustomerId is not null || SubscriptionId is not null)
        && (CustomerId is null || Validation.Id(CustomerId))
        && (SubscriptionId is null || Validation.Id(SubscriptionId))
        && Billing.Usage.Meter.IsValidKey(Meter)
        && Quantity is null or >= 0
        && PropertiesValid();

    /// <summary>The host's checks (the engine checks the rest and names the field too).</summary>
    public void Check(FieldErrors errors, string prefix)
    {
        errors.Check(UsageEventInput.IsValidIdempotencyKey(IdempotencyKey), prefix + "idempotencyKey", IdempotencyKeyMessage);
        errors.Check(CustomerId is not null || SubscriptionId is not null, prefix + "customerId", "Give customerId, subscriptionId or both.");
        errors.Check(CustomerId is null || Validation.Id(CustomerId), prefix + "customerId", "customerId is a customer id.");
        errors.Check(SubscriptionId is null || Validation.Id(SubscriptionId), prefix + "subscriptionId", "subscriptionId is a subscription id.");
        errors.Check(Billing.Usage.Meter.IsValidKey(Meter), prefix + "meter", MeterMessage);
        errors.Check(Quantity is null or >= 0, prefix + "quantity", "quantity is a whole number, 0 or more.");
        errors.Check(PropertiesValid(), prefix + "properties", PropertiesMessage);
    }

    private bool PropertiesValid()
    {
        if (Properties is null)
        {
            return true;
        }

        if (Properties.Count > UsageEventInput.MaxProperties)
        {
            return false;
        }

        foreach (var (key, value) in Properties)
        {
            if (!UsageEventInput.IsValidProperty(key, value))
            {
                return false;
            }
        }

        return true;
    }

    public UsageEventInput ToInput(DateTimeOffset now) => new()
    {
        CustomerId = CustomerId,
        SubscriptionId = SubscriptionId,
        MeterKey = Meter!,
        Quantity = Quantity ?? 1,
        Timestamp = Timestamp ?? now,
        IdempotencyKey = IdempotencyKey!,
        Properties = Properties,
    };
}

/// <summary>POST /v1/usage/batch: <c>events</c>, 1 to the batch limit.</summary>
internal sealed class UsageBatchRequest
{
    public List<UsageEventRequest?>? Events { get; init; }
}

/// <summary>What happened to one event: <c>accepted</c>, <c>duplicate</c> (its idempotency key was seen: counted
/// once) or <c>rejected</c> (with <c>reason</c>, <c>message</c> and the <c>field</c>).</summary>
internal sealed record UsageResultDto(
    string Object,
    int Index,
    string IdempotencyKey,
    string Status,
    string? Reason,
    string? Message,
    string? Field,
    string? SubscriptionId,
    string? Meter,
    DateTimeOffset? PeriodStart,
    long? Total)
{
    public static UsageResultDto From(int index, UsageIngestResult r) => new(
        "usage_result",
        index,
        r.IdempotencyKey,
        StatusName(r.Status),
        r.Reason,
        r.Message,
        r.Field is null ? null : ErrorHandlingMiddleware.JsonField(r.Field),
        r.SubscriptionId,
        r.Counter?.MeterKey,
        r.Counter?.PeriodStart,
        r.Total);

    /// <summary>The status in snake_case (the three known ones without formatting the enum each time).</summary>
    private static string StatusName(UsageIngestStatus status) => status switch
    {
        UsageIngestStatus.Accepted => "accepted",
        UsageIngestStatus.Duplicate => "duplicate",
        UsageIngestStatus.Rejected => "rejected",
        _ => PlanMapping.Snake(status.ToString()),
    };
}

internal sealed record MeterUsageDto(string Meter, string Aggregation, long Total, long CounterTotal);

/// <summary>Usage of a subscription's meters in one period: <c>total</c> is the durable aggregate invoices are
/// priced from, <c>counterTotal</c> the live counter (limits are enforced on it).</summary>
internal sealed record UsageSummaryDto(string Object, string SubscriptionId, string CustomerId, DateTimeOffset PeriodStart, DateTimeOffset? PeriodEnd, IReadOnlyList<MeterUsageDto> Meters);

internal sealed record EntitlementDecisionDto(string Object, string CustomerId, string Feature, bool Entitled, string? Reason, string? Kind, long? Limit, long? Used, long? Remaining, string? SubscriptionId)
{
    public static EntitlementDecisionDto From(string customerId, EntitlementDecision d) => new(
        "entitlement_check", customerId, d.Feature, d.Entitled, d.Reason, d.Kind is { } k ? PlanMapping.Snake(k.ToString()) : null, d.Limit, d.Used, d.Remaining, d.SubscriptionId);
}

/// <summary>"Now" for an event without a timestamp: the time of the customer's test clock, else the host's clock.
/// Reads through one session and caches per customer and subscription within one request.</summary>
internal sealed class UsageClock(IBillingStore store, TimeProvider time) : IAsyncDisposable
{
    private readonly Dictionary<string, DateTimeOffset> _customers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _subscriptions = new(StringComparer.Ordinal);
    private IBillingSession? _session;

    /// <summary>The event's timestamp, or "now" on its customer's clock when it has none.</summary>
    public ValueTask<DateTimeOffset> TimestampAsync(UsageEventRequest e, CancellationToken cancellationToken) =>
        e.Timestamp is { } timestamp ? ValueTask.FromResult(timestamp) : NowAsync(e.CustomerId, e.SubscriptionId, cancellationToken);

    /// <summary>Reads ahead the customers of the events that have no timestamp (one session, a few queries).</summary>
    public async ValueTask PreloadAsync(IEnumerable<UsageEventRequest?> events, CancellationToken cancellationToken)
    {
        var customers = events.Where(e => e is { Timestamp: null, SubscriptionId: null, CustomerId: not null }).Select(e => e!.CustomerId!).Distinct(StringComparer.Ordinal).ToList();
        if (customers.Count > 1)
        {
            var session = _session ??= await store.BeginAsync(cancellationToken).ConfigureAwait(false);
            await session.Subscriptions.PreloadByCustomersAsync(customers, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask<DateTimeOffset> NowAsync(string? customerId, string? subscriptionId, CancellationToken cancellationToken)
    {
        if (subscriptionId is not null && _subscriptions.TryGetValue(subscriptionId, out var cached))
        {
            return cached;
        }

        if (subscriptionId is null && customerId is not null && _customers.TryGetValue(customerId, out cached))
        {
            return cached;
        }

        var session = _session ??= await store.BeginAsync(cancellationToken).ConfigureAwait(false);
        string? clockId = null;
        if (subscriptionId is not null)
        {
            clockId = (await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false))?.TestClockId;
        }
        else if (customerId is not null)
        {
            clockId = (await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false))?.TestClockId;
        }

        var now = clockId is not null && await session.TestClocks.GetAsync(clockId, cancellationToken).ConfigureAwait(false) is { } clock
            ? clock.FrozenTime
            : time.GetUtcNow();
        if (subscriptionId is not null)
        {
            _subscriptions[subscriptionId] = now;
        }
        else if (customerId is not null)
        {
            _customers[customerId] = now;
        }

        return now;
    }

    public ValueTask DisposeAsync() => _session?.DisposeAsync() ?? ValueTask.CompletedTask;
}
