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
/// Each invocation records 1,024 events (BenchmarkDotNet divides by it) for 64 customers, with the events' clock moving
/// 1 ms per event and a 64-second dedup window, so about 1,000 keys per customer are live and a key table stays at a
/// steady size: what is measured is the steady state, not dictionary growth. Keys are pre-built strings (no allocation
/// in the loop); a customer's n-th event takes key n of a pool, so the customers share the pool's strings (a key table
/// is per customer) and the pool stays in the cache, as the keys a server has just parsed out of a request are.
/// <list type="bullet">
/// <item><c>Record</c>: a new key (the common case: every event has its own key). A key comes back only after 16,384
/// events of its customer, long after a sweep dropped its expired entry, so each event is a lookup that finds nothing
/// and an insert.</item>
/// <item><c>RecordColdKeyStrings</c>: the same, but every event of every customer takes a different string of a pool of
/// 2^20 (about 56 MB with the array): reading the key's characters is a cache miss, and streaming the pool pushes the
/// key tables out of the cache. Kept to show what a caller's cold keys cost; <c>Record</c> measured this until the
/// fifth session of 2026-11-22.</item>
/// <item><c>RecordExpiredKey</c>: a key sent again after its window (every 2,048 events of its customer), whose expired
/// entry is still in the table: it is found, compared and re-armed in place (one more cache miss than a new key).</item>
/// <item><c>RecordDuplicate</c>: keys that are taken (the duplicate path: the original result, nothing changes).</item>
/// </list>
/// </remarks>
[MemoryDiagnoser]
public class UsageCounterBenchmarks
{
    private const int Count = 1024;
    private const int CustomerBits = 6;
    private const int Customers = 1 << CustomerBits;
    private const int Pool = 1 << 14;
    private const int ColdPool = 1 << 20;
    private const int ExpiredKeyPool = 1 << 11;
    private static readonly DateTimeOffset Origin = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly string[] _keys = new string[ColdPool];
    private readonly UsageCounterKey[] _counters = new UsageCounterKey[Customers];
    private readonly ConcurrentDictionary<UsageCounterKey, long> _baseline = new();
    private InMemoryUsageCounter _counter = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        for (var i = 0; i < ColdPool; i++)
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

    /// <summary>A new event with a new key: idempotency check, hard-limit check and increment.</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = Count)]
    public long Record() => RecordFrom(Pool - 1);

    /// <summary>A new event with a new key whose string is cold (read from a 56 MB pool, one string per event).</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = Count)]
    public long RecordColdKeyStrings()
    {
        long total = 0;
        var start = _next;
        for (var i = 0; i < Count; i++)
        {
            var g = start + i;
            var e = Event(g, Origin.AddTicks(g * TimeSpan.TicksPerMillisecond)) with { IdempotencyKey = _keys[g & (ColdPool - 1)] };
            total = _counter.Record(e).Total;
        }

        _next = start + Count;
        return total;
    }

    /// <summary>A new event whose key was used before and has expired, its entry still in the table (re-armed).</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = Count)]
    public long RecordExpiredKey() => RecordFrom(ExpiredKeyPool - 1);

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

    private long RecordFrom(int keyMask)
    {
        long total = 0;
        var start = _next;
        for (var i = 0; i < Count; i++)
        {
            var g = start + i;
            total = _counter.Record(Event(g, Origin.AddTicks(g * TimeSpan.TicksPerMillisecond), keyMask)).Total;
        }

        _next = start + Count;
        return total;
    }

    private UsageCounterEvent Event(long g, DateTimeOffset now, int keyMask = Pool - 1) => new()
    {
        Counter = _counters[g & (Customers - 1)],
        Aggregation = MeterAggregation.Sum,
        Quantity = 1,
        IdempotencyKey = _keys[(g >> CustomerBits) & keyMask],
        Timestamp = now,
        HardLimit = long.MaxValue,
        Now = now,
        DedupWindow = TimeSpan.FromSeconds(64),
    };
}
