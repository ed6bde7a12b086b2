using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using Billing.InMemory;
using Billing.Usage;

namespace Billing.Benchmarks;

/// <summary>
/// The metering hot path in memory: one <see cref="InMemoryUsageCounter"/> record (idempotency check + hard-limit
/// check + increment) per event, next to a bare <see cref="ConcurrentDictionary{TKey, TValue}"/> increment.
/// </summary>
/// <remarks>
/// Each invocation records 1,024 events (BenchmarkDotNet divides by it) for 64 customers. Keys come from a pool of
/// 131,072 pre-built strings and the events' clock moves 1 ms per event with a 64-second dedup window, so a key is
/// free again by the time the pool wraps: every <c>Record</c> is a new, accepted event, the key table stays at a
/// steady size (expired keys are swept), and what is measured is the steady state, not dictionary growth.
/// <c>RecordDuplicate</c> sends events whose keys are taken (the duplicate path).
/// </remarks>
[MemoryDiagnoser]
public class UsageCounterBenchmarks
{
    private const int Count = 1024;
    private const int Pool = 131_072;
    private static readonly DateTimeOffset Origin = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly string[] _keys = new string[Pool];
    private readonly UsageCounterKey[] _counters = new UsageCounterKey[64];
    private readonly ConcurrentDictionary<UsageCounterKey, long> _baseline = new();
    private InMemoryUsageCounter _counter = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        for (var i = 0; i < Pool; i++)
        {
            _keys[i] = "evt_" + i.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        }

        for (var i = 0; i < _counters.Length; i++)
        {
            _counters[i] = new UsageCounterKey($"cus_{i:D6}", "api_calls", Origin);
            _baseline[_counters[i]] = 0;
        }

        _counter = new InMemoryUsageCounter(expectedKeysPerCustomer: 2048);

        // Take the first keys, so RecordDuplicate always finds them taken.
        for (var i = 0; i < Count; i++)
        {
            _counter.Record(Event(i, Origin));
        }

        _next = Count;
    }

    /// <summary>A bare concurrent-dictionary increment of a counter (no idempotency, no limit).</summary>
    /// <returns>The last total.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Count)]
    public long ConcurrentDictionaryIncrement()
    {
        long total = 0;
        for (var i = 0; i < Count; i++)
        {
            total = _baseline.AddOrUpdate(_counters[i & 63], 1, static (_, v) => v + 1);
        }

        return total;
    }

    /// <summary>A new event: idempotency check, hard-limit check and increment.</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = Count)]
    public long Record()
    {
        long total = 0;
        var start = _next;
        for (var i = 0; i < Count; i++)
        {
            var g = start + i;
            total = _counter.Record(Event(g, Origin.AddTicks(g * TimeSpan.TicksPerMillisecond))).Total;
        }

        _next = start + Count;
        return total;
    }

    /// <summary>An event whose key is taken: the duplicate path (original result returned, nothing changes).</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = Count)]
    public long RecordDuplicate()
    {
        long total = 0;
        for (var i = 0; i < Count; i++)
        {
            total = _counter.Record(Event(i, Origin)).Total;
        }

        return total;
    }

    private UsageCounterEvent Event(long g, DateTimeOffset now) => new()
    {
        Counter = _counters[g & 63],
        Aggregation = MeterAggregation.Sum,
        Quantity = 1,
        IdempotencyKey = _keys[g & (Pool - 1)],
        Timestamp = now,
        HardLimit = long.MaxValue,
        Now = now,
        DedupWindow = TimeSpan.FromSeconds(64),
    };
}
