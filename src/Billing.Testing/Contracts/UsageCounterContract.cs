using System.Collections.Concurrent;
using Billing.Ports;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace Billing.Testing.Contracts;

/// <summary>
/// The contract every <see cref="IUsageCounter"/> adapter must pass (in memory, Redis, the durable store): inherit it
/// in the adapter's test project and return the counter from <see cref="CreateCounterAsync"/>.
/// </summary>
/// <remarks>
/// Tests use customer ids of their own, so one counter (one server) can serve every test of a class. Times are whole
/// seconds in UTC so that database adapters round-trip them exactly. The concurrency tests use 16 writers; their sizes
/// can be lowered by an adapter whose per-event cost makes 200,000 events too slow for a unit-test run.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Test names read as sentences.")]
public abstract class UsageCounterContract
{
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Window = TimeSpan.FromDays(35);

    /// <summary>Returns the counter under test; called once per test.</summary>
    /// <returns>The counter.</returns>
    protected abstract ValueTask<IUsageCounter> CreateCounterAsync();

    /// <summary>Events in the duplicate-heavy concurrency test (200,000 unless an adapter lowers it).</summary>
    protected virtual int ConcurrentEvents => 200_000;

    /// <summary>The hard limit raced past in the limit concurrency test (10,000 unless an adapter lowers it).</summary>
    protected virtual int ConcurrentLimit => 10_000;

    /// <summary>
    /// Whether idempotency keys become free after their dedup window (true for fast counters); a durable store that
    /// keeps every key for good returns false, and the window test then checks the key stays taken.
    /// </summary>
    protected virtual bool KeysExpire => true;

    /// <summary>Test cases of the record/duplicate/rebuild property.</summary>
    protected virtual int PropertyTests => 100;

    /// <summary>An accepted event takes its key and adds to the total; the total reads back.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Accepted_events_add_up_and_read_back()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 5), await counter.RecordAsync(Event(c, "k1", 5)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 12), await counter.RecordAsync(Event(c, "k2", 7)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 12), await counter.RecordAsync(Event(c, "k3", 0)));
        Assert.Equal(12, await counter.GetTotalAsync(Key(c)));
    }

    /// <summary>A duplicate key returns the original result and changes nothing.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_duplicate_returns_the_original_result_and_changes_nothing()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        await counter.RecordAsync(Event(c, "k1", 5));
        await counter.RecordAsync(Event(c, "k2", 7));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5), await counter.RecordAsync(Event(c, "k1", 100)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5), await counter.RecordAsync(Event(c, "k1", 5) with { Counter = Key(c, "other_meter") }));
        Assert.Equal(12, await counter.GetTotalAsync(Key(c)));
        Assert.Equal(0, await counter.GetTotalAsync(Key(c, "other_meter")));
    }

    /// <summary>Keys are scoped to the customer; counters are separate per meter and per period.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Keys_are_per_customer_and_counters_per_meter_and_period()
    {
        var counter = await CreateCounterAsync();
        var a = NewCustomer();
        var b = NewCustomer();
        Assert.Equal(UsageOutcome.Accepted, (await counter.RecordAsync(Event(a, "same", 3))).Outcome);
        Assert.Equal(UsageOutcome.Accepted, (await counter.RecordAsync(Event(b, "same", 4))).Outcome);
        await counter.RecordAsync(Event(a, "m2", 10) with { Counter = Key(a, "storage") });
        var april = new UsageCounterKey(a, "api_calls", PeriodStart.AddMonths(1));
        await counter.RecordAsync(Event(a, "p2", 20) with { Counter = april });
        Assert.Equal(3, await counter.GetTotalAsync(Key(a)));
        Assert.Equal(4, await counter.GetTotalAsync(Key(b)));
        Assert.Equal(10, await counter.GetTotalAsync(Key(a, "storage")));
        Assert.Equal(20, await counter.GetTotalAsync(april));
        Assert.Equal(0, await counter.GetTotalAsync(Key(NewCustomer())));
    }

    /// <summary>A key is free again once its dedup window has passed (a durable store may keep it for good).</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_key_is_free_again_after_its_dedup_window_unless_the_store_keeps_keys_for_good()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        var shortWindow = Event(c, "k1", 5) with { DedupWindow = TimeSpan.FromSeconds(2) };
        await counter.RecordAsync(shortWindow);
        Assert.Equal(UsageOutcome.Duplicate, (await counter.RecordAsync(shortWindow with { Now = Now.AddSeconds(1) })).Outcome);
        await WaitForExpiryAsync(TimeSpan.FromSeconds(2));
        var later = await counter.RecordAsync(shortWindow with { Now = Now.AddSeconds(3) });
        Assert.Equal(KeysExpire ? new UsageCounterResult(UsageOutcome.Accepted, 10) : new UsageCounterResult(UsageOutcome.Duplicate, 5), later);
    }

    /// <summary>
    /// An event that would pass the hard limit is rejected: the total is unchanged and the key stays free, so the
    /// same event is accepted once the limit allows it.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task An_over_limit_event_changes_nothing_and_leaves_its_key_free()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 8), await counter.RecordAsync(Event(c, "k1", 8) with { HardLimit = 10 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.OverLimit, 8), await counter.RecordAsync(Event(c, "k2", 3) with { HardLimit = 10 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 10), await counter.RecordAsync(Event(c, "k3", 2) with { HardLimit = 10 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 13), await counter.RecordAsync(Event(c, "k2", 3) with { HardLimit = 20 }));
        Assert.Equal(13, await counter.GetTotalAsync(Key(c)));
    }

    /// <summary>Count ignores quantities; max keeps the largest; hard limits apply to the aggregate.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Count_and_max_aggregate_as_defined()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        var count = Key(c, "requests");
        var max = Key(c, "seats");
        foreach (var (key, q) in new[] { ("a", 5L), ("b", 0L), ("c", 9L) })
        {
            await counter.RecordAsync(Event(c, key, q) with { Counter = count, Aggregation = MeterAggregation.Count });
            await counter.RecordAsync(Event(c, "max-" + key, q) with { Counter = max, Aggregation = MeterAggregation.Max });
        }

        Assert.Equal(3, await counter.GetTotalAsync(count));
        Assert.Equal(9, await counter.GetTotalAsync(max));
        Assert.Equal(UsageOutcome.OverLimit, (await counter.RecordAsync(Event(c, "max-d", 12) with { Counter = max, Aggregation = MeterAggregation.Max, HardLimit = 10 })).Outcome);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 9), await counter.RecordAsync(Event(c, "max-e", 4) with { Counter = max, Aggregation = MeterAggregation.Max, HardLimit = 10 }));
    }

    /// <summary>Last follows the latest timestamp, ties broken by key, whatever the arrival order.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Last_follows_the_latest_timestamp_not_the_arrival_order()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        var last = Key(c, "gauge");
        UsageCounterEvent E(string key, long q, int minute) => Event(c, key, q) with { Counter = last, Aggregation = MeterAggregation.Last, Timestamp = PeriodStart.AddMinutes(minute) };
        Assert.Equal(7, (await counter.RecordAsync(E("b", 7, 10))).Total);
        Assert.Equal(7, (await counter.RecordAsync(E("a", 3, 5))).Total); // earlier: ignored
        Assert.Equal(7, (await counter.RecordAsync(E("a2", 4, 10))).Total); // same time, smaller key: ignored
        Assert.Equal(9, (await counter.RecordAsync(E("c", 9, 10))).Total); // same time, larger key: wins
        Assert.Equal(2, (await counter.RecordAsync(E("d", 2, 11))).Total);
        Assert.Equal(2, await counter.GetTotalAsync(last));
    }

    /// <summary>Unique count counts distinct values, and duplicates of a value never count twice.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Unique_count_counts_distinct_values()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        var users = Key(c, "active_users");
        UsageCounterEvent E(string key, string user) => Event(c, key, 1) with { Counter = users, Aggregation = MeterAggregation.UniqueCount, UniqueValue = user };
        Assert.Equal(1, (await counter.RecordAsync(E("1", "u1"))).Total);
        Assert.Equal(2, (await counter.RecordAsync(E("2", "u2"))).Total);
        Assert.Equal(2, (await counter.RecordAsync(E("3", "u1"))).Total);
        Assert.Equal(UsageOutcome.OverLimit, (await counter.RecordAsync(E("4", "u3") with { HardLimit = 2 })).Outcome);
        Assert.Equal(UsageOutcome.Accepted, (await counter.RecordAsync(E("5", "u2") with { HardLimit = 2 })).Outcome);
        Assert.Equal(2, await counter.GetTotalAsync(users));
    }

    /// <summary>A batch gives each event its own result; duplicates inside the batch and over-limit events affect no other event.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_batch_gives_each_event_its_own_result()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        var other = NewCustomer();
        await counter.RecordAsync(Event(c, "old", 1));
        var results = await counter.RecordBatchAsync(
        [
            Event(c, "b1", 2) with { HardLimit = 10 },
            Event(c, "old", 50),
            Event(c, "b2", 20) with { HardLimit = 10 },
            Event(c, "b1", 2),
            Event(other, "b1", 4),
            Event(c, "b3", 7) with { HardLimit = 10 },
        ]);
        Assert.Equal(
            [
                new(UsageOutcome.Accepted, 3), new(UsageOutcome.Duplicate, 1), new(UsageOutcome.OverLimit, 3),
                new(UsageOutcome.Duplicate, 3), new(UsageOutcome.Accepted, 4), new(UsageOutcome.Accepted, 10),
            ],
            results);
        Assert.Equal(10, await counter.GetTotalAsync(Key(c)));
        Assert.Empty(await counter.RecordBatchAsync([]));
    }

    /// <summary>A rebuild replaces the counter's state with the given events and takes their keys again.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_rebuild_replaces_the_total_and_restores_the_keys()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        await counter.RecordAsync(Event(c, "lost", 100));
        var durable = new[] { Event(c, "d1", 4), Event(c, "d2", 6), Event(c, "d1", 4) };
        Assert.Equal(10, await counter.RebuildAsync(Key(c), MeterAggregation.Sum, durable));
        Assert.Equal(10, await counter.GetTotalAsync(Key(c)));
        Assert.Equal(UsageOutcome.Duplicate, (await counter.RecordAsync(Event(c, "d2", 6))).Outcome);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 11), await counter.RecordAsync(Event(c, "d3", 1)));
        Assert.Equal(0, await counter.RebuildAsync(Key(c), MeterAggregation.Sum, []));
        Assert.Equal(0, await counter.GetTotalAsync(Key(c)));
    }

    /// <summary>
    /// A fast counter (not <see cref="IUsageCounter.IsDurable"/>) keeps the acceptance token of the event that took a
    /// key and answers every duplicate of the key with it, whatever token the duplicate carries, in a batch too, for
    /// any 64-bit token and for totals past 10^15; an accepted or over-limit result carries 0; a key freed by an
    /// over-limit event takes the token of the event that takes it next; a rebuild keeps each event's token (0: none).
    /// A durable counter answers 0.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_duplicate_carries_the_token_of_the_original_acceptance()
    {
        var counter = await CreateCounterAsync();
        var tokens = !counter.IsDurable;
        long T(long token) => tokens ? token : 0;
        var c = NewCustomer();
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 5), await counter.RecordAsync(Event(c, "k1", 5) with { AcceptanceToken = long.MinValue }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5, T(long.MinValue)), await counter.RecordAsync(Event(c, "k1", 5) with { AcceptanceToken = 42 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5, T(long.MinValue)), await counter.RecordAsync(Event(c, "k1", 5)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.OverLimit, 5), await counter.RecordAsync(Event(c, "k2", 10) with { AcceptanceToken = 7, HardLimit = 10 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 15), await counter.RecordAsync(Event(c, "k2", 10) with { AcceptanceToken = -8 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 15, T(-8)), await counter.RecordAsync(Event(c, "k2", 10) with { AcceptanceToken = 7 }));

        var results = await counter.RecordBatchAsync(
        [
            Event(c, "b1", 1) with { AcceptanceToken = long.MaxValue },
            Event(c, "k1", 5) with { AcceptanceToken = 1 },
            Event(c, "b1", 1) with { AcceptanceToken = 2 },
            Event(c, "big", 1_000_000_000_000_000) with { AcceptanceToken = -1 },
            Event(c, "big", 1_000_000_000_000_000) with { AcceptanceToken = 3 },
            Event(c, "k3", 0),
            Event(c, "k3", 0) with { AcceptanceToken = 4 },
        ]);
        Assert.Equal(
            [
                new(UsageOutcome.Accepted, 16), new(UsageOutcome.Duplicate, 5, T(long.MinValue)), new(UsageOutcome.Duplicate, 16, T(long.MaxValue)),
                new(UsageOutcome.Accepted, 1_000_000_000_000_016), new(UsageOutcome.Duplicate, 1_000_000_000_000_016, T(-1)),
                new(UsageOutcome.Accepted, 1_000_000_000_000_016), new(UsageOutcome.Duplicate, 1_000_000_000_000_016, 0),
            ],
            results);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 1_000_000_000_000_016, T(-1)), await counter.RecordAsync(Event(c, "big", 1)));

        var other = NewCustomer();
        await counter.RebuildAsync(Key(other), MeterAggregation.Sum, [Event(other, "r1", 3) with { AcceptanceToken = 99 }, Event(other, "r2", 4), Event(other, "r1", 3) with { AcceptanceToken = 5 }]);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 3, T(99)), await counter.RecordAsync(Event(other, "r1", 3) with { AcceptanceToken = 6 }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 7, 0), await counter.RecordAsync(Event(other, "r2", 4) with { AcceptanceToken = 6 }));
    }

    /// <summary>
    /// 16 writers record events of which 20% repeat a key (some at the same moment): every total equals the sum over
    /// the unique events, and each key is accepted exactly once.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Sixteen_concurrent_writers_with_duplicates_count_every_unique_event_exactly_once()
    {
        var counter = await CreateCounterAsync();
        var customers = Enumerable.Range(0, 8).Select(_ => NewCustomer()).ToArray();
        var unique = ConcurrentEvents * 4 / 5;
        var random = new SplitMix(20251121);
        var events = new UsageCounterEvent[ConcurrentEvents];
        for (var i = 0; i < unique; i++)
        {
            events[i] = Event(customers[i % customers.Length], $"e{i}", random.Next(0, 1000));
        }

        for (var i = unique; i < events.Length; i++)
        {
            events[i] = events[random.Next(unique)]; // a duplicate of some unique event
        }

        var originals = events[..unique];
        random.Shuffle(events);
        var accepted = new ConcurrentDictionary<(string, string), int>();
        await Parallel.ForEachAsync(Chunks(events, 100), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (chunk, ct) =>
        {
            var results = chunk.Length == 1 ? [await counter.RecordAsync(chunk[0], ct)] : await counter.RecordBatchAsync(chunk, ct);
            for (var i = 0; i < chunk.Length; i++)
            {
                Assert.NotEqual(UsageOutcome.OverLimit, results[i].Outcome);
                if (results[i].Outcome == UsageOutcome.Accepted)
                {
                    accepted.AddOrUpdate((chunk[i].Counter.CustomerId, chunk[i].IdempotencyKey), 1, (_, n) => n + 1);
                }
            }
        });

        Assert.Equal(unique, accepted.Count);
        Assert.All(accepted.Values, n => Assert.Equal(1, n));
        foreach (var customer in customers)
        {
            var expected = originals.Where(e => e.Counter.CustomerId == customer).Sum(e => e.Quantity);
            Assert.Equal(expected, await counter.GetTotalAsync(Key(customer)));
        }
    }

    /// <summary>
    /// 16 writers race past a hard limit: the total ends at the sum of the accepted events, within the limit, and
    /// every rejected event is over the limit (it would not have fitted even into the final total).
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Sixteen_concurrent_writers_never_pass_a_hard_limit()
    {
        var counter = await CreateCounterAsync();
        var c = NewCustomer();
        long limit = ConcurrentLimit;
        var events = Enumerable.Range(0, ConcurrentLimit * 2).Select(i => Event(c, $"h{i}", 1 + (i % 5)) with { HardLimit = limit }).ToArray();
        var outcomes = new UsageCounterResult[events.Length];
        await Parallel.ForEachAsync(Enumerable.Range(0, events.Length / 10), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (chunk, ct) =>
        {
            var slice = events.AsMemory(chunk * 10, 10);
            var results = chunk % 2 == 0 ? await counter.RecordBatchAsync(slice.ToArray(), ct) : [.. await Task.WhenAll(slice.ToArray().Select(e => counter.RecordAsync(e, ct).AsTask()))];
            results.ToArray().CopyTo(outcomes, chunk * 10);
        });

        var total = await counter.GetTotalAsync(Key(c));
        Assert.True(total <= limit, $"total {total} passed the limit {limit}");
        Assert.Equal(events.Where((_, i) => outcomes[i].Outcome == UsageOutcome.Accepted).Sum(e => e.Quantity), total);
        Assert.All(events.Where((_, i) => outcomes[i].Outcome != UsageOutcome.Accepted), e => Assert.True(e.Quantity > limit - total));
        Assert.All(outcomes, r => Assert.NotEqual(UsageOutcome.Duplicate, r.Outcome));
        Assert.True(limit - total < 5, $"the total stopped at {total}, though events of 1 could still fit under {limit}");
    }

    /// <summary>
    /// Property: for any interleaving of new events, duplicates, over-limit attempts and rebuilds from the accepted
    /// events, the counter's total equals the aggregate of the accepted events, and a duplicate answers the token of the
    /// original acceptance (a fast counter; 0 for a durable one), also after rebuilds.
    /// </summary>
    [Fact]
    public void For_any_interleaving_of_record_duplicate_and_rebuild_the_total_equals_the_accepted_aggregate()
    {
        var ops = Gen.Sized(size => Gen.ListOf(Gen.Choose(0, 9), Math.Max(1, size))).Zip(Gen.Elements(Enum.GetValues<MeterAggregation>()))
            .Zip(Gen.Choose(0, int.MaxValue));
        var counter = CreateCounterAsync().AsTask().GetAwaiter().GetResult();
        Prop.ForAll(ops.ToArbitrary(), input =>
        {
            var ((codes, aggregation), seed) = input;
            RunInterleavingAsync(counter, codes, aggregation, seed).GetAwaiter().GetResult();
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyTests));
    }

    private static async Task RunInterleavingAsync(IUsageCounter counter, IEnumerable<int> codes, MeterAggregation aggregation, int seed)
    {
        var c = NewCustomer();
        var key = Key(c, "prop");
        var random = new SplitMix((ulong)seed);
        var accepted = new List<UsageCounterEvent>();
        var next = 0;
        UsageCounterEvent New() => Event(c, $"p{next++}", random.Next(0, 50)) with
        {
            Counter = key,
            Aggregation = aggregation,
            Timestamp = PeriodStart.AddMinutes(random.Next(0, 5)),
            UniqueValue = $"u{random.Next(0, 6)}",
            AcceptanceToken = random.NextInt64(),
        };

        foreach (var code in codes)
        {
            switch (code)
            {
                case <= 5:
                    var e = New();
                    var result = await counter.RecordAsync(e);
                    Assert.Equal(UsageOutcome.Accepted, result.Outcome);
                    accepted.Add(e);
                    break;
                case 6 when accepted.Count > 0:
                    var original = accepted[random.Next(accepted.Count)];
                    var duplicate = await counter.RecordAsync(original with { Quantity = 1 + original.Quantity, AcceptanceToken = random.NextInt64() });
                    Assert.Equal(UsageOutcome.Duplicate, duplicate.Outcome);
                    Assert.Equal(counter.IsDurable ? 0 : original.AcceptanceToken, duplicate.AcceptanceToken);
                    break;
                case 7:
                    var current = await counter.GetTotalAsync(key);
                    var attempt = New() with { HardLimit = 0 };
                    var state = Aggregate(aggregation, accepted);
                    var expected = state.Peek(aggregation, attempt) > 0 ? UsageOutcome.OverLimit : UsageOutcome.Accepted;
                    var limited = await counter.RecordAsync(attempt);
                    Assert.Equal(expected, limited.Outcome);
                    if (limited.Outcome == UsageOutcome.Accepted)
                    {
                        accepted.Add(attempt);
                    }
                    else
                    {
                        Assert.Equal(current, limited.Total);
                    }

                    break;
                case 8:
                    await counter.RebuildAsync(key, aggregation, accepted);
                    break;
                default:
                    UsageCounterEvent[] batch = [New(), New()];
                    Assert.All(await counter.RecordBatchAsync(batch), r => Assert.Equal(UsageOutcome.Accepted, r.Outcome));
                    accepted.AddRange(batch);
                    break;
            }

            Assert.Equal(Aggregate(aggregation, accepted).Total, await counter.GetTotalAsync(key));
        }
    }

    private static UsageCounterState Aggregate(MeterAggregation aggregation, IEnumerable<UsageCounterEvent> events)
    {
        var state = new UsageCounterState();
        foreach (var e in events)
        {
            state.Apply(aggregation, e);
        }

        return state;
    }

    private static IEnumerable<UsageCounterEvent[]> Chunks(UsageCounterEvent[] events, int size)
    {
        for (var i = 0; i < events.Length; i += size)
        {
            // Alternate single events and batches so both paths race.
            var length = (i / size) % 3 == 0 ? 1 : Math.Min(size, events.Length - i);
            for (var j = 0; j < Math.Min(size, events.Length - i); j += length)
            {
                yield return events.AsSpan(i + j, Math.Min(length, events.Length - i - j)).ToArray();
            }
        }
    }

    /// <summary>Waits for a short dedup window to pass where adapters expire keys by the server's clock (Redis TTL).</summary>
    /// <param name="window">The window.</param>
    /// <returns>The wait.</returns>
    protected virtual Task WaitForExpiryAsync(TimeSpan window) => Task.CompletedTask;

    private static string NewCustomer() => "cus_" + Guid.NewGuid().ToString("N")[..16];

    private static UsageCounterKey Key(string customer, string meter = "api_calls") => new(customer, meter, PeriodStart);

    private static UsageCounterEvent Event(string customer, string key, long quantity) => new()
    {
        Counter = Key(customer),
        Aggregation = MeterAggregation.Sum,
        Quantity = quantity,
        IdempotencyKey = key,
        Timestamp = Now.AddMinutes(-1),
        Now = Now,
        DedupWindow = Window,
        CounterRetention = TimeSpan.FromDays(70),
    };
}
