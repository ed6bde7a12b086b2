using Billing.Ports;
using Billing.Usage;

namespace Billing.InMemory;

/// <summary>
/// The embedded durable usage events: thread-safe, in process memory, unique per (customer, idempotency key). The
/// reference implementation of <see cref="IUsageEventStore"/> that the database adapters mirror.
/// </summary>
/// <remarks>
/// <para>
/// One lock guards the store, and a batch takes it once: a batch is stored as one step (all of its new events, or
/// none when it is malformed), and two batches carrying the same key store it exactly once. Instants are kept in UTC.
/// </para>
/// <para>
/// "Durable" only for the life of the process: use the EF Core adapter for events that must survive a restart. Keys
/// are kept for good, like a database's unique key, so memory grows with the number of events.
/// </para>
/// </remarks>
public sealed class InMemoryUsageEventStore : IUsageEventStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(string CustomerId, string Key), StoredUsageEvent> _byKey = [];
    private readonly Dictionary<UsageCounterKey, List<StoredUsageEvent>> _byCounter = [];
    private readonly Dictionary<long, HashSet<(string CustomerId, string MeterKey)>> _byPeriod = [];

    /// <summary>The number of stored events.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _byKey.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<StoredUsageEvent?> FindAsync(string customerId, string idempotencyKey, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(customerId);
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            return ValueTask.FromResult(_byKey.GetValueOrDefault((customerId, idempotencyKey)));
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">An event is malformed (see <see cref="Validate"/>); nothing of the batch is stored.</exception>
    public ValueTask<IReadOnlyList<bool>> AppendAsync(IReadOnlyList<StoredUsageEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        cancellationToken.ThrowIfCancellationRequested();
        var normalized = new StoredUsageEvent[events.Count];
        for (var i = 0; i < normalized.Length; i++)
        {
            normalized[i] = Normalize(Validate(events[i]));
        }

        var results = new bool[normalized.Length];
        lock (_gate)
        {
            for (var i = 0; i < normalized.Length; i++)
            {
                var e = normalized[i];
                if (!_byKey.TryAdd((e.Counter.CustomerId, e.IdempotencyKey), e))
                {
                    continue;
                }

                if (!_byCounter.TryGetValue(e.Counter, out var list))
                {
                    _byCounter[e.Counter] = list = [];
                    var period = e.Counter.PeriodStart.UtcTicks;
                    if (!_byPeriod.TryGetValue(period, out var counters))
                    {
                        _byPeriod[period] = counters = [];
                    }

                    counters.Add((e.Counter.CustomerId, e.Counter.MeterKey));
                }

                list.Add(e);
                results[i] = true;
            }
        }

        return ValueTask.FromResult<IReadOnlyList<bool>>(results);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StoredUsageEvent>> ListAsync(UsageCounterKey counter, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        StoredUsageEvent[] events;
        lock (_gate)
        {
            events = _byCounter.TryGetValue(Normalize(counter), out var list) ? [.. list] : [];
        }

        Array.Sort(events, CompareByTimestampThenKey);
        return ValueTask.FromResult<IReadOnlyList<StoredUsageEvent>>(events);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<UsageCounterKey>> ListCountersAsync(DateTimeOffset periodStart, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var start = periodStart.ToUniversalTime();
        (string CustomerId, string MeterKey)[] counters;
        lock (_gate)
        {
            counters = _byPeriod.TryGetValue(start.UtcTicks, out var set) ? [.. set] : [];
        }

        Array.Sort(counters, static (a, b) =>
        {
            var byCustomer = string.CompareOrdinal(a.CustomerId, b.CustomerId);
            return byCustomer != 0 ? byCustomer : string.CompareOrdinal(a.MeterKey, b.MeterKey);
        });
        return ValueTask.FromResult<IReadOnlyList<UsageCounterKey>>(counters.Select(c => new UsageCounterKey(c.CustomerId, c.MeterKey, start)).ToArray());
    }

    /// <inheritdoc />
    /// <remarks>
    /// Folds the counter's events through <see cref="UsageCounterState"/>, the one definition of the aggregations.
    /// Unique count counts the distinct non-null <see cref="StoredUsageEvent.UniqueValue"/>s (ordinal); events without
    /// one are not counted.
    /// </remarks>
    /// <exception cref="OverflowException">A sum or count past <see cref="long.MaxValue"/>.</exception>
    public ValueTask<long> AggregateAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!Enum.IsDefined(aggregation))
        {
            throw new ArgumentOutOfRangeException(nameof(aggregation), aggregation, "Unknown aggregation.");
        }

        var state = new UsageCounterState();
        lock (_gate)
        {
            if (_byCounter.TryGetValue(Normalize(counter), out var list))
            {
                foreach (var e in list)
                {
                    if (aggregation != MeterAggregation.UniqueCount || e.UniqueValue is not null)
                    {
                        state.Apply(aggregation, ToCounterEvent(e, aggregation));
                    }
                }
            }
        }

        return ValueTask.FromResult(state.Total);
    }

    /// <summary>Throws when an event cannot be stored: missing ids, a bad key, a negative quantity.</summary>
    /// <param name="usageEvent">The event.</param>
    /// <returns>The event.</returns>
    /// <exception cref="ArgumentException">The event is malformed (a bug in the caller: the metering service validates first).</exception>
    public static StoredUsageEvent Validate(StoredUsageEvent usageEvent)
    {
        ArgumentNullException.ThrowIfNull(usageEvent);
        if (string.IsNullOrEmpty(usageEvent.Counter.CustomerId) || string.IsNullOrEmpty(usageEvent.Counter.MeterKey))
        {
            throw new ArgumentException("A usage event needs a customer and a meter.", nameof(usageEvent));
        }

        if (string.IsNullOrEmpty(usageEvent.IdempotencyKey) || usageEvent.IdempotencyKey.Length > UsageCounterEvents.MaxIdempotencyKeyLength)
        {
            throw new ArgumentException($"The idempotency key must have 1 to {UsageCounterEvents.MaxIdempotencyKeyLength} characters.", nameof(usageEvent));
        }

        if (usageEvent.Quantity < 0)
        {
            throw new ArgumentException("The quantity must not be negative.", nameof(usageEvent));
        }

        return usageEvent;
    }

    /// <summary>The order of <see cref="IUsageEventStore.ListAsync"/>: timestamp, then idempotency key (ordinal).</summary>
    /// <param name="a">One event.</param>
    /// <param name="b">The other.</param>
    /// <returns>Their order.</returns>
    public static int CompareByTimestampThenKey(StoredUsageEvent a, StoredUsageEvent b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var byTime = a.Timestamp.UtcTicks.CompareTo(b.Timestamp.UtcTicks);
        return byTime != 0 ? byTime : string.CompareOrdinal(a.IdempotencyKey, b.IdempotencyKey);
    }

    /// <summary>A stored event as a counter sees it, to fold it through <see cref="UsageCounterState"/>.</summary>
    /// <param name="usageEvent">The stored event.</param>
    /// <param name="aggregation">The meter's aggregation.</param>
    /// <returns>The counter event (no hard limit; <see cref="UsageCounterEvent.Now"/> is the received time).</returns>
    public static UsageCounterEvent ToCounterEvent(StoredUsageEvent usageEvent, MeterAggregation aggregation)
    {
        ArgumentNullException.ThrowIfNull(usageEvent);
        return new UsageCounterEvent
        {
            Counter = usageEvent.Counter,
            Aggregation = aggregation,
            Quantity = usageEvent.Quantity,
            IdempotencyKey = usageEvent.IdempotencyKey,
            Timestamp = usageEvent.Timestamp,
            UniqueValue = usageEvent.UniqueValue,
            Now = usageEvent.ReceivedAt,
            DedupWindow = TimeSpan.Zero,
            AcceptanceToken = usageEvent.AcceptanceToken ?? 0,
        };
    }

    private static UsageCounterKey Normalize(UsageCounterKey key) =>
        key.PeriodStart.Offset == TimeSpan.Zero ? key : key with { PeriodStart = key.PeriodStart.ToUniversalTime() };

    private static StoredUsageEvent Normalize(StoredUsageEvent e) => e with
    {
        Counter = Normalize(e.Counter),
        Timestamp = e.Timestamp.ToUniversalTime(),
        ReceivedAt = e.ReceivedAt.ToUniversalTime(),
        Properties = e.Properties is null || e.Properties.Count == 0 ? Empty.Metadata : new Dictionary<string, string>(e.Properties, StringComparer.Ordinal),
        CountedAsNew = false, // a hint for the write, never kept
    };
}
