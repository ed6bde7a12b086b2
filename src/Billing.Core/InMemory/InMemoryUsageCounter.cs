using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Billing.Ports;
using Billing.Usage;

namespace Billing.InMemory;

/// <summary>
/// The embedded usage counters: thread-safe, one lock per customer, no allocation per event once a counter exists.
/// </summary>
/// <remarks>
/// <para>
/// Customers are found without a lock (a concurrent map read); each customer has its own lock guarding its
/// idempotency keys and counters, so events of different customers never wait on each other and every event of one
/// customer is serialized: the idempotency check, the hard-limit check and the increment are one critical section.
/// </para>
/// <para>
/// Each idempotency key keeps the total and the <see cref="UsageCounterEvent.AcceptanceToken"/> of the event that took it,
/// which a duplicate answers with. Idempotency keys expire after their dedup window; a customer's expired keys are swept when its key table is full
/// (one sequential pass, no key re-hashed), and the table is sized to twice the live keys, so memory follows the window,
/// not the history. Totals live for the life of the process: this
/// is the single-process default; use the Redis adapter to share counters between processes.
/// </para>
/// </remarks>
public sealed class InMemoryUsageCounter : IUsageCounter
{
    private const int MaximumInitialKeys = 1 << 20;
    private readonly ConcurrentDictionary<string, CustomerCounters> _customers = new(StringComparer.Ordinal);
    private readonly Func<string, CustomerCounters> _newCustomer;

    /// <summary>Creates the counters.</summary>
    /// <param name="expectedKeysPerCustomer">
    /// Live idempotency keys per customer to keep room for (a hint; at most 2^20): a customer's key table grows as its
    /// keys arrive and, once it has reached this size, is not shrunk below it when keys expire. Memory is taken as keys
    /// arrive, not up front.
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="expectedKeysPerCustomer"/> is negative.</exception>
    public InMemoryUsageCounter(int expectedKeysPerCustomer = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expectedKeysPerCustomer);
        var capacity = Math.Min(expectedKeysPerCustomer, MaximumInitialKeys);
        _newCustomer = _ => new CustomerCounters(capacity);
    }

    /// <inheritdoc />
    public ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Record(in usageEvent));

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        var results = new UsageCounterResult[events.Count];
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = Record(events[i]);
        }

        return ValueTask.FromResult<IReadOnlyList<UsageCounterResult>>(results);
    }

    /// <inheritdoc />
    public ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(counter.CustomerId);
        ArgumentNullException.ThrowIfNull(counter.MeterKey);
        if (!_customers.TryGetValue(counter.CustomerId, out var customer))
        {
            return ValueTask.FromResult(0L);
        }

        lock (customer.Gate)
        {
            return ValueTask.FromResult(customer.Find(counter.MeterKey, counter.PeriodStart.UtcTicks) is { } state ? state.Total : 0L);
        }
    }

    /// <inheritdoc />
    public ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(counter.CustomerId);
        ArgumentNullException.ThrowIfNull(counter.MeterKey);
        ArgumentNullException.ThrowIfNull(events);
        foreach (var e in events)
        {
            UsageCounterEvents.Validate(e);
            if (e.Counter.CustomerId != counter.CustomerId || e.Counter.MeterKey != counter.MeterKey || e.Counter.PeriodStart != counter.PeriodStart)
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' belongs to another counter.", nameof(events));
            }
        }

        var state = new UsageCounterState();
        var customer = CustomerOf(counter.CustomerId);
        lock (customer.Gate)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var e in events)
            {
                if (seen.Add(e.IdempotencyKey))
                {
                    customer.Keys.Put(e.IdempotencyKey, ExpiryOf(e), state.Apply(aggregation, e), e.AcceptanceToken);
                }
            }

            customer.Replace(counter.MeterKey, counter.PeriodStart.UtcTicks, state);
            return ValueTask.FromResult(state.Total);
        }
    }

    /// <summary>Records one event synchronously (the in-process hot path; <see cref="RecordAsync"/> wraps it).</summary>
    /// <param name="e">The event.</param>
    /// <returns>What happened, with the counter's total.</returns>
    /// <exception cref="ArgumentException">A malformed event.</exception>
    /// <exception cref="OverflowException">A sum or count past <see cref="long.MaxValue"/> (nothing changes).</exception>
    public UsageCounterResult Record(in UsageCounterEvent e)
    {
        UsageCounterEvents.Validate(e);
        var customer = CustomerOf(e.Counter.CustomerId);
        var nowTicks = e.Now.UtcTicks;
        lock (customer.Gate)
        {
            var keys = customer.Keys;
            var hashCode = IdempotencyKeyTable.HashOf(e.IdempotencyKey);
            var index = keys.Find(e.IdempotencyKey, hashCode);
            if (index >= 0 && keys.ExpiresAtTicks(index) > nowTicks)
            {
                return new UsageCounterResult(UsageOutcome.Duplicate, keys.Total(index), keys.Token(index));
            }

            // A refused event leaves its key free: a new key is not added, an expired one is marked expired for good.
            var state = customer.Find(e.Counter.MeterKey, e.Counter.PeriodStart.UtcTicks) ?? customer.Add(e.Counter.MeterKey, e.Counter.PeriodStart.UtcTicks);
            long candidate;
            try
            {
                candidate = state.Peek(e.Aggregation, e);
            }
            catch (OverflowException)
            {
                Release(keys, index);
                throw;
            }

            if (e.HardLimit is { } limit && candidate > limit)
            {
                Release(keys, index);
                return new UsageCounterResult(UsageOutcome.OverLimit, state.Total);
            }

            state.Commit(e.Aggregation, e, candidate);
            if (index >= 0)
            {
                keys.Set(index, ExpiryOf(e), candidate, e.AcceptanceToken);
            }
            else
            {
                keys.Add(e.IdempotencyKey, hashCode, ExpiryOf(e), candidate, e.AcceptanceToken, nowTicks);
            }

            return new UsageCounterResult(UsageOutcome.Accepted, candidate);
        }
    }

    /// <summary>Leaves a key free after a refused event: an expired entry is marked expired whatever the clock.</summary>
    private static void Release(IdempotencyKeyTable keys, int index)
    {
        if (index >= 0)
        {
            keys.Set(index, 0, 0, 0);
        }
    }

    private static long ExpiryOf(in UsageCounterEvent e) => e.Now.UtcTicks + e.DedupWindow.Ticks;

    private CustomerCounters CustomerOf(string customerId) =>
        _customers.TryGetValue(customerId, out var customer) ? customer : _customers.GetOrAdd(customerId, _newCustomer);

    /// <summary>A customer's lock, idempotency keys (ordinal string keys: the fast dictionary path) and counters.</summary>
    private sealed class CustomerCounters(int capacity)
    {
        public readonly Lock Gate = new();
        public readonly IdempotencyKeyTable Keys = new(capacity);
        private (string Meter, long PeriodTicks, UsageCounterState State)[] _counters = [];

        /// <summary>The counter of a meter and period; a customer has few, so a scan beats a hash.</summary>
        public UsageCounterState? Find(string meter, long periodTicks)
        {
            foreach (var (m, p, state) in _counters)
            {
                if (p == periodTicks && (ReferenceEquals(m, meter) || string.Equals(m, meter, StringComparison.Ordinal)))
                {
                    return state;
                }
            }

            return null;
        }

        public UsageCounterState Add(string meter, long periodTicks)
        {
            var state = new UsageCounterState();
            _counters = [.. _counters, (meter, periodTicks, state)];
            return state;
        }

        public void Replace(string meter, long periodTicks, UsageCounterState state)
        {
            for (var i = 0; i < _counters.Length; i++)
            {
                if (_counters[i].PeriodTicks == periodTicks && string.Equals(_counters[i].Meter, meter, StringComparison.Ordinal))
                {
                    _counters[i].State = state;
                    return;
                }
            }

            _counters = [.. _counters, (meter, periodTicks, state)];
        }
    }
}
