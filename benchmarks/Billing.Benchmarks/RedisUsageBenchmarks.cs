using BenchmarkDotNet.Attributes;
using Billing.Redis;
using Billing.Testing.Servers;
using Billing.Usage;

namespace Billing.Benchmarks;

/// <summary>
/// The Redis usage counter on a private <c>redis-server</c> started in <see cref="GlobalSetup"/> (<see cref="LocalRedisServer"/>:
/// 127.0.0.1, a free port, nothing persisted): one awaited <see cref="RedisUsageCounter.RecordAsync"/> at a time, 64 in
/// flight, and one <see cref="RedisUsageCounter.RecordBatchAsync"/> of 100 events over 8 customers. Every event is new
/// (accepted); times are per event.
/// </summary>
/// <remarks>
/// Client and server share the machine's cores, so these figures include the server's work. Run with
/// <c>dotnet run -c Release -- --filter *RedisUsageBenchmarks* --job short</c>; the <c>redis-run</c> console mode measures
/// sustained rates next to <c>redis-benchmark</c>.
/// </remarks>
[MemoryDiagnoser]
public class RedisUsageBenchmarks
{
    private const int InFlight = 64;
    private const int BatchSize = 100;
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private readonly UsageCounterEvent[] _batch = new UsageCounterEvent[BatchSize];
    private readonly Task<UsageCounterResult>[] _calls = new Task<UsageCounterResult>[InFlight];
    private LocalRedisServer _server = null!;
    private RedisUsageCounter _counter = null!;
    private long _next;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _server = LocalRedisServer.StartAsync().GetAwaiter().GetResult();
        _counter = RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = _server.ConfigurationString }).GetAwaiter().GetResult();
        _counter.RecordAsync(Event("cus_warm", "warm")).AsTask().GetAwaiter().GetResult(); // connect and load the script
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _counter.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>One event, awaited before the next: a full round trip per event.</summary>
    /// <returns>The total.</returns>
    [Benchmark]
    public async Task<long> RecordOneAtATime() => (await _counter.RecordAsync(Event("cus_single", NextKey()))).Total;

    /// <summary>64 events in flight on the one multiplexer (time per event).</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = InFlight)]
    public async Task<long> Record64InFlight()
    {
        for (var i = 0; i < InFlight; i++)
        {
            _calls[i] = _counter.RecordAsync(Event("cus_inflight", NextKey())).AsTask();
        }

        long total = 0;
        foreach (var call in _calls)
        {
            total = (await call).Total;
        }

        return total;
    }

    /// <summary>A batch of 100 events over 8 customers: one script call (time per event).</summary>
    /// <returns>The last total.</returns>
    [Benchmark(OperationsPerInvoke = BatchSize)]
    public async Task<long> RecordBatchOf100()
    {
        for (var i = 0; i < BatchSize; i++)
        {
            _batch[i] = Event(Customers[i & 7], NextKey());
        }

        var results = await _counter.RecordBatchAsync(_batch);
        return results[^1].Total;
    }

    private static readonly string[] Customers = [.. Enumerable.Range(0, 8).Select(i => "cus_batch_" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private string NextKey() => "evt_" + Interlocked.Increment(ref _next).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static UsageCounterEvent Event(string customer, string key) => new()
    {
        Counter = new UsageCounterKey(customer, "api_calls", PeriodStart),
        Aggregation = MeterAggregation.Sum,
        Quantity = 1,
        IdempotencyKey = key,
        Timestamp = Now,
        Now = Now,
        DedupWindow = TimeSpan.FromMinutes(10),
        AcceptanceToken = Interlocked.Increment(ref _token), // as the metering service sends them: 19–20 characters
    };

    private static long _token = -7_046_029_254_386_353_131;
}
