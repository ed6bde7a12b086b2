using System.Globalization;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.InMemory;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.Data.Sqlite;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// The SQLite usage event log in front of usage_events (migration 9): appends go to the log and are moved in large
/// transactions; duplicates, reads, restarts, the durable counter and a second process see every event exactly once.
/// </summary>
public sealed class SqliteUsageLogTests(SqliteFiles sqlite) : IClassFixture<SqliteFiles>
{
    /// <summary>A new SQLite database and a store whose log is never moved in the background (moves only when a test asks).</summary>
    private async Task<(string ConnectionString, EntityFrameworkUsageEventStore Store)> NewStoreWithoutMovesAsync()
    {
        var cs = await UsageDatabases.NewSqliteAsync(sqlite);
        var store = EntityFrameworkUsageEventStore.ForSqlite(cs);
        store.Log!.MoveThreshold = int.MaxValue;
        return (cs, store);
    }

    private static readonly DateTimeOffset March = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private static readonly MeterAggregation[] Aggregations = [MeterAggregation.Sum, MeterAggregation.Count, MeterAggregation.Max, MeterAggregation.Last];

    /// <summary>
    /// Events appended and still in the log survive a restart (a new process state on the same file): every event
    /// reads back, the log is emptied into usage_events, and their keys are still refused.
    /// </summary>
    [Fact]
    public async Task Appends_in_the_log_survive_a_restart_and_keep_their_keys()
    {
        var (cs, store) = await NewStoreWithoutMovesAsync();
        var key = new UsageCounterKey("cus_1", "api_calls", March);
        var events = Enumerable.Range(0, 50).Select(i => Stored(key, $"e{i:D3}", i + 1)).ToList();
        Assert.All(await store.AppendAsync(events), Assert.True);
        Assert.Equal((50L, 0L), await CountRowsAsync(cs));

        await SqliteUsageLog.ForgetAsync(cs); // the process ends with the events in the log
        var restarted = EntityFrameworkUsageEventStore.ForSqlite(cs);
        Assert.Equal(50 * 51 / 2, await restarted.AggregateAsync(key, MeterAggregation.Sum));
        Assert.Equal(events.Select(e => e.IdempotencyKey), (await restarted.ListAsync(key)).Select(e => e.IdempotencyKey));
        Assert.Equal((0L, 50L), await CountRowsAsync(cs));
        Assert.All(await restarted.AppendAsync(events.Select(e => e with { Quantity = 99 }).ToList()), Assert.False);
        Assert.Equal(50 * 51 / 2, await restarted.AggregateAsync(key, MeterAggregation.Sum));
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>
    /// The log's append (a statement prepared once, bound through SQLite's API) carries every value exactly: quotes,
    /// backslashes, non-ASCII text, NUL characters, the extremes of 64-bit numbers, nulls. Each event reads back as it
    /// was appended, from the log and after the move into usage_events; a lone surrogate is stored as the provider
    /// stores it.
    /// </summary>
    [Fact]
    public async Task The_log_append_stores_every_value_exactly()
    {
        var (cs, store) = await NewStoreWithoutMovesAsync();
        var key = new UsageCounterKey("cus_\"q\"\\x", "api_calls", March);
        var events = new List<StoredUsageEvent>
        {
            Stored(key, "plain", 1),
            Stored(key, "max", 5) with { Quantity = long.MaxValue, AcceptanceToken = long.MinValue, SubscriptionId = "sub_é🙂", UniqueValue = "line\nbreak\ttab" },
            Stored(key, "zero", 0) with { AcceptanceToken = long.MaxValue, Properties = new Dictionary<string, string> { ["k\"ey"] = "v\\al</script>", ["ü"] = "日本" } },
        };
        Assert.All(await store.AppendAsync(events), Assert.True);
        var odd = new List<StoredUsageEvent>
        {
            Stored(key, "nul", 2) with { Properties = new Dictionary<string, string> { ["p"] = "a\0b" }, UniqueValue = "x\0y" },
            Stored(key, "after-nul", 3),
        };
        Assert.All(await store.AppendAsync(odd), Assert.True);
        Assert.Equal((5L, 0L), await CountRowsAsync(cs));

        foreach (var e in events.Concat(odd))
        {
            AssertSame(e, await store.FindAsync(key.CustomerId, e.IdempotencyKey));
        }

        await SqliteUsageLog.ForgetAsync(cs);
        var restarted = EntityFrameworkUsageEventStore.ForSqlite(cs);
        _ = await restarted.ListAsync(key); // a read moves the log first
        Assert.Equal((0L, 5L), await CountRowsAsync(cs));
        foreach (var e in events.Concat(odd))
        {
            AssertSame(e, await restarted.FindAsync(key.CustomerId, e.IdempotencyKey));
        }

        Assert.Equal([true, false], await restarted.AppendAsync([Stored(key, "lone\ud800", 4), Stored(key, "plain", 9)]));
        Assert.Equal(4, (await restarted.FindAsync(key.CustomerId, "lone\ud800") ?? (await restarted.FindAsync(key.CustomerId, "lone\ufffd")))!.Quantity);
        await SqliteUsageLog.ForgetAsync(cs);

        static void AssertSame(StoredUsageEvent expected, StoredUsageEvent? actual)
        {
            Assert.NotNull(actual);
            Assert.Equal(expected.Quantity, actual.Quantity);
            Assert.Equal(expected.AcceptanceToken, actual.AcceptanceToken);
            Assert.Equal(expected.SubscriptionId, actual.SubscriptionId);
            Assert.Equal(expected.UniqueValue, actual.UniqueValue);
            Assert.Equal(expected.Timestamp, actual.Timestamp);
            Assert.Equal(expected.ReceivedAt, actual.ReceivedAt);
            Assert.Equal(expected.Counter, actual.Counter);
            Assert.Equal(expected.Properties.OrderBy(p => p.Key, StringComparer.Ordinal), actual.Properties.OrderBy(p => p.Key, StringComparer.Ordinal));
        }
    }

    /// <summary>A restart that appends first: the leftover events are moved before the new ones are checked.</summary>
    [Fact]
    public async Task After_a_restart_the_first_append_moves_the_leftovers_before_checking_keys()
    {
        var (cs, store) = await NewStoreWithoutMovesAsync();
        var key = new UsageCounterKey("cus_1", "api_calls", March);
        Assert.Equal([true, true], await store.AppendAsync([Stored(key, "a", 1), Stored(key, "b", 2)]));
        await SqliteUsageLog.ForgetAsync(cs);

        var restarted = EntityFrameworkUsageEventStore.ForSqlite(cs);
        Assert.Equal([false, true, false], await restarted.AppendAsync([Stored(key, "a", 5), Stored(key, "c", 3), Stored(key, "b", 5)]));
        Assert.Equal((1L, 2L), await CountRowsAsync(cs));
        Assert.Equal(6, await restarted.AggregateAsync(key, MeterAggregation.Sum));
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>A duplicate of a key in the log and of a key moved into usage_events is not stored; Find answers both.</summary>
    [Fact]
    public async Task Duplicates_of_pending_and_of_moved_keys_are_not_stored()
    {
        var (cs, store) = await NewStoreWithoutMovesAsync();
        var key = new UsageCounterKey("cus_1", "api_calls", March);
        var original = Stored(key, "e1", 4) with { SubscriptionId = "sub_1", UniqueValue = "u", Properties = new Dictionary<string, string> { ["region"] = "eu" }, AcceptanceToken = 77 };
        Assert.Equal([true], await store.AppendAsync([original]));
        Assert.Equal([false], await store.AppendAsync([Stored(key, "e1", 9)]));
        Assert.Equal([false], await store.AppendAsync([Stored(key with { MeterKey = "other" }, "e1", 9)]));
        var pending = await store.FindAsync("cus_1", "e1");
        Assert.Equal((1L, 0L), await CountRowsAsync(cs));

        await store.MoveLogAsync();
        Assert.Equal((0L, 1L), await CountRowsAsync(cs));
        Assert.Equal([false], await store.AppendAsync([Stored(key, "e1", 9)]));
        var moved = await store.FindAsync("cus_1", "e1");
        foreach (var found in new[] { pending, moved })
        {
            Assert.NotNull(found);
            Assert.Equal((key, "sub_1", 4L, "u", 77L), (found.Counter, found.SubscriptionId, found.Quantity, found.UniqueValue, found.AcceptanceToken));
            Assert.Equal((original.Timestamp, original.ReceivedAt), (found.Timestamp, found.ReceivedAt));
            Assert.Equal("eu", found.Properties["region"]);
        }

        Assert.Equal(4, await store.AggregateAsync(key, MeterAggregation.Sum));
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>Reads right after appends see every event, with the events still in the log before the read.</summary>
    [Fact]
    public async Task Reads_right_after_appends_see_every_event()
    {
        var (cs, store) = await NewStoreWithoutMovesAsync();
        var a = new UsageCounterKey("cus_a", "api_calls", March);
        var b = new UsageCounterKey("cus_b", "api_calls", March);
        var april = new UsageCounterKey("cus_a", "api_calls", March.AddMonths(1));
        await store.AppendAsync([Stored(a, "1", 3), Stored(b, "2", 4), Stored(april, "3", 5)]);

        // Find answers from the log without moving it; a read of another counter does not move it either.
        Assert.Equal(4, (await store.FindAsync("cus_b", "2"))!.Quantity);
        Assert.Equal(0, await store.AggregateAsync(new UsageCounterKey("cus_c", "api_calls", March), MeterAggregation.Sum));
        Assert.Equal((3L, 0L), await CountRowsAsync(cs));

        Assert.Equal(3, await store.AggregateAsync(a, MeterAggregation.Sum));
        await store.AppendAsync([Stored(a, "4", 6)]);
        Assert.Equal([3L, 6L], (await store.ListAsync(a)).Select(e => e.Quantity));
        await store.AppendAsync([Stored(b, "5", 1)]);
        Assert.Equal([a, b], await store.ListCountersAsync(March));
        Assert.Equal(5, await store.AggregateAsync(b, MeterAggregation.Sum));
        Assert.Equal(5, await store.AggregateAsync(april, MeterAggregation.Max));
        Assert.Equal((0L, 5L), await CountRowsAsync(cs));
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>
    /// Past the threshold a background task moves the log in chunks while appends go on; every event ends in
    /// usage_events exactly once.
    /// </summary>
    [Fact]
    public async Task The_log_is_moved_in_the_background_past_the_threshold()
    {
        var cs = await UsageDatabases.NewSqliteAsync(sqlite);
        var store = EntityFrameworkUsageEventStore.ForSqlite(cs);
        store.Log!.MoveThreshold = 40;
        store.Log.MoveChunk = 7;
        var counters = Enumerable.Range(0, 5).Select(c => new UsageCounterKey($"cus_{c}", "api_calls", March)).ToArray();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                var stored = await store.AppendAsync([Stored(counters[(i + w) % 5], $"w{w}_{i}", 1), Stored(counters[(i + w) % 5] with { MeterKey = "other" }, $"w{w}_{i}", 1)]);
                Assert.Equal([true, false], stored);
            }
        })).ToArray();
        await Task.WhenAll(writers);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (store.Log.PendingCount >= 40 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        var (log, events) = await CountRowsAsync(cs);
        Assert.True(events > 0 && log < 40, $"log {log}, usage_events {events}");
        Assert.Equal(200L, log + events);
        long total = 0;
        foreach (var counter in counters)
        {
            total += await store.AggregateAsync(counter, MeterAggregation.Count);
        }

        Assert.Equal(200, total);
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>
    /// The durable counter on the same file sees the events in the log: a key appended by the store is a duplicate
    /// for the counter, and an event the counter recorded is completed by the store's append, not logged twice.
    /// </summary>
    [Fact]
    public async Task The_durable_counter_sees_the_events_in_the_log()
    {
        var cs = await UsageDatabases.NewSqliteAsync(sqlite);
        var store = EntityFrameworkUsageEventStore.ForSqlite(cs);
        var counter = EntityFrameworkUsageCounter.ForSqlite(cs);
        store.Log!.MoveThreshold = int.MaxValue;
        var key = new UsageCounterKey("cus_1", "users", March);
        Assert.Equal([true], await store.AppendAsync([Stored(key, "e1", 1) with { UniqueValue = "ada" }]));
        Assert.Equal(UsageOutcome.Duplicate, (await counter.RecordAsync(Counted(key, "e1", "ada"))).Outcome);
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 1), await counter.RecordAsync(Counted(key, "e2", "bob")));
        Assert.Equal([true], await store.AppendAsync([Stored(key, "e2", 1) with { UniqueValue = "bob", SubscriptionId = "sub_1" }]));
        Assert.Equal([false], await store.AppendAsync([Stored(key, "e2", 1) with { UniqueValue = "bob" }]));
        Assert.Equal((0L, 2L), await CountRowsAsync(cs));
        Assert.Equal("sub_1", (await store.FindAsync("cus_1", "e2"))!.SubscriptionId);
        Assert.Equal(2, await store.AggregateAsync(key, MeterAggregation.UniqueCount));
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>
    /// A process that does not own the log (another process holds its lock file) writes usage_events directly, and
    /// first moves the rows the owner logged, so keys stay unique across both.
    /// </summary>
    [Fact]
    public async Task A_process_without_the_log_moves_it_and_writes_directly()
    {
        var (cs, owner) = await NewStoreWithoutMovesAsync();
        var key = new UsageCounterKey("cus_1", "api_calls", March);
        Assert.Equal([true, true], await owner.AppendAsync([Stored(key, "a", 1), Stored(key, "b", 2)]));
        await SqliteUsageLog.ForgetAsync(cs); // the owner's process ends...
        var file = new SqliteConnectionStringBuilder(cs).DataSource;
        await using (new FileStream(SqliteUsageLog.LockPathOf(file), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            // ...and another process took the log: this one writes directly.
            var other = EntityFrameworkUsageEventStore.ForSqlite(cs);
            Assert.Equal(3, await other.AggregateAsync(key, MeterAggregation.Sum));
            Assert.Equal((0L, 2L), await CountRowsAsync(cs));
            await InsertIntoLogAsync(cs, Stored(key, "c", 4)); // the owner logs one more
            Assert.Equal([false, true, false], await other.AppendAsync([Stored(key, "a", 9), Stored(key, "d", 8), Stored(key, "c", 9)]));
            Assert.Equal((0L, 4L), await CountRowsAsync(cs));
            Assert.False(other.Log!.IsActive);
            Assert.Equal(15, await other.AggregateAsync(key, MeterAggregation.Sum));
            await SqliteUsageLog.ForgetAsync(cs);
        }

        var next = EntityFrameworkUsageEventStore.ForSqlite(cs);
        Assert.Equal([true], await next.AppendAsync([Stored(key, "e", 16)]));
        Assert.True(next.Log!.IsActive);
        Assert.Equal((1L, 4L), await CountRowsAsync(cs));
        await SqliteUsageLog.ForgetAsync(cs);
    }

    /// <summary>
    /// Random interleavings of appends (with duplicates), moves, restarts and reads on one file: every append's answers
    /// and every aggregate equal those of the in-memory reference store.
    /// </summary>
    [Fact]
    public void Random_interleavings_match_the_in_memory_store()
    {
        UsageCounterKey[] counters = [new("cus_a", "m1", March), new("cus_a", "m2", March), new("cus_b", "m1", March), new("cus_b", "m2", March)];
        var stored = from counter in Gen.Elements(counters)
                     from key in Gen.Choose(0, 11)
                     from quantity in Gen.Choose(0, 9)
                     select (Counter: counter, Key: key, Quantity: quantity);
        var operation = Gen.Frequency(
            (6, Gen.Choose(1, 6).SelectMany(n => Gen.ArrayOf(stored, n)).Select(batch => (Kind: 0, Batch: batch))),
            (1, Gen.Constant((Kind: 1, Batch: Array.Empty<(UsageCounterKey, int, int)>()))),
            (1, Gen.Constant((Kind: 2, Batch: Array.Empty<(UsageCounterKey, int, int)>()))),
            (2, Gen.Constant((Kind: 3, Batch: Array.Empty<(UsageCounterKey, int, int)>()))));
        var operations = from count in Gen.Choose(1, 25)
                         from ops in Gen.ArrayOf(operation, count)
                         from threshold in Gen.Choose(2, 30)
                         from chunk in Gen.Choose(1, 10)
                         select (Ops: ops, Threshold: threshold, Chunk: chunk);

        Prop.ForAll(operations.ToArbitrary(), (Action<((int Kind, (UsageCounterKey Counter, int Key, int Quantity)[] Batch)[] Ops, int Threshold, int Chunk)>)(run =>
            RunAsync(run.Ops, run.Threshold, run.Chunk).GetAwaiter().GetResult()))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(40));

        async Task RunAsync((int Kind, (UsageCounterKey Counter, int Key, int Quantity)[] Batch)[] ops, int threshold, int chunk)
        {
            var cs = await UsageDatabases.NewSqliteAsync(sqlite);
            var model = new InMemoryUsageEventStore();
            EntityFrameworkUsageEventStore Open()
            {
                var s = EntityFrameworkUsageEventStore.ForSqlite(cs);
                s.Log!.MoveThreshold = threshold;
                s.Log.MoveChunk = chunk;
                return s;
            }

            var store = Open();
            try
            {
                foreach (var (kind, batch) in ops)
                {
                    switch (kind)
                    {
                        case 0:
                            var events = batch.Select(b => Stored(b.Counter, string.Create(CultureInfo.InvariantCulture, $"k{b.Key}"), b.Quantity)).ToList();
                            Assert.Equal(await model.AppendAsync(events), await store.AppendAsync(events));
                            break;
                        case 1:
                            await store.MoveLogAsync();
                            break;
                        case 2:
                            await SqliteUsageLog.ForgetAsync(cs);
                            store = Open();
                            break;
                        default:
                            foreach (var counter in counters)
                            {
                                foreach (var aggregation in Aggregations)
                                {
                                    Assert.Equal(await model.AggregateAsync(counter, aggregation), await store.AggregateAsync(counter, aggregation));
                                }
                            }

                            break;
                    }
                }

                foreach (var counter in counters)
                {
                    Assert.Equal((await model.ListAsync(counter)).Select(e => (e.IdempotencyKey, e.Quantity)), (await store.ListAsync(counter)).Select(e => (e.IdempotencyKey, e.Quantity)));
                }

                var (log, rows) = await CountRowsAsync(cs);
                long expected = 0;
                foreach (var counter in counters)
                {
                    expected += (await model.ListAsync(counter)).Count;
                }

                Assert.Equal((0L, expected), (log, rows));
            }
            finally
            {
                await SqliteUsageLog.ForgetAsync(cs);
            }
        }
    }

    private static StoredUsageEvent Stored(UsageCounterKey counter, string key, long quantity) => new()
    {
        Counter = counter,
        IdempotencyKey = key,
        Quantity = quantity,
        Timestamp = Now.AddSeconds(quantity),
        ReceivedAt = Now,
    };

    private static UsageCounterEvent Counted(UsageCounterKey counter, string key, string uniqueValue) => new()
    {
        Counter = counter,
        Aggregation = MeterAggregation.UniqueCount,
        Quantity = 1,
        IdempotencyKey = key,
        Timestamp = Now,
        UniqueValue = uniqueValue,
        Now = Now,
        DedupWindow = TimeSpan.FromDays(1),
        CounterRetention = TimeSpan.FromDays(60),
    };

    /// <summary>The rows of usage_event_log and of usage_events.</summary>
    private static async Task<(long Log, long Events)> CountRowsAsync(string cs)
    {
        await using var connection = new SqliteConnection(cs);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT (SELECT COUNT(*) FROM usage_event_log), (SELECT COUNT(*) FROM usage_events)";
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>Appends a row to the log as the owning process would.</summary>
    private static async Task InsertIntoLogAsync(string cs, StoredUsageEvent e)
    {
        await using var connection = new SqliteConnection(cs);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"INSERT INTO usage_event_log ({SqliteUsageLog.Columns}) VALUES (@c, @k, @m, @p, NULL, @q, @t, NULL, '{{}}', @r, NULL)";
        command.Parameters.AddWithValue("@c", e.Counter.CustomerId);
        command.Parameters.AddWithValue("@k", e.IdempotencyKey);
        command.Parameters.AddWithValue("@m", e.Counter.MeterKey);
        command.Parameters.AddWithValue("@p", e.Counter.PeriodStart.UtcTicks);
        command.Parameters.AddWithValue("@q", e.Quantity);
        command.Parameters.AddWithValue("@t", e.Timestamp.UtcTicks);
        command.Parameters.AddWithValue("@r", e.ReceivedAt.UtcTicks);
        await command.ExecuteNonQueryAsync();
    }
}
