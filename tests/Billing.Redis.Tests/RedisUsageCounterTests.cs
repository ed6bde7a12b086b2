using System.Globalization;
using Billing.InMemory;
using Billing.Testing.Servers;
using Billing.Usage;

namespace Billing.Redis.Tests;

/// <summary>Redis-specific behaviour: key layout, expiry, script cache loss, exact 64-bit numbers, batching, and the same
/// results as the in-memory reference for random workloads.</summary>
public sealed class RedisUsageCounterTests(RedisFixture fixture) : IClassFixture<RedisFixture>
{
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly long PeriodSeconds = PeriodStart.ToUnixTimeSeconds();
    private static readonly long PeriodDay = DayOf(PeriodStart);

    private RedisUsageCounter Counter => fixture.Counter;

    private LocalRedisServer Server => fixture.Server;

    [Fact]
    public async Task Keys_are_named_by_customer_group_and_period_and_customers_are_fields()
    {
        await using var counter = await PrefixCounterAsync("layout");
        var c = NewCustomer();
        var g = GroupOf(c);
        await counter.RecordAsync(Event(c, "k1", 5));
        await counter.RecordAsync(Event(c, "k2", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "u1" });
        await counter.RecordAsync(Event(c, "k3", 7) with { Counter = Key(c, "gauge"), Aggregation = MeterAggregation.Last });

        var keys = await KeysAsync("layout:*");

        var generation = await GenerationAsync();
        Assert.Equal(
            [$"layout:{{g{g}}}:c:{PeriodDay}", $"layout:{{g{g}}}:i:{generation}", $"layout:{{g{g}}}:u:{PeriodSeconds}:{Tag(c)}users"],
            keys.Order(StringComparer.Ordinal));
        var hash = $"layout:{{g{g}}}:c:{PeriodDay}";
        Assert.Equal(["", Field(c, "api_calls"), Field(c, "gauge"), Field(c, "users")], (await HashFieldsAsync(hash)).Order(StringComparer.Ordinal)); // "": the hash's expiry
        Assert.StartsWith("5:", (string?)await Server.ExecuteAsync("HGET", hash, Field(c, "api_calls")), StringComparison.Ordinal);
        var gauge = ((string)(await Server.ExecuteAsync("HGET", hash, Field(c, "gauge")))!).Split(':');
        Assert.Equal(["7", gauge[1], Event(c, "k3", 7).Timestamp.UtcTicks.ToString(CultureInfo.InvariantCulture), "006b0033"], gauge); // total, expiry, ticks, ordinal key ("k3")
        Assert.Equal(["", $"{Tag(c)}k1", $"{Tag(c)}k2", $"{Tag(c)}k3"], (await HashFieldsAsync($"layout:{{g{g}}}:i:{generation}")).Order(StringComparer.Ordinal));
        Assert.Equal(["u1"], ((object?[])(await Server.ExecuteAsync("SMEMBERS", $"layout:{{g{g}}}:u:{PeriodSeconds}:{Tag(c)}users"))!).Cast<string>());
        Assert.Equal("5", (await IdempotencyEntryAsync(c, "k1", "layout"))?.Total);
        Assert.Equal("1", (await IdempotencyEntryAsync(c, "k2", "layout"))?.Total);
    }

    [Fact]
    public async Task Every_key_carries_its_customers_group_as_hash_tag_whatever_braces_the_id_holds()
    {
        await using var counter = await PrefixCounterAsync("tags");
        string[] customers = [NewCustomer(), "}lead", "cus_{x}y", "a%7Bb", "a{b", "{}", "%", "{g1}"];
        foreach (var c in customers)
        {
            await counter.RecordBatchAsync(
            [
                Event(c, "s1", 1),
                Event(c, "u1", 1) with { Counter = Key(c, "users:{weird}"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "v" },
                Event(c, "l1", 4) with { Counter = Key(c, "gauge"), Aggregation = MeterAggregation.Last },
            ]);
        }

        // Redis Cluster hashes the text between the first '{' and the first '}' after it: always the group.
        var all = await KeysAsync("tags:*");
        Assert.All(all, k => Assert.Matches("^g[0-9]+$", HashTag(k)));
        foreach (var c in customers)
        {
            var tag = $"g{GroupOf(c)}";
            Assert.Contains($"tags:{{{tag}}}:c:{PeriodDay}", all);
            Assert.Contains($"tags:{{{tag}}}:u:{PeriodSeconds}:{Tag(c)}users:{{weird}}", all);
            Assert.NotNull(await Server.ExecuteAsync("HGET", $"tags:{{{tag}}}:c:{PeriodDay}", Field(c, "gauge")));
            Assert.Equal(1, await counter.GetTotalAsync(Key(c)));
        }

        // "a{b" and "a%7Bb" are different customers with different counters.
        await counter.RecordAsync(Event("a{b", "s2", 10));
        Assert.Equal(11, await counter.GetTotalAsync(Key("a{b")));
        Assert.Equal(1, await counter.GetTotalAsync(Key("a%7Bb")));
    }

    [Fact]
    public async Task Customers_of_one_group_keep_their_own_idempotency_keys_and_counters()
    {
        // One group: every customer shares the hashes. Ids, meters and keys that would run together without the length
        // of the customer ("a" + "bc" and "ab" + "c", "1" + "2:x" and "12" + ":x") stay apart.
        await using var counter = await PrefixCounterAsync("one", groups: 1);
        var reference = new InMemoryUsageCounter();
        (string Customer, string Tail)[] pairs = [("a", "bc"), ("ab", "c"), ("1", "2:x"), ("12", ":x"), ("1:a", "b"), ("é", "x"), (NewCustomer(), "bc")];
        var events = new List<UsageCounterEvent>();
        foreach (var (c, tail) in pairs)
        {
            events.Add(Event(c, tail, 3) with { Counter = Key(c, tail) });
            events.Add(Event(c, "k-" + tail, 2) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = tail });
            events.Add(Event(c, "l-" + tail, c.Length) with { Counter = Key(c, "gauge"), Aggregation = MeterAggregation.Last, Timestamp = PeriodStart.AddMinutes(tail.Length) });
        }

        Assert.Equal(await reference.RecordBatchAsync(events), await counter.RecordBatchAsync(events));
        Assert.All(await counter.RecordBatchAsync(events), r => Assert.Equal(UsageOutcome.Duplicate, r.Outcome)); // each key taken by its own customer
        foreach (var e in events)
        {
            Assert.Equal(await reference.RecordAsync(e), await counter.RecordAsync(e));
        }

        // A key of one customer is free for the others; single calls, batches and rebuilds see the same counters.
        foreach (var (c, tail) in pairs)
        {
            var other = Event(c, "bc", 1) with { Counter = Key(c, "shared") };
            Assert.Equal(await reference.RecordAsync(other), await counter.RecordAsync(other));
            foreach (var meter in new[] { tail, "users", "gauge", "shared" })
            {
                Assert.Equal(await reference.GetTotalAsync(Key(c, meter)), await counter.GetTotalAsync(Key(c, meter)));
            }
        }

        var (first, firstTail) = pairs[0];
        Assert.Equal(await reference.RebuildAsync(Key(first, firstTail), MeterAggregation.Sum, [events[0]]), await counter.RebuildAsync(Key(first, firstTail), MeterAggregation.Sum, [events[0]]));
        Assert.Equal(3, await counter.GetTotalAsync(Key(pairs[1].Customer, pairs[1].Tail)));
        Assert.All(await KeysAsync("one:*"), k => Assert.Equal("g0", HashTag(k)));
        Assert.Single(await KeysAsync("one:*"), k => k.Contains(":c:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_counter_whose_retention_passed_reads_as_zero_while_its_group_hash_lives_on_and_restarts()
    {
        // One group: a long-lived counter keeps the hash alive, the short-lived ones expire on their own.
        await using var counter = await PrefixCounterAsync("ret", groups: 1);
        var keeper = NewCustomer();
        var c = NewCustomer();
        var retention = TimeSpan.FromSeconds(1);
        await counter.RecordAsync(Event(keeper, "k", 1));
        var t = PeriodStart.AddDays(2);
        Assert.Equal(5, (await counter.RecordAsync(Event(c, "s1", 5) with { CounterRetention = retention })).Total);
        Assert.Equal(9, (await counter.RecordAsync(Event(c, "l1", 9) with { Counter = Key(c, "gauge"), Aggregation = MeterAggregation.Last, Timestamp = t, CounterRetention = retention })).Total);
        Assert.Equal(1, (await counter.RecordAsync(Event(c, "u1", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "v", CounterRetention = retention })).Total);
        Assert.Equal(2, (await counter.RecordAsync(Event(c, "u1w", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "w", CounterRetention = retention })).Total);
        var set = $"ret:{{g0}}:u:{PeriodSeconds}:{Tag(c)}users";
        Assert.Equal(1L, await Server.ExecuteAsync("PERSIST", set)); // a set outliving its counter must not count again
        var written = await ServerMillisecondsAsync();
        Assert.Equal(5, await counter.GetTotalAsync(Key(c)));
        while (await ServerMillisecondsAsync() < written + 1_100)
        {
            await Task.Delay(50);
        }

        // Expired, while the hash (kept by the other counter) and the set are still there.
        var hash = $"ret:{{g0}}:c:{PeriodDay}";
        Assert.NotNull(await Server.ExecuteAsync("HGET", hash, Field(c, "api_calls")));
        Assert.True(await PttlAsync(hash) > (long)TimeSpan.FromDays(69).TotalMilliseconds);
        Assert.Equal(1L, await Server.ExecuteAsync("EXISTS", set));
        Assert.Equal(0, await counter.GetTotalAsync(Key(c)));
        Assert.Equal(0, await counter.GetTotalAsync(Key(c, "gauge")));
        Assert.Equal(0, await counter.GetTotalAsync(Key(c, "users")));
        Assert.Equal(1, await counter.GetTotalAsync(Key(keeper)));

        // The next writes start afresh: the sum from 0, Last with an earlier timestamp, the unique value counted again.
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 2), await counter.RecordAsync(Event(c, "s2", 2) with { CounterRetention = retention }));
        Assert.Equal(
            [new(UsageOutcome.Accepted, 4), new(UsageOutcome.Accepted, 1), new(UsageOutcome.Accepted, 3)],
            await counter.RecordBatchAsync(
            [
                Event(c, "l2", 4) with { Counter = Key(c, "gauge"), Aggregation = MeterAggregation.Last, Timestamp = t.AddDays(-1), CounterRetention = retention },
                Event(c, "u2", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "v", CounterRetention = retention },
                Event(c, "s3", 1) with { CounterRetention = retention },
            ]));
        Assert.Equal(["v"], ((object?[])(await Server.ExecuteAsync("SMEMBERS", set))!).Cast<string>()); // the stale "w" is gone
        Assert.InRange(await PttlAsync(set), 1, 1_000 + 15);
        Assert.Equal(2, (await counter.RecordAsync(Event(c, "u3", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "w", CounterRetention = retention })).Total);
        var rewritten = await ServerMillisecondsAsync();
        Assert.Equal(3, await counter.GetTotalAsync(Key(c)));
        Assert.Equal(UsageOutcome.Duplicate, (await counter.RecordAsync(Event(c, "s1", 5))).Outcome); // keys keep their own window

        // A rebuild of an expired counter starts from zero too.
        while (await ServerMillisecondsAsync() < rewritten + 1_100)
        {
            await Task.Delay(50);
        }

        Assert.Equal(0, await counter.GetTotalAsync(Key(c)));
        Assert.Equal(0, await counter.GetTotalAsync(Key(c, "users")));
        Assert.Equal(7, await counter.RebuildAsync(Key(c), MeterAggregation.Sum, [Event(c, "s9", 7) with { CounterRetention = TimeSpan.FromDays(1) }]));
        Assert.Equal(7, await counter.GetTotalAsync(Key(c)));
    }

    [Fact]
    public async Task Counters_of_periods_starting_the_same_UTC_day_share_one_hash_and_keep_their_own_totals()
    {
        // One customer, one meter, periods starting 0.3 s and 5 h after 2025-03-01T00:00Z (Unix 1740787200, day 20148),
        // one tick before it (day 20147) and a day after it (day 20149).
        await using var counter = await PrefixCounterAsync("day");
        var c = NewCustomer();
        var g = GroupOf(c);
        DateTimeOffset[] starts = [PeriodStart, PeriodStart.AddMilliseconds(300), PeriodStart.AddHours(5), PeriodStart.AddTicks(-1), PeriodStart.AddDays(1)];
        UsageCounterKey At(int p, string meter = "api_calls") => Key(c, meter) with { PeriodStart = starts[p] };
        var events = new List<UsageCounterEvent>();
        for (var p = 0; p < starts.Length; p++)
        {
            events.Add(Event(c, $"s{p}", 10 + p) with { Counter = At(p) });
            events.Add(Event(c, $"u{p}", 1) with { Counter = At(p, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = $"v{p}" });
        }

        var results = await counter.RecordBatchAsync(events);
        Assert.Equal(Enumerable.Range(0, starts.Length).SelectMany(p => new[] { new UsageCounterResult(UsageOutcome.Accepted, 10 + p), new UsageCounterResult(UsageOutcome.Accepted, 1) }), results);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 111), await counter.RecordAsync(Event(c, "s1b", 100) with { Counter = At(1) }));
        Assert.Equal(2, (await counter.RecordAsync(Event(c, "u1b", 1) with { Counter = At(1, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "v0" })).Total);
        long[] expected = [10, 111, 12, 13, 14];
        for (var p = 0; p < starts.Length; p++)
        {
            Assert.Equal(expected[p], await counter.GetTotalAsync(At(p)));
            Assert.Equal(p == 1 ? 2 : 1, await counter.GetTotalAsync(At(p, "users")));
        }

        // Three day hashes; the three periods of day 20148 are fields of one, named by their exact start.
        Assert.Equal(
            [$"day:{{g{g}}}:c:20147", $"day:{{g{g}}}:c:20148", $"day:{{g{g}}}:c:20149"],
            (await KeysAsync("day:*:c:*")).Order(StringComparer.Ordinal));
        var tag = Tag(c);
        Assert.Equal(
            ["", $"1740787200.3000000:{tag}api_calls", $"1740787200.3000000:{tag}users", $"1740787200:{tag}api_calls", $"1740787200:{tag}users", $"1740805200:{tag}api_calls", $"1740805200:{tag}users"],
            (await HashFieldsAsync($"day:{{g{g}}}:c:20148")).Order(StringComparer.Ordinal));
        Assert.Equal(["", $"1740787199.9999999:{tag}api_calls", $"1740787199.9999999:{tag}users"], (await HashFieldsAsync($"day:{{g{g}}}:c:20147")).Order(StringComparer.Ordinal));
        Assert.StartsWith("111:", (string?)await Server.ExecuteAsync("HGET", $"day:{{g{g}}}:c:20148", $"1740787200.3000000:{tag}api_calls"), StringComparison.Ordinal);
        Assert.Equal(["v0", "v1"], ((object?[])(await Server.ExecuteAsync("SMEMBERS", $"day:{{g{g}}}:u:1740787200.3000000:{tag}users"))!).Cast<string>().Order(StringComparer.Ordinal));
        Assert.Equal(["v0"], ((object?[])(await Server.ExecuteAsync("SMEMBERS", $"day:{{g{g}}}:u:1740787200:{tag}users"))!).Cast<string>());

        // A rebuild of one period of a shared hash leaves the others.
        Assert.Equal(5, await counter.RebuildAsync(At(2), MeterAggregation.Sum, [Event(c, "r2", 5) with { Counter = At(2) }]));
        Assert.Equal(10, await counter.GetTotalAsync(At(0)));
        Assert.Equal(111, await counter.GetTotalAsync(At(1)));

        // One HSET per day hash a call writes (no idempotency writes with a zero dedup window): one for three periods of one
        // day, three for three days.
        var sameDay = await CommandCallsAsync("hset");
        await counter.RecordBatchAsync([.. Periods(0, 1, 2).Select(p => Event(c, $"n{p}", 1) with { Counter = At(p), DedupWindow = TimeSpan.Zero })]);
        var otherDays = await CommandCallsAsync("hset");
        await counter.RecordBatchAsync([.. Periods(0, 3, 4).Select(p => Event(c, $"m{p}", 1) with { Counter = At(p), DedupWindow = TimeSpan.Zero })]);
        Assert.Equal((1, 3), (otherDays - sameDay, await CommandCallsAsync("hset") - otherDays));
        Assert.Equal(new long[] { 12, 112, 6, 14, 15 }, await Task.WhenAll(Enumerable.Range(0, starts.Length).Select(p => counter.GetTotalAsync(At(p)).AsTask())));

        static int[] Periods(params int[] periods) => periods;
    }

    [Fact]
    public async Task An_expired_counter_in_a_shared_day_hash_reads_zero_while_a_live_one_keeps_its_total()
    {
        await using var counter = await PrefixCounterAsync("dayexp");
        var c = NewCustomer();
        var shortLived = Key(c) with { PeriodStart = PeriodStart.AddHours(5) };
        var live = Key(c) with { PeriodStart = PeriodStart.AddHours(5).AddMilliseconds(300) };
        var retention = TimeSpan.FromSeconds(1);
        await counter.RecordBatchAsync(
        [
            Event(c, "a1", 4) with { Counter = shortLived, CounterRetention = retention },
            Event(c, "b1", 6) with { Counter = live },
        ]);
        var written = await ServerMillisecondsAsync();
        var hash = $"dayexp:{{g{GroupOf(c)}}}:c:{PeriodDay}";
        Assert.Equal((4, 6), (await counter.GetTotalAsync(shortLived), await counter.GetTotalAsync(live)));
        while (await ServerMillisecondsAsync() < written + 1_100)
        {
            await Task.Delay(50);
        }

        // The expired counter's field is still in the hash, which the live counter keeps for its 70 days.
        Assert.NotNull(await Server.ExecuteAsync("HGET", hash, $"1740805200:{Tag(c)}api_calls"));
        AssertTtl(TimeSpan.FromDays(70), await PttlAsync(hash));
        Assert.Equal((0, 6), (await counter.GetTotalAsync(shortLived), await counter.GetTotalAsync(live)));

        // The next writes: the expired counter restarts from zero, the live one goes on, in one call.
        Assert.Equal(
            [new(UsageOutcome.Accepted, 2), new(UsageOutcome.Accepted, 7)],
            await counter.RecordBatchAsync(
            [
                Event(c, "a2", 2) with { Counter = shortLived, CounterRetention = retention },
                Event(c, "b2", 1) with { Counter = live },
            ]));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 4), await counter.RecordAsync(Event(c, "a1", 4) with { Counter = shortLived }));
        Assert.Equal((2, 7), (await counter.GetTotalAsync(shortLived), await counter.GetTotalAsync(live)));
    }

    [Fact]
    public void Counter_hashes_are_named_by_the_UTC_day_of_the_period_start_and_fields_by_the_exact_start()
    {
        var epoch = DateTimeOffset.UnixEpoch;
        Assert.Equal(0, RedisKeys.Day(epoch));
        Assert.Equal(-1, RedisKeys.Day(epoch.AddTicks(-1)));
        Assert.Equal(-2, RedisKeys.Day(epoch.AddDays(-1).AddTicks(-1)));
        Assert.Equal(20148, RedisKeys.Day(PeriodStart));
        Assert.Equal(20148, RedisKeys.Day(new DateTimeOffset(2025, 3, 1, 23, 59, 59, TimeSpan.Zero).AddTicks(9_999_999)));
        Assert.Equal(20148, RedisKeys.Day(new DateTimeOffset(2025, 3, 2, 0, 30, 0, TimeSpan.FromHours(1)))); // 2025-03-01T23:30Z
        var keys = new RedisKeys("billing", 16);
        Assert.Equal("billing:{g7}:c:20148", keys.CounterHash(7, PeriodStart.AddHours(23)));
        var counter = new UsageCounterKey("é", "m:1", PeriodStart.AddMilliseconds(300));
        Assert.Equal("1740787200.3000000:2:ém:1", RedisKeys.CounterField(counter));
        Assert.Equal("-1.9999999:2:ém:1", RedisKeys.CounterField(counter with { PeriodStart = epoch.AddTicks(-1) }));
        Assert.Equal("billing:{g7}:u:1740787200.3000000:2:ém:1", keys.UniqueSet(7, counter));
    }

    [Fact]
    public void The_customer_group_is_FNV_1a_of_the_ids_UTF_16_code_units_modulo_the_groups()
    {
        // Worked out by hand (and independently of the adapter's code): FNV-1a, 32 bits, offset basis 2166136261, prime
        // 16777619, over each code unit's low then high byte. "cus_123" hashes to 0x149B5567 = 345724263, and
        // 345724263 mod 16 = 7, mod 1,000 = 263, mod 16,384 = 5479; the empty id is the offset basis 0x811C9DC5; "é😀"
        // (U+00E9, U+D83D, U+DE00) hashes to 0x932180D7 = 2468446423.
        Assert.Equal(7, RedisKeys.GroupOf("cus_123", 16));
        Assert.Equal(263, RedisKeys.GroupOf("cus_123", 1_000));
        Assert.Equal(5479, RedisKeys.GroupOf("cus_123", 16_384));
        Assert.Equal(0, RedisKeys.GroupOf("cus_123", 1));
        Assert.Equal((int)(2_166_136_261 % 16), RedisKeys.GroupOf("", 16));
        Assert.Equal((int)(2_468_446_423 % 16_384), RedisKeys.GroupOf("é😀", 16_384));
        Assert.Equal("billing:{g7}", new RedisKeys("billing", 16).GroupKey(RedisKeys.GroupOf("cus_123", 16)));
    }

    [Fact]
    public void The_slot_function_of_these_tests_matches_the_Redis_Cluster_specification()
    {
        Assert.Equal(0x31C3 % 16384, Crc16Slot("123456789"));
        Assert.Equal(12182, Crc16Slot("foo"));
    }

    [Fact]
    public async Task Counters_expire_after_their_retention_and_keys_after_their_dedup_window()
    {
        await using var counter = await PrefixCounterAsync("exp");
        var c = NewCustomer();
        var g = GroupOf(c);
        var hash = $"exp:{{g{g}}}:c:{PeriodDay}";
        await counter.RecordAsync(Event(c, "k1", 5) with { CounterRetention = TimeSpan.Zero, DedupWindow = TimeSpan.FromHours(1) });
        await counter.RecordAsync(Event(c, "k2", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "u", CounterRetention = TimeSpan.FromDays(5) });
        await counter.RecordAsync(Event(c, "k3", 1) with { Counter = Key(c, "no_key"), DedupWindow = TimeSpan.Zero });

        AssertTtl(TimeSpan.FromDays(70), await CounterLeftAsync(hash, c)); // the options' default
        AssertTtl(TimeSpan.FromDays(70), await PttlAsync(hash)); // the hash: until its latest counter expires
        AssertTtl(TimeSpan.FromHours(1), (await IdempotencyEntryAsync(c, "k1", "exp"))!.Value.Left);
        AssertTtl(TimeSpan.FromDays(5), await CounterLeftAsync(hash, c, "users"));
        AssertTtl(TimeSpan.FromDays(5), await PttlAsync($"exp:{{g{g}}}:u:{PeriodSeconds}:{Tag(c)}users"));
        Assert.Null(await IdempotencyEntryAsync(c, "k3", "exp")); // a zero window keeps no key
        AssertTtl(TimeSpan.FromDays(35), await PttlAsync($"exp:{{g{g}}}:i:{await GenerationAsync()}")); // until its last key expires
        Assert.Equal(UsageOutcome.Accepted, (await counter.RecordAsync(Event(c, "k3", 1) with { Counter = Key(c, "no_key"), DedupWindow = TimeSpan.Zero })).Outcome);

        // Every accepted write moves the counter's expiry; the latest event's retention wins. The hash stays until its
        // latest counter expires.
        await counter.RecordAsync(Event(c, "k4", 1) with { CounterRetention = TimeSpan.FromDays(3) });
        Assert.InRange(await CounterLeftAsync(hash, c), (long)TimeSpan.FromDays(3).TotalMilliseconds - 60_000, (long)TimeSpan.FromDays(3).TotalMilliseconds);
        AssertTtl(TimeSpan.FromDays(70), await PttlAsync(hash));

        // Within one call too, the events of a counter each with its own retention: the latest accepted one's wins (a
        // duplicate's does not count).
        await counter.RecordBatchAsync([Event(c, "k5", 1) with { CounterRetention = TimeSpan.FromDays(9) }, Event(c, "k6", 1) with { CounterRetention = TimeSpan.FromDays(2) }]);
        AssertTtl(TimeSpan.FromDays(2), await CounterLeftAsync(hash, c));
        await counter.RecordBatchAsync([Event(c, "k7", 1) with { CounterRetention = TimeSpan.FromDays(4) }, Event(c, "k5", 1) with { CounterRetention = TimeSpan.FromDays(9) }]);
        AssertTtl(TimeSpan.FromDays(4), await CounterLeftAsync(hash, c));
        Assert.Equal(9, await counter.GetTotalAsync(Key(c))); // k1 (5), k4, k5, k6, k7

        // A rebuild restores both.
        await counter.RebuildAsync(Key(c), MeterAggregation.Sum, [Event(c, "k1", 5) with { DedupWindow = TimeSpan.FromMinutes(10), CounterRetention = TimeSpan.FromDays(90) }]);
        AssertTtl(TimeSpan.FromDays(90), await CounterLeftAsync(hash, c));
        AssertTtl(TimeSpan.FromDays(90), await PttlAsync(hash));
        AssertTtl(TimeSpan.FromMinutes(10), (await IdempotencyEntryAsync(c, "k1", "exp"))!.Value.Left);
    }

    [Fact]
    public async Task Expiries_move_once_per_slack_and_never_below_what_a_key_or_counter_needs()
    {
        await using var counter = await PrefixCounterAsync("slack");
        var c = NewCustomer();
        var hash = $"slack:{{g{GroupOf(c)}}}:i:{await GenerationAsync()}";
        var counters = $"slack:{{g{GroupOf(c)}}}:c:{PeriodDay}";
        await counter.RecordAsync(Event(c, "k1", 1) with { DedupWindow = TimeSpan.FromHours(1), CounterRetention = TimeSpan.FromDays(3) });
        var hashAt = await ExpireTimeAsync(hash);
        var countersAt = await ExpireTimeAsync(counters);
        var taken = await ServerMillisecondsAsync();
        Assert.InRange(hashAt - taken, (long)TimeSpan.FromHours(1).TotalMilliseconds - 60_000, (long)TimeSpan.FromHours(1).TotalMilliseconds + 60_000);
        Assert.InRange(countersAt - taken, (long)TimeSpan.FromDays(3).TotalMilliseconds - 60_000, (long)TimeSpan.FromDays(3).TotalMilliseconds + 60_000);

        // Later events within the slack (a minute here) leave both expiries where they are: no PEXPIRE per event.
        await Task.Delay(20);
        await counter.RecordAsync(Event(c, "k2", 1) with { DedupWindow = TimeSpan.FromHours(1), CounterRetention = TimeSpan.FromDays(3) });
        await counter.RecordBatchAsync([Event(c, "k3", 1) with { DedupWindow = TimeSpan.FromHours(1), CounterRetention = TimeSpan.FromDays(3) }]);
        Assert.Equal(hashAt, await ExpireTimeAsync(hash));
        Assert.Equal(countersAt, await ExpireTimeAsync(counters));

        // A longer window moves the hash's expiry to cover the new key; a longer retention moves the counter hash's, a
        // shorter one moves the counter's own expiry back but leaves the hash's (it never moves back).
        await counter.RecordAsync(Event(c, "k4", 1) with { DedupWindow = TimeSpan.FromHours(2), CounterRetention = TimeSpan.FromDays(9) });
        var now = await ServerMillisecondsAsync();
        var (_, left) = (await IdempotencyEntryAsync(c, "k4", "slack"))!.Value;
        Assert.True(await ExpireTimeAsync(hash) - now >= left);
        AssertTtl(TimeSpan.FromDays(9), await CounterLeftAsync(counters, c));
        AssertTtl(TimeSpan.FromDays(9), await PttlAsync(counters));
        await counter.RecordAsync(Event(c, "k5", 1) with { DedupWindow = TimeSpan.FromHours(1), CounterRetention = TimeSpan.FromDays(3) });
        AssertTtl(TimeSpan.FromDays(3), await CounterLeftAsync(counters, c));
        AssertTtl(TimeSpan.FromDays(9), await PttlAsync(counters));
        foreach (var k in new[] { "k1", "k2", "k3", "k4", "k5" })
        {
            Assert.Equal(UsageOutcome.Duplicate, (await counter.RecordAsync(Event(c, k, 1) with { DedupWindow = TimeSpan.FromHours(1) })).Outcome);
        }

        Assert.Equal(5, await counter.GetTotalAsync(Key(c)));
    }

    [Fact]
    public async Task A_hash_without_a_recorded_expiry_keeps_its_expiry_and_its_keys()
    {
        // Entries only, kept by PEXPIRE until the last key expires (as a hash whose recorded expiry was lost).
        await using var counter = await PrefixCounterAsync("bare");
        var c = NewCustomer();
        var hash = $"bare:{{g{GroupOf(c)}}}:i:{await GenerationAsync()}";
        var now = await ServerMillisecondsAsync();
        var twoDays = (long)TimeSpan.FromDays(2).TotalMilliseconds;
        await Server.ExecuteAsync("HSET", hash, Tag(c) + "old", string.Create(CultureInfo.InvariantCulture, $"7:{now + twoDays}:42"));
        await Server.ExecuteAsync("PEXPIRE", hash, twoDays.ToString(CultureInfo.InvariantCulture));

        // A shorter window must not shorten the hash's life; the old key stays a duplicate with its original result.
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 1), await counter.RecordAsync(Event(c, "new", 1) with { DedupWindow = TimeSpan.FromMinutes(10) }));
        Assert.True(await PttlAsync(hash) > twoDays - 60_000);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 7, 42), await counter.RecordAsync(Event(c, "old", 1)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 1), await counter.RecordAsync(Event(c, "new", 1)));
        Assert.True(await PttlAsync(hash) > twoDays - 60_000);

        // The same for a counter hash: a counter written with a shorter retention does not shorten the hash's life.
        var counters = $"bare:{{g{GroupOf(c)}}}:c:{PeriodDay}";
        await Server.ExecuteAsync("HDEL", counters, "");
        await Server.ExecuteAsync("PEXPIRE", counters, twoDays.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, (await counter.RecordAsync(Event(c, "short", 0) with { CounterRetention = TimeSpan.FromMinutes(5) })).Total);
        Assert.True(await PttlAsync(counters) > twoDays - 60_000);
        Assert.Equal(1, await counter.GetTotalAsync(Key(c)));
    }

    /// <summary>A counter on the test server with its own key prefix and idempotency generations of <paramref name="generation"/>.</summary>
    private Task<RedisUsageCounter> GenerationCounterAsync(string prefix, TimeSpan generation) =>
        RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions
        {
            ConfigurationString = Server.ConfigurationString,
            KeyPrefix = prefix,
            IdempotencyGeneration = generation,
        });

    [Fact]
    public async Task A_key_taken_late_in_a_generation_is_found_from_the_next_one_after_that_ones_hash_was_created()
    {
        // Generations of 2 s, windows of 1.8 s: the next generation's hash records how long the previous one is kept, and
        // lookups skip the previous generation only once that has passed. The key is taken late in its generation, so
        // the checks from the next generation have about a second before its window ends (a loaded machine may stall).
        await using var counter = await GenerationCounterAsync("prev", TimeSpan.FromSeconds(2));
        var c = NewCustomer();
        var window = TimeSpan.FromMilliseconds(1800);
        while (await ServerMillisecondsAsync() % 2000 is < 1200 or > 1500)
        {
            await Task.Delay(20);
        }

        var first = Event(c, "k1", 1) with { DedupWindow = window };
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 1), await counter.RecordAsync(first));
        var taken = await ServerMillisecondsAsync();
        var next = ((taken / 2000) + 1) * 2000;
        while (await ServerMillisecondsAsync() < next + 20)
        {
            await Task.Delay(20);
        }

        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 2), await counter.RecordAsync(Event(c, "k2", 1) with { DedupWindow = window }));
        Assert.Contains(":", (string?)await Server.ExecuteAsync("HGET", $"prev:{{g{GroupOf(c)}}}:i:{next / 2000}", ""), StringComparison.Ordinal);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 1), await counter.RecordAsync(first));
        Assert.Equal([new(UsageOutcome.Accepted, 3), new(UsageOutcome.Duplicate, 1)], await counter.RecordBatchAsync([Event(c, "k3", 1) with { DedupWindow = window }, first]));

        // Once k1's window has passed it is free again, and taken again in the current generation.
        while (await ServerMillisecondsAsync() < taken + 1900)
        {
            await Task.Delay(20);
        }

        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 4), await counter.RecordAsync(first));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 4), await counter.RecordAsync(first));
    }

    [Fact]
    public async Task Keys_are_found_across_generations_until_their_window_ends_and_old_generations_expire()
    {
        // Generations of 1 s and windows of 3.5 s: a key is taken in one generation and must be found from the later ones.
        await using var counter = await GenerationCounterAsync("gen", TimeSpan.FromSeconds(1));
        var c = NewCustomer();
        var window = TimeSpan.FromMilliseconds(3500);
        var first = Event(c, "k1", 5) with { DedupWindow = window };
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 5), await counter.RecordAsync(first));
        var taken = await ServerMillisecondsAsync();
        var firstGeneration = taken / 1000;

        // Duplicates in every later generation of the window, alone and in a batch with a new key.
        while (await ServerMillisecondsAsync() < taken + 2500)
        {
            Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5), await counter.RecordAsync(first));
            await Task.Delay(300);
        }

        Assert.True(await ServerMillisecondsAsync() / 1000 >= firstGeneration + 2);
        var batch = await counter.RecordBatchAsync([Event(c, "k2", 1) with { DedupWindow = window }, first, Event(c, "k2", 1) with { DedupWindow = window }]);
        Assert.Equal([new(UsageOutcome.Accepted, 6), new(UsageOutcome.Duplicate, 5), new(UsageOutcome.Duplicate, 6)], batch);

        // Free again once the window has passed; the old generation's hash is gone once its last key expired.
        while (await ServerMillisecondsAsync() < taken + 3600)
        {
            await Task.Delay(100);
        }

        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 11), await counter.RecordAsync(first));
        Assert.Equal(0L, await Server.ExecuteAsync("EXISTS", $"gen:{{g{GroupOf(c)}}}:i:{firstGeneration}"));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 6), await counter.RecordAsync(Event(c, "k2", 1) with { DedupWindow = window }));
    }

    [Fact]
    public async Task Recording_works_after_the_script_cache_is_flushed()
    {
        var c = NewCustomer();
        Assert.Equal(5, (await Counter.RecordAsync(Event(c, "k1", 5))).Total);
        await Counter.RebuildAsync(Key(c), MeterAggregation.Sum, [Event(c, "k1", 5)]);

        Assert.Equal("OK", await Server.ExecuteAsync("SCRIPT", "FLUSH"));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 12), await Counter.RecordAsync(Event(c, "k2", 7)));

        Assert.Equal("OK", await Server.ExecuteAsync("SCRIPT", "FLUSH"));
        Assert.Equal(
            [new(UsageOutcome.Accepted, 13), new(UsageOutcome.Duplicate, 5)],
            await Counter.RecordBatchAsync([Event(c, "k3", 1), Event(c, "k1", 5)]));

        Assert.Equal("OK", await Server.ExecuteAsync("SCRIPT", "FLUSH"));
        Assert.Equal(6, await Counter.RebuildAsync(Key(c), MeterAggregation.Sum, [Event(c, "k1", 5), Event(c, "k3", 1)]));
        Assert.Equal(6, await Counter.GetTotalAsync(Key(c)));

        // Hundreds of calls in flight while the cache is flushed, twice: each runs exactly once.
        var calls = new List<Task<UsageCounterResult>>();
        for (var i = 0; i < 600; i++)
        {
            calls.Add(Counter.RecordAsync(Event(c, $"f{i}", 1)).AsTask());
            if (i is 200 or 400)
            {
                Assert.Equal("OK", await Server.ExecuteAsync("SCRIPT", "FLUSH"));
            }
        }

        Assert.All(await Task.WhenAll(calls), r => Assert.Equal(UsageOutcome.Accepted, r.Outcome));
        Assert.Equal(606, await Counter.GetTotalAsync(Key(c)));
    }

    [Fact]
    public async Task Sums_and_limits_are_exact_past_2_to_the_53()
    {
        var c = NewCustomer();
        const long Big = (1L << 53) + 1; // 9007199254740993: not a double
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, Big), await Counter.RecordAsync(Event(c, "b1", Big)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 2 * Big), await Counter.RecordAsync(Event(c, "b2", Big)));
        Assert.Equal(2 * Big, await Counter.GetTotalAsync(Key(c)));

        // Limits that differ by one above 2^53.
        var limit = (2 * Big) + 1;
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, limit), await Counter.RecordAsync(Event(c, "b3", 1) with { HardLimit = limit }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.OverLimit, limit), await Counter.RecordAsync(Event(c, "b4", 1) with { HardLimit = limit }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, limit), await Counter.RecordAsync(Event(c, "b5", 0) with { HardLimit = limit }));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 2 * Big), await Counter.RecordAsync(Event(c, "b2", 1)));

        // Max and Last on 19-digit values and timestamps one tick apart.
        var max = Key(c, "max");
        await Counter.RecordAsync(Event(c, "m1", long.MaxValue - 1) with { Counter = max, Aggregation = MeterAggregation.Max });
        Assert.Equal(long.MaxValue, (await Counter.RecordAsync(Event(c, "m2", long.MaxValue) with { Counter = max, Aggregation = MeterAggregation.Max })).Total);
        Assert.Equal(UsageOutcome.OverLimit, (await Counter.RecordAsync(Event(c, "m3", 1) with { Counter = max, Aggregation = MeterAggregation.Max, HardLimit = long.MaxValue - 1 })).Outcome);
        var last = Key(c, "last");
        var t = new DateTimeOffset(2025, 3, 5, 0, 0, 0, TimeSpan.Zero);
        await Counter.RecordAsync(Event(c, "z", 1) with { Counter = last, Aggregation = MeterAggregation.Last, Timestamp = t });
        Assert.Equal(2, (await Counter.RecordAsync(Event(c, "a", 2) with { Counter = last, Aggregation = MeterAggregation.Last, Timestamp = t.AddTicks(1) })).Total);
        Assert.Equal(2, (await Counter.RecordAsync(Event(c, "zz", 3) with { Counter = last, Aggregation = MeterAggregation.Last, Timestamp = t })).Total);
    }

    [Fact]
    public async Task A_sum_past_long_MaxValue_throws_changes_nothing_and_leaves_the_key_free()
    {
        var c = NewCustomer();
        await Counter.RecordAsync(Event(c, "k1", long.MaxValue - 5));
        Assert.Equal(long.MaxValue, (await Counter.RecordAsync(Event(c, "k2", 5))).Total);

        await Assert.ThrowsAsync<OverflowException>(async () => await Counter.RecordAsync(Event(c, "k3", 1)));
        await Assert.ThrowsAsync<OverflowException>(async () => await Counter.RecordBatchAsync([Event(c, "k4", 0), Event(c, "k3", long.MaxValue), Event(c, "k5", 0)]));

        Assert.Equal(long.MaxValue, await Counter.GetTotalAsync(Key(c)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, long.MaxValue), await Counter.RecordAsync(Event(c, "k3", 0)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, long.MaxValue), await Counter.RecordAsync(Event(c, "k4", 0))); // applied before the overflow
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, long.MaxValue), await Counter.RecordAsync(Event(c, "k5", 0))); // never reached
        await Assert.ThrowsAsync<OverflowException>(async () => await Counter.RebuildAsync(Key(c), MeterAggregation.Sum, [Event(c, "k1", long.MaxValue), Event(c, "k2", 1)]));

        // One call carries every customer of a batch: the events before the overflowing one are applied, those after not.
        var other = NewCustomer();
        await Assert.ThrowsAsync<OverflowException>(async () => await Counter.RecordBatchAsync([Event(other, "o1", 1), Event(c, "k6", 1), Event(other, "o2", 1)]));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 1), await Counter.RecordAsync(Event(other, "o1", 1)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 2), await Counter.RecordAsync(Event(other, "o2", 1)));
    }

    [Fact]
    public async Task A_batch_grouped_by_customer_gives_the_results_of_its_order_and_an_overflow_sent_last_applies_nothing_after_it()
    {
        // Interleaved customers go to the script grouped by customer; results, duplicates and unique values are those of
        // the batch's order.
        var a = NewCustomer();
        var b = NewCustomer();
        UsageCounterEvent Unique(string c, string key, string value) =>
            Event(c, key, 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = value };
        var results = await Counter.RecordBatchAsync(
        [
            Unique(a, "k1", "v1"), Unique(b, "k1", "v1"), Event(a, "s1", 3), Unique(a, "k2", "v1"), Event(b, "s1", 4),
            Unique(a, "k3", "v2"), Unique(a, "k1", "v9"), Event(b, "s1", 7), Event(a, "s2", 2),
        ]);
        Assert.Equal(
        [
            new(UsageOutcome.Accepted, 1), new(UsageOutcome.Accepted, 1), new(UsageOutcome.Accepted, 3), new(UsageOutcome.Accepted, 1),
            new(UsageOutcome.Accepted, 4), new(UsageOutcome.Accepted, 2), new(UsageOutcome.Duplicate, 1), new(UsageOutcome.Duplicate, 4),
            new(UsageOutcome.Accepted, 5),
        ],
        results);
        Assert.Equal(2, await Counter.GetTotalAsync(Key(a, "users")));
        Assert.Equal(["v1", "v2"], ((object?[])(await Server.ExecuteAsync("SMEMBERS", $"billing:{{g{GroupOf(a)}}}:u:{PeriodSeconds}:{Tag(a)}users"))!).Cast<string>().Order(StringComparer.Ordinal));

        // The overflowing event is the last one sent (its customer's group comes after the other's): the events before it
        // in the batch are applied, the one after it is not.
        Assert.Equal(long.MaxValue, (await Counter.RecordAsync(Event(a, "max", long.MaxValue - 5))).Total);
        await Assert.ThrowsAsync<OverflowException>(async () => await Counter.RecordBatchAsync([Event(b, "o1", 1), Event(a, "over", 10), Event(b, "o2", 1)]));
        Assert.Equal(long.MaxValue, await Counter.GetTotalAsync(Key(a)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5), await Counter.RecordAsync(Event(b, "o1", 1)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 6), await Counter.RecordAsync(Event(b, "o2", 1)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, long.MaxValue), await Counter.RecordAsync(Event(a, "over", 0))); // still free
    }

    [Fact]
    public async Task A_batch_is_one_script_call_on_a_standalone_server_and_keeps_its_order()
    {
        string[] customers = [NewCustomer(), NewCustomer(), NewCustomer()];
        UsageCounterEvent[] events =
        [
            .. Enumerable.Range(0, 30).Select(i => Event(customers[i % 3], $"e{i / 2}", i) with { HardLimit = 100 }),
            Event(customers[0], "e0", 99), // a duplicate within the batch
            Event(customers[1], "other-limit", 5) with { HardLimit = 20 }, // a second profile of a counter
            Event(customers[2], "unique", 1) with { Counter = Key(customers[2], "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "u" },
        ];
        var before = await ScriptCallsAsync();

        var results = await Counter.RecordBatchAsync(events);

        Assert.Equal(1, await ScriptCallsAsync() - before);
        var expected = new InMemoryUsageCounter();
        Assert.Equal(await expected.RecordBatchAsync(events), results);
        foreach (var c in customers)
        {
            Assert.Equal(await expected.GetTotalAsync(Key(c)), await Counter.GetTotalAsync(Key(c)));
        }
    }

    [Fact]
    public async Task Concurrent_single_calls_share_script_calls_and_get_their_own_results()
    {
        var c = NewCustomer();
        var limit = Key(c, "limited");
        var before = await ScriptCallsAsync();
        var calls = Enumerable.Range(0, 2_000).Select(i => i % 4 == 3
            ? Counter.RecordAsync(Event(c, $"e{i - 3}", 7)).AsTask() // a duplicate of an event sent just before
            : Counter.RecordAsync(Event(c, $"e{i}", 1 + (i % 3)) with { Counter = i % 2 == 0 ? Key(c) : limit, HardLimit = i % 2 == 0 ? null : 500 }).AsTask()).ToArray();
        var results = await Task.WhenAll(calls);

        var scriptCalls = await ScriptCallsAsync() - before;
        Assert.InRange(scriptCalls, 1, 1_000); // coalesced: far fewer calls than events
        Assert.All(results.Where((_, i) => i % 4 == 3), r => Assert.Equal(UsageOutcome.Duplicate, r.Outcome));
        var accepted = results.Where((_, i) => i % 4 != 3).ToArray();
        Assert.Equal(
            Enumerable.Range(0, 2_000).Where(i => i % 4 != 3 && i % 2 == 0).Sum(i => 1 + (i % 3)),
            await Counter.GetTotalAsync(Key(c)));
        var limited = await Counter.GetTotalAsync(limit);
        Assert.InRange(limited, 498, 500); // raced up to the limit, never past it
        Assert.Equal(limited, Enumerable.Range(0, 2_000).Where(i => i % 4 != 3 && i % 2 == 1 && results[i].Outcome == UsageOutcome.Accepted).Sum(i => 1 + (i % 3)));
        Assert.All(results.Where((r, i) => i % 4 == 3), r => Assert.NotEqual(0, r.Total));
        Assert.Contains(accepted, r => r.Outcome == UsageOutcome.OverLimit);

        // Cancellation: calls canceled while they wait are not counted; the rest are.
        using var cts = new CancellationTokenSource();
        var d = NewCustomer();
        var waiting = Enumerable.Range(0, 500).Select(i => Counter.RecordAsync(Event(d, $"w{i}", 1), i % 2 == 0 ? cts.Token : default).AsTask()).ToArray();
        await cts.CancelAsync();
        var outcomes = await Task.WhenAll(waiting.Select(async t =>
        {
            try
            {
                return (await t).Outcome == UsageOutcome.Accepted ? 1 : 0;
            }
            catch (OperationCanceledException)
            {
                return 0;
            }
        }));
        Assert.Equal(outcomes.Sum(), await Counter.GetTotalAsync(Key(d)));
        Assert.True(outcomes.Where((_, i) => i % 2 == 1).All(o => o == 1));

        // Switched off: one script call per event.
        await using var plain = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = Server.ConfigurationString, CoalesceRecords = false });
        before = await ScriptCallsAsync();
        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => plain.RecordAsync(Event(d, $"p{i}", 1)).AsTask()));
        Assert.Equal(100, await ScriptCallsAsync() - before);
    }

    [Fact]
    public async Task Concurrent_batches_share_script_calls_and_each_gets_the_results_of_a_call_of_its_own()
    {
        string[] customers = [.. Enumerable.Range(0, 6).Select(_ => NewCustomer())];
        UsageCounterEvent Of(int batch, int i)
        {
            var c = customers[(batch + i) % customers.Length];
            var e = Event(c, $"b{batch}e{i}", 1 + ((batch + i) % 4));
            return i % 5 == 0 ? e with { Counter = Key(c, "limited"), HardLimit = 60 } : e;
        }

        // Each batch: 15 new events (every fifth on a limited counter), 5 repeats of the previous batch's and one of its own.
        var batches = Enumerable.Range(0, 60)
            .Select(b => (UsageCounterEvent[])[.. Enumerable.Range(0, 15).Select(i => Of(b, i)), .. Enumerable.Range(0, b > 0 ? 5 : 0).Select(i => Of(b - 1, i)), Of(b, 1)])
            .ToArray();
        var before = await ScriptCallsAsync();

        var results = await Task.WhenAll(batches.Select(b => Counter.RecordBatchAsync(b).AsTask()));

        Assert.InRange(await ScriptCallsAsync() - before, 1, 30); // coalesced: fewer calls than batches
        // Calls reach the server in the order the batches arrived: the results are those of recording them one by one.
        var expected = new InMemoryUsageCounter();
        for (var b = 0; b < batches.Length; b++)
        {
            Assert.Equal(await expected.RecordBatchAsync(batches[b]), results[b]);
        }

        Assert.Contains(results.SelectMany(r => r), r => r.Outcome == UsageOutcome.OverLimit);
        foreach (var c in customers)
        {
            Assert.Equal(await expected.GetTotalAsync(Key(c)), await Counter.GetTotalAsync(Key(c)));
            Assert.Equal(await expected.GetTotalAsync(Key(c, "limited")), await Counter.GetTotalAsync(Key(c, "limited")));
        }

        // An overflow stops its batch where a call of its own would: the events before it applied, those after it not. The
        // batches after it in the same call were not applied by that call and are sent again on their own.
        var full = NewCustomer();
        var other = NewCustomer();
        Assert.Equal(long.MaxValue - 5, (await Counter.RecordAsync(Event(full, "max", long.MaxValue - 5))).Total);
        var mixed = Enumerable.Range(0, 12)
            .Select(b => b == 6
                ? (UsageCounterEvent[])[Event(full, "x1", 1), Event(full, "over", 10), Event(full, "x2", 1)]
                : [Event(other, $"m{b}a", 1), Event(other, $"m{b}b", 2)])
            .ToArray();
        var calls = mixed.Select(b => Counter.RecordBatchAsync(b).AsTask()).ToArray();
        await Assert.ThrowsAsync<OverflowException>(() => calls[6]);
        var others = await Task.WhenAll(calls.Where((_, b) => b != 6));
        Assert.All(others.SelectMany(r => r), r => Assert.Equal(UsageOutcome.Accepted, r.Outcome));
        Assert.Equal(Enumerable.Range(1, 11).Select(k => 3L * k), others.Select(r => r[1].Total).Order());
        Assert.Equal(33, await Counter.GetTotalAsync(Key(other)));
        Assert.Equal(long.MaxValue - 4, await Counter.GetTotalAsync(Key(full)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, long.MaxValue - 3), await Counter.RecordAsync(Event(full, "x2", 1)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, long.MaxValue - 3), await Counter.RecordAsync(Event(full, "over", 0)));

        // Cancellation: batches canceled while they wait are not counted; the rest are, whole.
        using var cts = new CancellationTokenSource();
        var d = NewCustomer();
        var waiting = Enumerable.Range(0, 60).Select(i => Counter.RecordBatchAsync([Event(d, $"w{i}a", 1), Event(d, $"w{i}b", 1)], i % 2 == 0 ? cts.Token : default).AsTask()).ToArray();
        await cts.CancelAsync();
        var counted = await Task.WhenAll(waiting.Select(async t =>
        {
            try
            {
                return (await t).Count(r => r.Outcome == UsageOutcome.Accepted);
            }
            catch (OperationCanceledException)
            {
                return 0;
            }
        }));
        Assert.Equal(counted.Sum(), await Counter.GetTotalAsync(Key(d)));
        Assert.All(counted.Where((_, i) => i % 2 == 1), n => Assert.Equal(2, n));

        // Switched off: one script call per batch.
        await using var plain = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = Server.ConfigurationString, CoalesceRecords = false });
        before = await ScriptCallsAsync();
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => plain.RecordBatchAsync([Event(d, $"p{i}a", 1), Event(d, $"p{i}b", 1)]).AsTask()));
        Assert.Equal(20, await ScriptCallsAsync() - before);
    }

    [Fact]
    public async Task Per_slot_mode_sends_one_call_per_slot_of_the_customers_groups_with_the_same_results()
    {
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions
        {
            ConfigurationString = Server.ConfigurationString,
            BatchMode = RedisBatchMode.PerSlot,
        });
        string[] customers = [NewCustomer(), NewCustomer(), NewCustomer()];
        UsageCounterEvent[] events =
        [
            .. Enumerable.Range(0, 30).Select(i => Event(customers[i % 3], $"e{i / 2}", i) with { HardLimit = 100 }),
            Event(customers[0], "e0", 99),
        ];
        var before = await ScriptCallsAsync();

        var results = await counter.RecordBatchAsync(events);

        Assert.Equal(customers.Select(c => Crc16Slot($"g{GroupOf(c)}")).Distinct().Count(), await ScriptCallsAsync() - before);
        var expected = new InMemoryUsageCounter();
        Assert.Equal(await expected.RecordBatchAsync(events), results);
    }

    [Fact]
    public async Task Totals_around_10_to_the_15_and_2_to_the_53_match_the_in_memory_reference()
    {
        // Values below 10^15 are Lua numbers in the script, larger ones decimal text: every crossing must be exact.
        long[] quantities = [0, 1, 2, 999_999_999_999_998, 999_999_999_999_999, 1_000_000_000_000_000, 1_000_000_000_000_001, (1L << 53) - 1, 1L << 53, (1L << 53) + 1, 99_999_999_999_999_999];
        long[] limits = [999_999_999_999_999, 1_000_000_000_000_000, 1_000_000_000_000_001, 1L << 53, (1L << 53) + 1, 500_000_000_000_000_000, long.MaxValue];
        var random = new Random(1_000_000_007);
        var reference = new InMemoryUsageCounter();
        var customers = Enumerable.Range(0, 3).Select(_ => NewCustomer()).ToArray();
        var meters = new[] { MeterAggregation.Sum, MeterAggregation.Max, MeterAggregation.Last, MeterAggregation.Count };
        var sent = new List<UsageCounterEvent>();
        var next = 0;
        UsageCounterEvent NewEvent()
        {
            if (sent.Count > 0 && random.Next(6) == 0)
            {
                return sent[random.Next(sent.Count)]; // a duplicate: its original (large) total comes back
            }

            var c = customers[random.Next(customers.Length)];
            var aggregation = meters[random.Next(meters.Length)];
            var e = Event(c, "b" + (next++).ToString(CultureInfo.InvariantCulture), random.Next(8) == 0 ? quantities[^1] : quantities[random.Next(quantities.Length - 1)]) with
            {
                Counter = Key(c, "m_" + aggregation),
                Aggregation = aggregation,
                Timestamp = PeriodStart.AddTicks(random.Next(0, 3)),
                HardLimit = random.Next(3) == 0 ? limits[random.Next(limits.Length)] : null,
            };
            sent.Add(e);
            return e;
        }

        for (var step = 0; step < 60; step++)
        {
            var batch = Enumerable.Range(0, random.Next(1, 20)).Select(_ => NewEvent()).ToArray();
            if (batch.Length == 1)
            {
                Assert.Equal(await reference.RecordAsync(batch[0]), await Counter.RecordAsync(batch[0]));
            }
            else
            {
                Assert.Equal(await reference.RecordBatchAsync(batch), await Counter.RecordBatchAsync(batch));
            }
        }

        foreach (var c in customers)
        {
            foreach (var aggregation in meters)
            {
                Assert.Equal(await reference.GetTotalAsync(Key(c, "m_" + aggregation)), await Counter.GetTotalAsync(Key(c, "m_" + aggregation)));
            }
        }

        Assert.Contains(sent, e => e.Quantity == quantities[^1]);
    }

    [Fact]
    public async Task Large_batches_and_rebuilds_are_split_into_calls_of_the_configured_size()
    {
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions
        {
            ConfigurationString = Server.ConfigurationString,
            KeyPrefix = "split",
            MaxEventsPerScriptCall = 1_000,
        });
        var c = NewCustomer();
        var users = Key(c, "users");
        var events = Enumerable.Range(0, 2_500)
            .Select(i => Event(c, $"e{i % 2_400}", 1) with { Counter = users, Aggregation = MeterAggregation.UniqueCount, UniqueValue = $"u{i % 1_700}" })
            .ToArray();
        var expected = new InMemoryUsageCounter();

        var before = await ScriptCallsAsync();
        Assert.Equal(await expected.RecordBatchAsync(events), await counter.RecordBatchAsync(events));
        Assert.Equal(3, await ScriptCallsAsync() - before);
        Assert.Equal(1_700, await counter.GetTotalAsync(users));

        // A rebuild of 2,400 distinct events in three calls: the first resets, the others add.
        await counter.RecordAsync(Event(c, "lost", 1) with { Counter = users, Aggregation = MeterAggregation.UniqueCount, UniqueValue = "lost" });
        before = await ScriptCallsAsync();
        Assert.Equal(await expected.RebuildAsync(users, MeterAggregation.UniqueCount, events), await counter.RebuildAsync(users, MeterAggregation.UniqueCount, events));
        Assert.Equal(3, await ScriptCallsAsync() - before);
        Assert.Equal(1_700, await counter.GetTotalAsync(users));
        Assert.Equal(await expected.RecordBatchAsync(events), await counter.RecordBatchAsync(events)); // every key taken, with its running total
        Assert.Equal(UsageOutcome.Duplicate, (await counter.RecordAsync(Event(c, "lost", 1) with { Counter = users, Aggregation = MeterAggregation.UniqueCount, UniqueValue = "lost" })).Outcome); // keys of lost events stay taken, as in memory
    }

    [Fact]
    public async Task Random_workloads_give_the_same_results_as_the_in_memory_reference()
    {
        var random = new Random(20251121);
        var reference = new InMemoryUsageCounter();
        string[] keyStarts = ["a", "B", "é", "\uE000", "\uFFFF", "\U0001F600", "z", "\uD800"]; // 😀 sorts before U+E000 in UTF-16, after it in UTF-8
        var customers = Enumerable.Range(0, 4).Select(_ => NewCustomer()).ToArray();
        var meters = Enum.GetValues<MeterAggregation>().Select(a => (Name: "m_" + a, Aggregation: a)).ToArray();
        var accepted = new Dictionary<UsageCounterKey, List<UsageCounterEvent>>();
        var sent = new List<UsageCounterEvent>();
        var next = 0;

        UsageCounterEvent NewEvent()
        {
            var c = customers[random.Next(customers.Length)];
            var (meter, aggregation) = meters[random.Next(meters.Length)];
            if (sent.Count > 0 && random.Next(5) == 0)
            {
                return sent[random.Next(sent.Count)] with { Quantity = random.Next(0, 100) }; // a duplicate
            }

            return Event(c, keyStarts[random.Next(keyStarts.Length)] + (next++).ToString(CultureInfo.InvariantCulture), random.Next(0, 100)) with
            {
                Counter = Key(c, meter),
                Aggregation = aggregation,
                Timestamp = PeriodStart.AddMinutes(random.Next(0, 3)), // many ties
                UniqueValue = "u" + random.Next(0, 8).ToString(CultureInfo.InvariantCulture),
                HardLimit = random.Next(4) == 0 ? random.Next(0, 400) : null,
                DedupWindow = random.Next(20) == 0 ? TimeSpan.Zero : TimeSpan.FromDays(35),
            };
        }

        void Track(UsageCounterEvent e, UsageCounterResult r)
        {
            sent.Add(e);
            if (r.Outcome == UsageOutcome.Accepted)
            {
                if (!accepted.TryGetValue(e.Counter, out var list))
                {
                    accepted.Add(e.Counter, list = []);
                }

                list.Add(e);
            }
        }

        for (var step = 0; step < 400; step++)
        {
            switch (random.Next(10))
            {
                case < 5:
                    var single = NewEvent();
                    var result = await Counter.RecordAsync(single);
                    Assert.Equal(await reference.RecordAsync(single), result);
                    Track(single, result);
                    break;
                case < 9:
                    var batch = Enumerable.Range(0, random.Next(1, 30)).Select(_ => NewEvent()).ToArray();
                    var results = await Counter.RecordBatchAsync(batch);
                    Assert.Equal(await reference.RecordBatchAsync(batch), results);
                    for (var i = 0; i < batch.Length; i++)
                    {
                        Track(batch[i], results[i]);
                    }

                    break;
                default:
                    if (accepted.Count == 0)
                    {
                        break;
                    }

                    var (key, events) = accepted.ElementAt(random.Next(accepted.Count));
                    var aggregation = meters.Single(m => m.Name == key.MeterKey).Aggregation;
                    var kept = events.Where(_ => random.Next(4) != 0).ToList(); // the durable copy may have fewer (tests replacement)
                    accepted[key] = kept;
                    Assert.Equal(await reference.RebuildAsync(key, aggregation, kept), await Counter.RebuildAsync(key, aggregation, kept));
                    break;
            }
        }

        foreach (var c in customers)
        {
            foreach (var (meter, _) in meters)
            {
                Assert.Equal(await reference.GetTotalAsync(Key(c, meter)), await Counter.GetTotalAsync(Key(c, meter)));
            }
        }
    }

    [Fact]
    public async Task Period_starts_in_other_offsets_are_the_same_counter()
    {
        var c = NewCustomer();
        var berlin = Key(c) with { PeriodStart = PeriodStart.ToOffset(TimeSpan.FromHours(1)) };
        await Counter.RecordAsync(Event(c, "k1", 2) with { Counter = berlin });
        await Counter.RecordBatchAsync([Event(c, "k2", 3), Event(c, "k3", 4) with { Counter = berlin }]);
        Assert.Equal(9, await Counter.GetTotalAsync(Key(c)));
        Assert.Equal(9, await Counter.RebuildAsync(berlin, MeterAggregation.Sum, [Event(c, "k1", 2), Event(c, "k2", 3) with { Counter = berlin }, Event(c, "k3", 4)]));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Counter.RebuildAsync(Key(c), MeterAggregation.Sum, [Event(c, "x", 1) with { Counter = Key(c, "other") }]));
    }

    [Fact]
    public async Task Malformed_events_are_rejected_before_anything_is_written()
    {
        var c = NewCustomer();
        await Assert.ThrowsAsync<ArgumentException>(async () => await Counter.RecordAsync(Event(c, "", 1)));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Counter.RecordBatchAsync([Event(c, "ok", 1), Event(c, "bad", -1)]));
        Assert.Equal(0, await Counter.GetTotalAsync(Key(c)));
        Assert.Equal(UsageOutcome.Accepted, (await Counter.RecordAsync(Event(c, "ok", 1))).Outcome);
    }

    /// <summary>A counter on the test server with its own key prefix (so its group hashes hold only the test's keys).</summary>
    private Task<RedisUsageCounter> PrefixCounterAsync(string prefix, int groups = RedisUsageCounterOptions.DefaultCustomerGroups) =>
        RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions
        {
            ConfigurationString = Server.ConfigurationString,
            KeyPrefix = prefix,
            CustomerGroups = groups,
        });

    /// <summary>The customer's group with the default number of groups.</summary>
    internal static int GroupOf(string customer) => RedisKeys.GroupOf(customer, RedisUsageCounterOptions.DefaultCustomerGroups);

    /// <summary>What the customer's hash fields start with: the UTF-8 length of its id, ':' and the id.</summary>
    internal static string Tag(string customer) => string.Create(CultureInfo.InvariantCulture, $"{System.Text.Encoding.UTF8.GetByteCount(customer)}:{customer}");

    /// <summary>The UTC day (days since the Unix epoch, floor) of an instant on or after 1970: what counter hashes are named by.</summary>
    internal static long DayOf(DateTimeOffset instant) => (instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerDay;

    /// <summary>A counter's field in its day hash: the exact period start (Unix seconds), ':', the customer's tag and the meter.</summary>
    internal static string Field(string customer, string meter = "api_calls", DateTimeOffset? periodStart = null) =>
        string.Create(CultureInfo.InvariantCulture, $"{(periodStart ?? PeriodStart).ToUnixTimeSeconds()}:{Tag(customer)}{meter}");

    private async Task<string[]> HashFieldsAsync(string hash) =>
        [.. ((object?[])(await Server.ExecuteAsync("HKEYS", hash))!).Cast<string>()];

    /// <summary>How long (ms) the counter's own recorded expiry is away by the server's clock.</summary>
    private async Task<long> CounterLeftAsync(string hash, string customer, string meter = "api_calls")
    {
        var value = (string)(await Server.ExecuteAsync("HGET", hash, Field(customer, meter)))!;
        return long.Parse(value.Split(':')[1], CultureInfo.InvariantCulture) - await ServerMillisecondsAsync();
    }

    private async Task<string[]> KeysAsync(string pattern) =>
        [.. ((object?[])(await Server.ExecuteAsync("KEYS", pattern))!).Cast<string>()];

    private async Task<long> PttlAsync(string key) => (long)(await Server.ExecuteAsync("PTTL", key))!;

    /// <summary>The key's expiry as Unix ms (PEXPIRETIME).</summary>
    private async Task<long> ExpireTimeAsync(string key) => (long)(await Server.ExecuteAsync("PEXPIRETIME", key))!;

    private async Task<long> ServerMillisecondsAsync()
    {
        var time = (object?[])(await Server.ExecuteAsync("TIME"))!;
        return (long.Parse((string)time[0]!, CultureInfo.InvariantCulture) * 1000) + (long.Parse((string)time[1]!, CultureInfo.InvariantCulture) / 1000);
    }

    /// <summary>The current generation of idempotency hashes with the default options (35 days).</summary>
    private async Task<long> GenerationAsync() => await ServerMillisecondsAsync() / (long)TimeSpan.FromDays(35).TotalMilliseconds;

    /// <summary>An idempotency key's entry in any of the customer's group's hashes: the total it stored and how long it is held (ms).</summary>
    private async Task<(string Total, long Left)?> IdempotencyEntryAsync(string customer, string key, string prefix = "billing")
    {
        var now = await ServerMillisecondsAsync();
        foreach (var hash in await KeysAsync($"{prefix}:{{g{GroupOf(customer)}}}:i:*"))
        {
            var value = (string?)await Server.ExecuteAsync("HGET", hash, Tag(customer) + key);
            if (value is not null)
            {
                var parts = value.Split(':');
                return (parts[0], long.Parse(parts[1], CultureInfo.InvariantCulture) - now);
            }
        }

        return null;
    }

    private async Task<long> ScriptCallsAsync() => await CommandCallsAsync("eval") + await CommandCallsAsync("evalsha");

    /// <summary>How many times the server ran the command (INFO commandstats; scripts' calls included).</summary>
    private async Task<long> CommandCallsAsync(string command)
    {
        var stats = (string)(await Server.ExecuteAsync("INFO", "commandstats"))!;
        var line = stats.Split('\n').FirstOrDefault(l => l.StartsWith($"cmdstat_{command}:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split("calls=")[1].Split(',')[0], CultureInfo.InvariantCulture);
    }

    /// <summary>A time to live of at least <paramref name="expected"/> (less the test's own time, up to a minute) and at most
    /// <paramref name="expected"/> plus the slack the scripts add so that an expiry moves once per slack rather than per ms
    /// (1/64 of it, at most a minute).</summary>
    private static void AssertTtl(TimeSpan expected, long pttl) =>
        Assert.InRange(pttl, (long)(expected - TimeSpan.FromMinutes(1)).TotalMilliseconds, (long)(expected + TimeSpan.FromMilliseconds(Math.Min(60_000, (long)expected.TotalMilliseconds / 64))).TotalMilliseconds);

    /// <summary>The text Redis Cluster hashes: between the first '{' and the first '}' after it, if not empty.</summary>
    internal static string HashTag(string key)
    {
        var open = key.IndexOf('{', StringComparison.Ordinal);
        var close = open < 0 ? -1 : key.IndexOf('}', open + 1);
        return close > open + 1 ? key[(open + 1)..close] : key;
    }

    /// <summary>CRC16-CCITT (XMODEM) mod 16384: the Redis Cluster key slot of <paramref name="text"/>.</summary>
    internal static int Crc16Slot(string text)
    {
        var crc = 0;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(text))
        {
            crc ^= b << 8;
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 0x8000) != 0 ? ((crc << 1) ^ 0x1021) & 0xFFFF : (crc << 1) & 0xFFFF;
            }
        }

        return crc % 16384;
    }

    internal static string NewCustomer() => "cus_" + Guid.NewGuid().ToString("N")[..16];

    internal static UsageCounterKey Key(string customer, string meter = "api_calls") => new(customer, meter, PeriodStart);

    internal static UsageCounterEvent Event(string customer, string key, long quantity) => new()
    {
        Counter = Key(customer),
        Aggregation = MeterAggregation.Sum,
        Quantity = quantity,
        IdempotencyKey = key,
        Timestamp = Now.AddMinutes(-1),
        Now = Now,
        DedupWindow = TimeSpan.FromDays(35),
        CounterRetention = TimeSpan.FromDays(70),
    };
}
