namespace Billing.Usage;

/// <summary>
/// One usage event as a counter sees it: already validated and resolved to its counter (customer, meter, period) by
/// the metering service.
/// </summary>
/// <remarks>
/// A struct of references and numbers: recording one costs no allocation. <see cref="Quantity"/> is ignored by
/// <see cref="MeterAggregation.Count"/>; <see cref="UniqueValue"/> is used by <see cref="MeterAggregation.UniqueCount"/>
/// only, and must be set there.
/// </remarks>
public readonly record struct UsageCounterEvent
{
    /// <summary>The counter the event goes to.</summary>
    public required UsageCounterKey Counter { get; init; }

    /// <summary>How the meter aggregates.</summary>
    public required MeterAggregation Aggregation { get; init; }

    /// <summary>The quantity (≥ 0).</summary>
    public required long Quantity { get; init; }

    /// <summary>The idempotency key (1–255 characters), unique per customer within the dedup window.</summary>
    public required string IdempotencyKey { get; init; }

    /// <summary>When the usage happened (orders <see cref="MeterAggregation.Last"/>).</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The value counted by <see cref="MeterAggregation.UniqueCount"/>; null for other aggregations.</summary>
    public string? UniqueValue { get; init; }

    /// <summary>The hard limit on the counter's total, or null for none.</summary>
    public long? HardLimit { get; init; }

    /// <summary>When the counter receives the event (the service's clock).</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>How long the idempotency key stays taken after <see cref="Now"/>.</summary>
    public required TimeSpan DedupWindow { get; init; }

    /// <summary>How long the counter is kept after <see cref="Now"/> (adapters with expiry, such as Redis).</summary>
    public TimeSpan CounterRetention { get; init; }

    /// <summary>
    /// The acceptance token: a 64-bit value the metering service draws for each event it sends (0 for none). A counter
    /// that accepts the event keeps it with the idempotency key and answers later duplicates of the key with it
    /// (<see cref="UsageCounterResult.AcceptanceToken"/>); a rebuild keeps the token of each event it is given.
    /// </summary>
    /// <remarks>
    /// Tokens are unique per event the service sends (a per-process random base plus a sequence), so two acceptances of
    /// one key carry the same token only when they are the same acceptance. Counters store it as is and never interpret it.
    /// </remarks>
    public long AcceptanceToken { get; init; }
}
