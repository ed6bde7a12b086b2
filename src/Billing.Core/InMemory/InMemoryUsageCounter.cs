using System.Runtime.InteropServices;
using Billing.Ports;
using Billing.Usage;

namespace Billing.InMemory;

/// <summary>
/// The embedded usage counters: thread-safe, striped by customer, no allocation per event once a counter exists.
/// </summary>
/// <remarks>
/// <para>
/// Each customer maps to one of a fixed set of stripes (a lock, the customer's idempotency keys and counters), so
/// events of different customers rarely wait on each other and every event of one customer is serialized: the
/// idempotency check, the hard-limit check and the increment are one critical section.
/// </para>
/// <para>
/// Idempotency keys expire after their dedup window; expired keys are swept from a stripe when it has doubled in size
/// since the last sweep, so memory follows the window, not the history. Totals live for the life of the process: this
/// is the single-process default; use the Redis adapter to share counters between processes.
/// </para>
/// </remarks>
public sealed class InMemoryUsageCounter : IUsageCounter
{
    private const int MinimumSweep = 1024;
    private readonly Stripe[] _stripes;

    /// <summary>Creates the counters.</summary>
    /// <param name="expectedKeys">Idempotency keys to make room for up front (dictionaries never grow below it).</param>
    public InMemoryUsageCounter(int expectedKeys = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expectedKeys);
        var count = (int)Math.Min(256, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount * 8));
        _stripes = new Stripe[count];
        for (var i = 0; i < count; i++)
        {
            _stripes[i] = new Stripe(expectedKeys / count);
        }
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
        var stripe = StripeOf(counter.CustomerId);
        lock (stripe.Gate)
        {
            return ValueTask.FromResult(stripe.Counters.TryGetValue(Normalize(counter), out var state) ? state.Total : 0L);
        }
    }

    /// <inheritdoc />
    public ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(counter.CustomerId);
        ArgumentNullException.ThrowIfNull(events);
        var key = Normalize(counter);
        var state = new UsageCounterState();
        foreach (var e in events)
        {
            UsageCounterEvents.Validate(e);
            if (Normalize(e.Counter) != key)
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' belongs to another counter.", nameof(events));
            }
        }

        var stripe = StripeOf(counter.CustomerId);
        lock (stripe.Gate)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var e in events)
            {
                if (!seen.Add(e.IdempotencyKey))
                {
                    continue;
                }

                var total = state.Apply(aggregation, e);
                stripe.Keys[new IdempotencyKey(e.Counter.CustomerId, e.IdempotencyKey)] = new KeyEntry(ExpiryOf(e), total);
            }

            stripe.Counters[key] = state;
            return ValueTask.FromResult(state.Total);
        }
    }

    private UsageCounterResult Record(in UsageCounterEvent e)
    {
        UsageCounterEvents.Validate(e);
        var stripe = StripeOf(e.Counter.CustomerId);
        var nowTicks = e.Now.UtcTicks;
        lock (stripe.Gate)
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(stripe.Keys, new IdempotencyKey(e.Counter.CustomerId, e.IdempotencyKey), out var exists);
            if (exists && entry.ExpiresAtTicks > nowTicks)
            {
                return new UsageCounterResult(UsageOutcome.Duplicate, entry.Total);
            }

            ref var state = ref CollectionsMarshal.GetValueRefOrAddDefault(stripe.Counters, Normalize(e.Counter), out _);
            state ??= new UsageCounterState();
            long candidate;
            try
            {
                candidate = state.Peek(e.Aggregation, e);
            }
            catch (OverflowException)
            {
                if (!exists)
                {
                    stripe.Keys.Remove(new IdempotencyKey(e.Counter.CustomerId, e.IdempotencyKey));
                }

                throw;
            }

            if (e.HardLimit is { } limit && candidate > limit)
            {
                if (!exists)
                {
                    stripe.Keys.Remove(new IdempotencyKey(e.Counter.CustomerId, e.IdempotencyKey));
                }
                else
                {
                    entry = default; // an expired key stays free
                }

                return new UsageCounterResult(UsageOutcome.OverLimit, state.Total);
            }

            var total = state.Apply(e.Aggregation, e);
            entry = new KeyEntry(ExpiryOf(e), total);
            if (!exists && stripe.Keys.Count >= stripe.SweepAt)
            {
                stripe.Sweep(nowTicks);
            }

            return new UsageCounterResult(UsageOutcome.Accepted, total);
        }
    }

    private static long ExpiryOf(in UsageCounterEvent e) => (e.Now + e.DedupWindow).UtcTicks;

    private static UsageCounterKey Normalize(UsageCounterKey key) => key.PeriodStart.Offset == TimeSpan.Zero ? key : key with { PeriodStart = key.PeriodStart.ToUniversalTime() };

    private Stripe StripeOf(string customerId) => _stripes[unchecked((uint)string.GetHashCode(customerId.AsSpan())) & (uint)(_stripes.Length - 1)];

    private readonly record struct IdempotencyKey(string CustomerId, string Key);

    private readonly record struct KeyEntry(long ExpiresAtTicks, long Total);

    private sealed class Stripe(int capacity)
    {
        public readonly Lock Gate = new();
        public readonly Dictionary<IdempotencyKey, KeyEntry> Keys = new(capacity);
        public readonly Dictionary<UsageCounterKey, UsageCounterState> Counters = [];
        public int SweepAt = Math.Max(MinimumSweep, capacity);

        public void Sweep(long nowTicks)
        {
            foreach (var (key, entry) in Keys)
            {
                if (entry.ExpiresAtTicks <= nowTicks)
                {
                    Keys.Remove(key);
                }
            }

            SweepAt = Math.Max(MinimumSweep, Math.Max(SweepAt, Keys.Count * 2));
        }
    }
}
