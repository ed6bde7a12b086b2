namespace Billing.Usage;

/// <summary>An accepted usage event as the durable store keeps it: the system of record for billable usage.</summary>
/// <remarks>
/// The durable store holds one row per (customer, idempotency key), for good: its unique key is the final guard
/// against double counting, even where a fast counter has forgotten a key (after a flush, or past the dedup window).
/// </remarks>
public sealed record StoredUsageEvent
{
    /// <summary>The counter the event was counted in (customer, meter, period start).</summary>
    public required UsageCounterKey Counter { get; init; }

    /// <summary>The subscription the event was billed to, if it named one.</summary>
    public string? SubscriptionId { get; init; }

    /// <summary>The quantity (≥ 0).</summary>
    public required long Quantity { get; init; }

    /// <summary>The idempotency key (1–255 characters).</summary>
    public required string IdempotencyKey { get; init; }

    /// <summary>When the usage happened.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The value of the meter's unique-count property, when the meter counts unique values.</summary>
    public string? UniqueValue { get; init; }

    /// <summary>The event's properties (free-form; at most 50).</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = Empty.Metadata;

    /// <summary>When the service accepted the event.</summary>
    public required DateTimeOffset ReceivedAt { get; init; }

    /// <summary>
    /// The token of the counter acceptance this event was stored for (<see cref="UsageCounterEvent.AcceptanceToken"/>),
    /// or null when unknown (events stored before tokens existed, or stored by a durable counter).
    /// </summary>
    /// <remarks>
    /// A duplicate is appended with the token of the original acceptance, so whichever of an event and its concurrent
    /// repeat reaches the store first, the stored row names the one acceptance. Stores keep the token of the append
    /// that stored the row; a later append of the key changes nothing.
    /// </remarks>
    public long? AcceptanceToken { get; init; }

    /// <summary>
    /// Whether the usage counter counted this event as new (accepted, not a duplicate), so the store most likely
    /// holds no row of its key yet. A hint for the store's write path; stores never keep or return it.
    /// </summary>
    /// <remarks>
    /// A store may write such events the cheap way, without handling a stored key (PostgreSQL: <c>COPY</c> instead of
    /// <c>INSERT … ON CONFLICT</c>), and must fall back to its usual handling when a key is stored after all (a counter
    /// that forgot the key, a concurrent repeat, another instance): the result of an append never depends on the hint.
    /// The metering service sets it for events a fast (not durable) counter accepted; a durable counter writes the row
    /// itself before the append, so it is never set there.
    /// </remarks>
    public bool CountedAsNew { get; init; }
}
