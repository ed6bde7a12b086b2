using System.Collections.Concurrent;
using Billing.InMemory;
using Billing.Ports;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace Billing.Testing.Contracts;

/// <summary>
/// The contract every <see cref="IUsageEventStore"/> adapter must pass (in memory, EF Core on PostgreSQL and SQLite):
/// inherit it in the adapter's test project and return the store from <see cref="CreateStoreAsync"/>.
/// </summary>
/// <remarks>
/// Tests use customer ids of their own, so one store (one database) can serve every test of a class; the period
/// listing test only looks at its own customers. Times are whole seconds in UTC so that database adapters round-trip
/// them exactly, and idempotency keys are ASCII, where every store's ordinal order is the same. The concurrency test
/// uses 16 writers; its size can be lowered by an adapter whose per-event cost makes it too slow for a unit-test run.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Test names read as sentences.")]
public abstract class UsageEventStoreContract
{
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Received = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Returns the store under test; called once per test.</summary>
    /// <returns>The store.</returns>
    protected abstract ValueTask<IUsageEventStore> CreateStoreAsync();

    /// <summary>Events in the concurrency test (40,000 unless an adapter lowers it).</summary>
    protected virtual int ConcurrentEvents => 40_000;

    /// <summary>Test cases of the aggregate-equals-fold property.</summary>
    protected virtual int PropertyTests => 100;

    /// <summary>New events are stored and reported as stored; they read back field for field.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task New_events_are_stored_and_read_back()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        var first = Event(c, "k1", 5) with
        {
            SubscriptionId = "sub_1",
            UniqueValue = "user_1",
            Properties = new Dictionary<string, string> { ["region"] = "eu-west", ["tier"] = "pro", ["note"] = "\"quoted\" & ünïcode" },
            Timestamp = PeriodStart.AddDays(2),
        };
        var second = Event(c, "k2", 0) with { Timestamp = PeriodStart.AddDays(3) };
        Assert.Equal([true, true], await store.AppendAsync([first, second]));
        var listed = await store.ListAsync(Key(c));
        Assert.Equal(2, listed.Count);
        AssertSame(first, listed[0]);
        AssertSame(second, listed[1]);
        Assert.Empty(await store.AppendAsync([]));
    }

    /// <summary>Instants in other offsets are the same instants: they are stored and found as UTC.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Instants_in_other_offsets_are_the_same_instants()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        var plus2 = TimeSpan.FromHours(2);
        var counter = new UsageCounterKey(c, "api_calls", PeriodStart.ToOffset(plus2));
        var e = Event(c, "k1", 3) with { Counter = counter, Timestamp = PeriodStart.AddHours(5).ToOffset(plus2), ReceivedAt = Received.ToOffset(plus2) };
        Assert.Equal([true], await store.AppendAsync([e]));
        var listed = Assert.Single(await store.ListAsync(Key(c)));
        Assert.Equal(PeriodStart, listed.Counter.PeriodStart);
        Assert.Equal(PeriodStart.AddHours(5), listed.Timestamp);
        Assert.Equal(Received, listed.ReceivedAt);
        Assert.Single(await store.ListAsync(counter));
        Assert.Equal(3, await store.AggregateAsync(counter, MeterAggregation.Sum));
    }

    /// <summary>
    /// A key repeated inside a batch or in a later batch is reported as not stored and changes nothing: the first
    /// event of a key stays as it was.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Duplicates_within_a_batch_and_across_batches_report_false_and_change_nothing()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        Assert.Equal([true, true, false, true], await store.AppendAsync([Event(c, "a", 1), Event(c, "b", 2), Event(c, "a", 100), Event(c, "c", 3)]));
        Assert.Equal([false, true, false, false], await store.AppendAsync([Event(c, "b", 50), Event(c, "d", 4), Event(c, "d", 40), Event(c, "a", 10) with { Timestamp = PeriodStart.AddDays(9) }]));
        Assert.Equal([false, false, false, false], await store.AppendAsync([Event(c, "a", 1), Event(c, "b", 2), Event(c, "c", 3), Event(c, "d", 4)]));
        var listed = await store.ListAsync(Key(c));
        Assert.Equal(["a", "b", "c", "d"], listed.Select(e => e.IdempotencyKey));
        Assert.Equal([1L, 2, 3, 4], listed.Select(e => e.Quantity));
        Assert.All(listed, e => Assert.Equal(PeriodStart.AddDays(1), e.Timestamp));
        Assert.Equal(10, await store.AggregateAsync(Key(c), MeterAggregation.Sum));
        Assert.Equal(4, await store.AggregateAsync(Key(c), MeterAggregation.Count));
    }

    /// <summary>
    /// Events the counter counted as new (<see cref="StoredUsageEvent.CountedAsNew"/>) are stored like any other, every
    /// value exactly (nulls, 64-bit extremes, properties); the hint is a write hint only and never read back.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Events_counted_as_new_are_stored_exactly_and_the_hint_is_not_kept()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        var full = Event(c, "full", long.MaxValue) with
        {
            CountedAsNew = true,
            SubscriptionId = "sub_1",
            UniqueValue = "user \"1\" ü",
            Properties = new Dictionary<string, string> { ["region"] = "eu-west", ["note"] = "back\\slash ✓" },
            AcceptanceToken = long.MinValue,
            Timestamp = PeriodStart.AddDays(2),
        };
        var bare = Event(c, "bare", 0) with { CountedAsNew = true, Timestamp = PeriodStart.AddDays(3) };
        Assert.Equal([true, true], await store.AppendAsync([full, bare]));
        var listed = await store.ListAsync(Key(c));
        Assert.Equal(2, listed.Count);
        AssertSame(full, listed[0]);
        AssertSame(bare, listed[1]);
        Assert.All(listed, e => Assert.False(e.CountedAsNew));
        Assert.False((await store.FindAsync(c, "full"))!.CountedAsNew);
    }

    /// <summary>
    /// An event counted as new whose key is stored after all (a counter that forgot the key) is reported as not stored
    /// and changes nothing, alone, among new events counted as new, and among events that were not; the rest of the
    /// batch is stored as usual.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task An_event_counted_as_new_whose_key_is_stored_reports_false_and_changes_nothing()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        Assert.Equal([true, true], await store.AppendAsync([Event(c, "a", 1) with { AcceptanceToken = 11 }, Event(c, "b", 2)]));
        Assert.Equal([false], await store.AppendAsync([Event(c, "a", 100) with { CountedAsNew = true, AcceptanceToken = 99 }]));
        Assert.Equal([true, false, true], await store.AppendAsync([Event(c, "c", 3) with { CountedAsNew = true }, Event(c, "a", 100) with { CountedAsNew = true }, Event(c, "d", 4) with { CountedAsNew = true }]));
        Assert.Equal([false, true, false, true, true], await store.AppendAsync(
        [
            Event(c, "b", 200) with { CountedAsNew = true },
            Event(c, "e", 5),
            Event(c, "c", 300),
            Event(c, "f", 6) with { CountedAsNew = true },
            Event(c, "g", 7),
        ]));
        var listed = await store.ListAsync(Key(c));
        Assert.Equal(["a", "b", "c", "d", "e", "f", "g"], listed.Select(e => e.IdempotencyKey));
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7], listed.Select(e => e.Quantity));
        Assert.Equal(11, (await store.FindAsync(c, "a"))!.AcceptanceToken);
        Assert.Equal(28, await store.AggregateAsync(Key(c), MeterAggregation.Sum));
    }

    /// <summary>Keys are scoped to the customer: another customer may use the same key; another meter of the same customer may not.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Keys_are_scoped_to_the_customer()
    {
        var store = await CreateStoreAsync();
        var a = NewCustomer();
        var b = NewCustomer();
        Assert.Equal([true, true], await store.AppendAsync([Event(a, "same", 3), Event(b, "same", 4)]));
        Assert.Equal([false, false], await store.AppendAsync([Event(a, "same", 5) with { Counter = Key(a, "storage") }, Event(a, "same", 6) with { Counter = Key(a, "api_calls", PeriodStart.AddMonths(1)) }]));
        Assert.Equal(3, Assert.Single(await store.ListAsync(Key(a))).Quantity);
        Assert.Equal(4, Assert.Single(await store.ListAsync(Key(b))).Quantity);
        Assert.Empty(await store.ListAsync(Key(a, "storage")));
        Assert.Empty(await store.ListAsync(Key(a, "api_calls", PeriodStart.AddMonths(1))));
        Assert.Empty(await store.ListAsync(Key(NewCustomer())));
    }

    /// <summary>
    /// A key is found by customer and key, field for field, whichever counter it was stored for; an unknown key, or
    /// the key of another customer, is not found.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_stored_key_is_found_by_customer_and_key()
    {
        var store = await CreateStoreAsync();
        var a = NewCustomer();
        var b = NewCustomer();
        var stored = Event(a, "k1", 7) with { Counter = Key(a, "storage"), SubscriptionId = "sub_1", UniqueValue = "u1", Properties = new Dictionary<string, string> { ["region"] = "eu" }, AcceptanceToken = 1234567890123 };
        Assert.Equal([true], await store.AppendAsync([stored]));
        AssertSame(stored, Assert.IsType<StoredUsageEvent>(await store.FindAsync(a, "k1")));
        Assert.Equal([false], await store.AppendAsync([Event(a, "k1", 99)]));
        Assert.Equal(7, (await store.FindAsync(a, "k1"))!.Quantity);
        Assert.Null(await store.FindAsync(a, "k2"));
        Assert.Null(await store.FindAsync(b, "k1"));
    }

    /// <summary>
    /// The acceptance token is kept as appended (any 64-bit value, or null) and read back by find and list; a later
    /// append of the key, with another token or none, leaves the stored token as it was, in a batch too.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task The_acceptance_token_of_the_storing_append_is_kept()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        Assert.Equal([true, true, true, false, true], await store.AppendAsync(
        [
            Event(c, "min", 1) with { AcceptanceToken = long.MinValue },
            Event(c, "max", 2) with { AcceptanceToken = long.MaxValue },
            Event(c, "none", 3),
            Event(c, "min", 1) with { AcceptanceToken = 5 },
            Event(c, "neg", 4) with { AcceptanceToken = -12345 },
        ]));
        Assert.Equal([false, false, false], await store.AppendAsync([Event(c, "none", 3) with { AcceptanceToken = 6 }, Event(c, "max", 2), Event(c, "neg", 4) with { AcceptanceToken = 7 }]));
        Assert.Equal(long.MinValue, (await store.FindAsync(c, "min"))!.AcceptanceToken);
        Assert.Null((await store.FindAsync(c, "none"))!.AcceptanceToken);
        Assert.Equal(
            [("max", long.MaxValue), ("min", long.MinValue), ("neg", -12345L), ("none", (long?)null)],
            (await store.ListAsync(Key(c))).Select(e => (e.IdempotencyKey, e.AcceptanceToken)));
    }

    /// <summary>A counter's events are listed by timestamp, then by idempotency key in ordinal order, whatever the arrival order.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Events_are_listed_by_timestamp_then_ordinal_key()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        StoredUsageEvent E(string key, int minute) => Event(c, key, minute) with { Timestamp = PeriodStart.AddMinutes(minute) };
        await store.AppendAsync([E("m", 5), E("b", 3), E("a", 3), E("B", 3), E("a1", 3), E("_", 3), E("z", 1)]);
        await store.AppendAsync([E("0", 3), E("y", 9), E("A", 5)]);
        await store.AppendAsync([Event(c, "other", 1) with { Counter = Key(c, "storage") }]);
        Assert.Equal(["z", "0", "B", "_", "a", "a1", "b", "A", "m", "y"], (await store.ListAsync(Key(c))).Select(e => e.IdempotencyKey));
    }

    /// <summary>The counters of a period are listed once each, by customer then meter; other periods are not.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Counters_are_listed_per_period_by_customer_then_meter()
    {
        var store = await CreateStoreAsync();
        var prefix = NewCustomer();
        string[] customers = [prefix + "_b", prefix + "_a", prefix + "_c"];
        var april = PeriodStart.AddMonths(1);
        await store.AppendAsync(
        [
            Event(customers[0], "1", 1) with { Counter = Key(customers[0], "storage") },
            Event(customers[0], "2", 1) with { Counter = Key(customers[0], "api_calls") },
            Event(customers[0], "3", 1) with { Counter = Key(customers[0], "api_calls") },
            Event(customers[1], "1", 1) with { Counter = Key(customers[1], "seats") },
            Event(customers[1], "2", 1) with { Counter = Key(customers[1], "api_calls", april) },
            Event(customers[2], "1", 1) with { Counter = Key(customers[2], "api_calls", april) },
        ]);
        await store.AppendAsync([Event(customers[0], "4", 1) with { Counter = Key(customers[0], "Zeta") }]);

        async Task<UsageCounterKey[]> Mine(DateTimeOffset period) =>
            (await store.ListCountersAsync(period)).Where(k => k.CustomerId.StartsWith(prefix, StringComparison.Ordinal)).ToArray();

        Assert.Equal(
            [Key(customers[1], "seats"), Key(customers[0], "Zeta"), Key(customers[0], "api_calls"), Key(customers[0], "storage")],
            await Mine(PeriodStart));
        Assert.Equal([Key(customers[1], "api_calls", april), Key(customers[2], "api_calls", april)], await Mine(april));
        Assert.Equal([Key(customers[1], "api_calls", april), Key(customers[2], "api_calls", april)], await Mine(april.ToOffset(TimeSpan.FromHours(-5))));
        Assert.Empty(await Mine(PeriodStart.AddMonths(2)));
        Assert.All(await store.ListCountersAsync(april), k => Assert.Equal(april, k.PeriodStart));
    }

    /// <summary>Sum, count and max are computed exactly; every aggregation of a counter without events is 0.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Sum_count_and_max_are_exact_and_an_empty_counter_is_zero()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        await store.AppendAsync([Event(c, "a", 5), Event(c, "b", 0), Event(c, "c", 9), Event(c, "d", 9), Event(c, "e", 3_000_000_000_000)]);
        Assert.Equal(3_000_000_000_023, await store.AggregateAsync(Key(c), MeterAggregation.Sum));
        Assert.Equal(5, await store.AggregateAsync(Key(c), MeterAggregation.Count));
        Assert.Equal(3_000_000_000_000, await store.AggregateAsync(Key(c), MeterAggregation.Max));
        foreach (var aggregation in Enum.GetValues<MeterAggregation>())
        {
            Assert.Equal(0, await store.AggregateAsync(Key(NewCustomer()), aggregation));
        }

        var zeros = NewCustomer();
        await store.AppendAsync([Event(zeros, "z", 0)]);
        Assert.Equal(0, await store.AggregateAsync(Key(zeros), MeterAggregation.Max));
        Assert.Equal(1, await store.AggregateAsync(Key(zeros), MeterAggregation.Count));
    }

    /// <summary>A sum past <see cref="long.MaxValue"/> is an <see cref="OverflowException"/>, never a wrapped number.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_sum_past_the_largest_long_overflows()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        await store.AppendAsync([Event(c, "a", long.MaxValue), Event(c, "b", 1)]);
        await Assert.ThrowsAsync<OverflowException>(async () => await store.AggregateAsync(Key(c), MeterAggregation.Sum));
        Assert.Equal(long.MaxValue, await store.AggregateAsync(Key(c), MeterAggregation.Max));
    }

    /// <summary>Last is the quantity of the latest timestamp; ties go to the ordinal-larger key, whatever the arrival order.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Last_is_the_latest_timestamp_with_ties_broken_by_the_ordinal_larger_key()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        StoredUsageEvent E(string key, long q, int minute) => Event(c, key, q) with { Timestamp = PeriodStart.AddMinutes(minute) };
        await store.AppendAsync([E("b", 7, 10), E("a", 3, 5)]);
        Assert.Equal(7, await store.AggregateAsync(Key(c), MeterAggregation.Last));
        await store.AppendAsync([E("c", 9, 10), E("a2", 4, 10), E("C", 8, 10)]);
        Assert.Equal(9, await store.AggregateAsync(Key(c), MeterAggregation.Last));
        await store.AppendAsync([E("0", 1, 11), E("early", 100, 0)]);
        Assert.Equal(1, await store.AggregateAsync(Key(c), MeterAggregation.Last));
        await store.AppendAsync([E("Z", 6, 11)]);
        Assert.Equal(6, await store.AggregateAsync(Key(c), MeterAggregation.Last)); // "Z" > "0"
        await store.AppendAsync([E("a", 500, 12)]); // a duplicate key: changes nothing
        Assert.Equal(6, await store.AggregateAsync(Key(c), MeterAggregation.Last));
    }

    /// <summary>Unique count counts distinct unique values (ordinal: case matters); events without one are not counted.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Unique_count_counts_distinct_values_and_ignores_events_without_one()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        StoredUsageEvent E(string key, string? user) => Event(c, key, 1) with { UniqueValue = user };
        await store.AppendAsync([E("1", "u1"), E("2", "u2"), E("3", "u1"), E("4", "U1"), E("5", null), E("6", "")]);
        Assert.Equal(4, await store.AggregateAsync(Key(c), MeterAggregation.UniqueCount));
        await store.AppendAsync([E("7", "u2"), E("1", "u9")]);
        Assert.Equal(4, await store.AggregateAsync(Key(c), MeterAggregation.UniqueCount));
        await store.AppendAsync([E("8", "u3")]);
        Assert.Equal(5, await store.AggregateAsync(Key(c), MeterAggregation.UniqueCount));
    }

    /// <summary>A batch with a malformed event is refused as a whole: nothing of it is stored.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_batch_with_a_malformed_event_stores_nothing()
    {
        var store = await CreateStoreAsync();
        var c = NewCustomer();
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await store.AppendAsync([Event(c, "ok", 1), Event(c, "bad", -1)]));
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await store.AppendAsync([Event(c, "ok", 1), Event(c, new string('k', 256), 1)]));
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await store.AppendAsync([Event(c, "ok", 1), Event(c, "", 1)]));
        Assert.Empty(await store.ListAsync(Key(c)));
        Assert.Equal([true], await store.AppendAsync([Event(c, new string('k', 255), 1)]));
    }

    /// <summary>
    /// Property: for any events (repeated keys, timestamp ties, missing unique values) appended in any batches, the
    /// store keeps the first event of each key, lists each counter in order, and its aggregate of every kind equals
    /// folding the listed events through <see cref="UsageCounterState"/>.
    /// </summary>
    [Fact]
    public void For_any_events_the_aggregate_equals_folding_the_listed_events()
    {
        var spec =
            from customer in Gen.Choose(0, 1)
            from meter in Gen.Choose(0, 1)
            from key in Gen.Choose(0, 24)
            from second in Gen.Choose(0, 4)
            from quantity in Gen.Choose(0, 60)
            from unique in Gen.Choose(-1, 5)
            select new EventSpec(customer, meter, key, second, quantity, unique);
        var input = Gen.ArrayOf(spec).Zip(Gen.Choose(1, 4));
        var store = CreateStoreAsync().AsTask().GetAwaiter().GetResult();
        Prop.ForAll(input.ToArbitrary(), x => CheckFoldAsync(store, x.Item1, x.Item2).GetAwaiter().GetResult())
            .Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyTests));
    }

    /// <summary>
    /// 16 writers append batches of which 20% of the events repeat a key (some in the same batch, some racing in
    /// another; half of the events, repeats too, counted as new): each key is reported stored exactly once and stored
    /// exactly once, and the sums are exact.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Sixteen_concurrent_writers_with_duplicate_keys_store_each_key_exactly_once()
    {
        var store = await CreateStoreAsync();
        var customers = Enumerable.Range(0, 8).Select(_ => NewCustomer()).ToArray();
        var unique = ConcurrentEvents * 4 / 5;
        var random = new SplitMix(20251122);
        var events = new StoredUsageEvent[ConcurrentEvents];
        for (var i = 0; i < unique; i++)
        {
            var customer = customers[i % customers.Length];
            events[i] = Event(customer, $"e{i}", random.Next(0, 1000)) with { Counter = Key(customer, i % 3 == 0 ? "storage" : "api_calls"), CountedAsNew = i % 2 == 0 };
        }

        for (var i = unique; i < events.Length; i++)
        {
            // Same key, other content: must not be stored. Half of the repeats claim to be new (a counter that forgot the key).
            var original = events[random.Next(unique)];
            events[i] = original with { Quantity = original.Quantity + 1, CountedAsNew = i % 2 == 1 };
        }

        var originals = events[..unique];
        random.Shuffle(events);
        var batches = new List<StoredUsageEvent[]>();
        for (var i = 0; i < events.Length;)
        {
            var size = Math.Min(events.Length - i, 1 + random.Next(0, 400));
            batches.Add(events.AsSpan(i, size).ToArray());
            i += size;
        }

        var reports = new ConcurrentDictionary<(string, string), int>();
        var winners = new ConcurrentDictionary<(string, string), StoredUsageEvent>();
        await Parallel.ForEachAsync(batches, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (batch, ct) =>
        {
            var results = await store.AppendAsync(batch, ct);
            Assert.Equal(batch.Length, results.Count);
            for (var i = 0; i < batch.Length; i++)
            {
                if (results[i])
                {
                    reports.AddOrUpdate((batch[i].Counter.CustomerId, batch[i].IdempotencyKey), 1, (_, n) => n + 1);
                    winners[(batch[i].Counter.CustomerId, batch[i].IdempotencyKey)] = batch[i];
                }
            }
        });

        Assert.Equal(unique, reports.Count);
        Assert.All(reports.Values, n => Assert.Equal(1, n));
        foreach (var customer in customers)
        {
            foreach (var meter in new[] { "api_calls", "storage" })
            {
                // Whichever event of a key was reported stored is the one stored (an original or its altered repeat).
                var expected = winners.Values.Where(e => e.Counter == Key(customer, meter)).ToDictionary(e => e.IdempotencyKey, e => e.Quantity);
                Assert.Equal(originals.Count(e => e.Counter == Key(customer, meter)), expected.Count);
                var listed = await store.ListAsync(Key(customer, meter));
                Assert.Equal(expected.Count, listed.Count);
                Assert.All(listed, e => Assert.Equal(expected[e.IdempotencyKey], e.Quantity));
                Assert.Equal(expected.Values.Sum(), await store.AggregateAsync(Key(customer, meter), MeterAggregation.Sum));
            }
        }
    }

    private static async Task CheckFoldAsync(IUsageEventStore store, EventSpec[] specs, int batches)
    {
        var prefix = NewCustomer();
        string[] meters = ["api_calls", "gauge"];
        var events = specs.Select(s => Event($"{prefix}_{s.Customer}", $"k{s.Key}", s.Quantity) with
        {
            Counter = Key($"{prefix}_{s.Customer}", meters[s.Meter]),
            Timestamp = PeriodStart.AddSeconds(s.Second),
            UniqueValue = s.Unique < 0 ? null : $"u{s.Unique}",
        }).ToArray();

        // Append in up to `batches` consecutive batches; the first event of each (customer, key) must win.
        var size = Math.Max(1, (events.Length + batches - 1) / batches);
        var reported = new List<bool>();
        for (var i = 0; i < events.Length; i += size)
        {
            reported.AddRange(await store.AppendAsync(events.AsSpan(i, Math.Min(size, events.Length - i)).ToArray()));
        }

        var seen = new HashSet<(string, string)>();
        var expected = events.Where(e => seen.Add((e.Counter.CustomerId, e.IdempotencyKey))).ToList();
        seen.Clear();
        Assert.Equal(events.Select(e => seen.Add((e.Counter.CustomerId, e.IdempotencyKey))), reported);

        foreach (var counter in events.Select(e => e.Counter).Distinct())
        {
            var listed = await store.ListAsync(counter);
            var model = expected.Where(e => e.Counter == counter).ToList();
            model.Sort(InMemoryUsageEventStore.CompareByTimestampThenKey);
            Assert.Equal(model.Select(e => (e.IdempotencyKey, e.Quantity, e.Timestamp, e.UniqueValue)), listed.Select(e => (e.IdempotencyKey, e.Quantity, e.Timestamp, e.UniqueValue)));
            foreach (var aggregation in Enum.GetValues<MeterAggregation>())
            {
                Assert.Equal(Fold(aggregation, listed), await store.AggregateAsync(counter, aggregation));
                Assert.Equal(Fold(aggregation, model.AsEnumerable().Reverse()), await store.AggregateAsync(counter, aggregation));
            }
        }
    }

    /// <summary>The reference aggregate: events folded through <see cref="UsageCounterState"/>, unique count skipping events without a value.</summary>
    private static long Fold(MeterAggregation aggregation, IEnumerable<StoredUsageEvent> events)
    {
        var state = new UsageCounterState();
        foreach (var e in events)
        {
            if (aggregation != MeterAggregation.UniqueCount || e.UniqueValue is not null)
            {
                state.Apply(aggregation, InMemoryUsageEventStore.ToCounterEvent(e, aggregation));
            }
        }

        return state.Total;
    }

    private static void AssertSame(StoredUsageEvent expected, StoredUsageEvent actual)
    {
        Assert.Equal(expected.Counter, actual.Counter);
        Assert.Equal(expected.IdempotencyKey, actual.IdempotencyKey);
        Assert.Equal(expected.Quantity, actual.Quantity);
        Assert.Equal(expected.Timestamp, actual.Timestamp);
        Assert.Equal(TimeSpan.Zero, actual.Timestamp.Offset);
        Assert.Equal(expected.ReceivedAt, actual.ReceivedAt);
        Assert.Equal(expected.SubscriptionId, actual.SubscriptionId);
        Assert.Equal(expected.UniqueValue, actual.UniqueValue);
        Assert.Equal(expected.AcceptanceToken, actual.AcceptanceToken);
        Assert.Equal(expected.Properties.OrderBy(p => p.Key, StringComparer.Ordinal), actual.Properties.OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    private readonly record struct EventSpec(int Customer, int Meter, int Key, int Second, int Quantity, int Unique);

    private static string NewCustomer() => "cus_" + Guid.NewGuid().ToString("N")[..16];

    private static UsageCounterKey Key(string customer, string meter = "api_calls") => new(customer, meter, PeriodStart);

    private static UsageCounterKey Key(string customer, string meter, DateTimeOffset periodStart) => new(customer, meter, periodStart);

    private static StoredUsageEvent Event(string customer, string key, long quantity) => new()
    {
        Counter = Key(customer),
        Quantity = quantity,
        IdempotencyKey = key,
        Timestamp = PeriodStart.AddDays(1),
        ReceivedAt = Received,
    };
}
