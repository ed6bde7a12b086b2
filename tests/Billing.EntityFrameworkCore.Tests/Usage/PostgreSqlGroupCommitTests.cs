using System.Collections.Concurrent;
using System.Globalization;
using Billing.EntityFrameworkCore.Usage;
using Billing.Usage;
using Npgsql;

using static Billing.EntityFrameworkCore.Tests.Support.GroupCommitEvents;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// The group commit of <see cref="EntityFrameworkUsageEventStore"/> on a real PostgreSQL: concurrent appends share
/// statements and keep their own answers (a key appended by several concurrent calls is stored and reported once), a
/// statement rejected for one call's value is run again call by call (only that call fails), and any other failure of a
/// statement fails exactly the calls in it.
/// </summary>
/// <remarks>
/// Where a test needs calls to meet in one statement, another transaction holds a lock on the events table
/// (<c>LOCK TABLE … IN EXCLUSIVE MODE</c>, which blocks inserts only), so the statements in flight (up to
/// <see cref="EntityFrameworkUsageEventStore.PostgreSqlGroupCommitStatements"/>) wait and the next calls queue behind them.
/// </remarks>
public sealed class PostgreSqlGroupCommitTests : IClassFixture<PostgreSqlGroupCommitTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public PostgreSqlGroupCommitTests(Database database) => _database = database;

    /// <summary>
    /// 32 callers append 400 calls of 5 events drawn from 600 keys (so every key is appended by several calls, often at
    /// once, with its own quantity per call; half of the events counted as new, so copied in): the calls share statements,
    /// two at a time, each key is reported stored by exactly one call, and the stored row is that call's event.
    /// </summary>
    [Fact]
    public async Task Concurrent_appends_of_the_same_keys_store_and_report_each_key_once()
    {
        var (store, _) = await _database.NewStoreAsync();
        var customer = NewCustomer();
        const int Calls = 400, PerCall = 5, Keys = 600;
        var calls = Enumerable.Range(0, Calls)
            .Select(c => Enumerable.Range(0, PerCall).Select(i => Event(customer, string.Create(CultureInfo.InvariantCulture, $"k{Scatter((c * PerCall) + i, Keys)}"), 1 + (c * PerCall) + i) with { CountedAsNew = (c + i) % 2 == 0 }).ToArray())
            .ToArray();
        var next = -1;
        var winners = new ConcurrentDictionary<string, long>();
        var reportedTwice = 0;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            int c;
            while ((c = Interlocked.Increment(ref next)) < Calls)
            {
                var answers = await store.AppendAsync(calls[c]);
                for (var i = 0; i < PerCall; i++)
                {
                    if (answers[i] && !winners.TryAdd(calls[c][i].IdempotencyKey, calls[c][i].Quantity))
                    {
                        Interlocked.Increment(ref reportedTwice);
                    }
                }
            }
        })));

        var distinct = calls.SelectMany(c => c).Select(e => e.IdempotencyKey).Distinct().Count();
        Assert.Equal(0, reportedTwice);
        Assert.Equal(distinct, winners.Count);
        var listed = await store.ListAsync(Key(customer));
        Assert.Equal(distinct, listed.Count);
        Assert.All(listed, e => Assert.Equal(winners[e.IdempotencyKey], e.Quantity));
        var statistics = Assert.NotNull(store.PostgreSqlGroupCommit);
        Assert.Equal(Calls, statistics.Calls);
        Assert.True(statistics.Flushes < statistics.Calls, $"{statistics.Flushes} statements for {statistics.Calls} calls: nothing was shared");
        Assert.Equal(0, statistics.QueuedCalls);
    }

    /// <summary>
    /// Four calls queued into one statement, one with an idempotency key PostgreSQL cannot store (a NUL character, refused
    /// before it is sent) and one the database rejects (a customer id past the CHECK constraint's 255 characters): the
    /// statement fails, is run again call by call, and only the two bad calls fail, each with its own error; the two
    /// others are stored and answered, including a key repeated in both (the earlier call wins). The same whether the
    /// events were counted as new (copied in) or not (inserted with conflict handling); a copy that fails for a value
    /// the client cannot encode (a lone surrogate) leaves its connection usable.
    /// </summary>
    /// <param name="countedAsNew">The events' <see cref="StoredUsageEvent.CountedAsNew"/>.</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Calls_with_values_the_database_cannot_store_fail_alone(bool countedAsNew)
    {
        var (store, lockTable) = await _database.NewStoreAsync();
        var customer = NewCustomer();
        StoredUsageEvent Event(string customer, string key, long quantity) => Support.GroupCommitEvents.Event(customer, key, quantity) with { CountedAsNew = countedAsNew };
        Task<IReadOnlyList<bool>> first, second, good1, nul, tooLong, good2;
        await using (var blocker = await lockTable())
        {
            // Both statements the group commit runs at once wait for the lock; the next calls queue.
            first = store.AppendAsync([Event(customer, "first", 1)]).AsTask();
            second = store.AppendAsync([Event(customer, "second", 1)]).AsTask();
            await WaitForBlockedInsertsAsync(EntityFrameworkUsageEventStore.PostgreSqlGroupCommitStatements);
            good1 = store.AppendAsync([Event(customer, "good1", 2), Event(customer, "shared", 3)]).AsTask();
            await WaitUntilAsync(() => store.PostgreSqlGroupCommit!.Value.QueuedCalls == 1);
            nul = store.AppendAsync([Event(customer, "fine", 4), Event(customer, "bad\0key", 5)]).AsTask();
            await WaitUntilAsync(() => store.PostgreSqlGroupCommit!.Value.QueuedCalls == 2);
            tooLong = store.AppendAsync([Event(new string('c', 300), "long", 6)]).AsTask();
            await WaitUntilAsync(() => store.PostgreSqlGroupCommit!.Value.QueuedCalls == 3);
            good2 = store.AppendAsync([Event(customer, "shared", 7), Event(customer, "good2", 8)]).AsTask();
            await WaitUntilAsync(() => store.PostgreSqlGroupCommit!.Value.QueuedCalls == 4);
            await blocker.CommitAsync();
        }

        Assert.Equal([true], await first);
        Assert.Equal([true], await second);
        Assert.Equal([true, true], await good1);
        Assert.Equal([false, true], await good2);
        Assert.Contains("NUL", (await Assert.ThrowsAnyAsync<ArgumentException>(() => nul)).Message, StringComparison.Ordinal);
        Assert.Contains("ck_usage_events_customer_id", (await Assert.ThrowsAsync<BillingValidationException>(() => tooLong)).Message, StringComparison.Ordinal);
        var stored = await store.ListAsync(Key(customer));
        Assert.Equal(["first", "good1", "good2", "second", "shared"], stored.Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
        Assert.Equal(3, stored.Single(e => e.IdempotencyKey == "shared").Quantity);
        // "first" and "second" alone, then the failed statement of four calls, run again as four (two fail).
        Assert.Equal(new BatchingUsageEventStoreStatistics(6, 4, 6, 0, 0), store.PostgreSqlGroupCommit);
        Assert.Equal([true], await store.AppendAsync([Event(customer, "after", 9)])); // no connection was left broken
        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.AppendAsync([Event(customer, "lone\uD800", 10)]).AsTask());
        Assert.Equal([true], await store.AppendAsync([Event(customer, "after2", 11)]));
        Assert.Equal(["after", "after2", "first", "good1", "good2", "second", "shared"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// A statement whose connection is lost (its backend is terminated while it waits) fails exactly the calls in it, all
    /// with the same exception and without running them again; the call queued after them is not affected, and the
    /// failed calls' events can be appended again.
    /// </summary>
    [Fact]
    public async Task A_statement_that_fails_for_the_database_fails_exactly_its_calls()
    {
        var (store, lockTable) = await _database.NewStoreAsync();
        var customer = NewCustomer();
        Task<IReadOnlyList<bool>> first, second;
        Task<IReadOnlyList<bool>>[] failing;
        await using (var blocker = await lockTable())
        {
            // "first" and "second" take both statements; "second" waits for the lock until the end.
            first = store.AppendAsync([Event(customer, "first", 1)]).AsTask();
            var firstBackend = await WaitForBlockedInsertsAsync(1);
            second = store.AppendAsync([Event(customer, "second", 2)]).AsTask();
            var secondBackend = (await WaitForBlockedInsertsAsync(2)).Except(firstBackend).Single();
            failing = [.. Enumerable.Range(0, 3).Select(i => store.AppendAsync([Event(customer, string.Create(CultureInfo.InvariantCulture, $"lost{i}"), i)]).AsTask())];
            await WaitUntilAsync(() => store.PostgreSqlGroupCommit!.Value.QueuedCalls == 3);
            await TerminateAsync(firstBackend.Single());
            await Assert.ThrowsAnyAsync<Exception>(() => first);
            var lostBackend = (await WaitForBlockedInsertsAsync(2)).Except([secondBackend]).Single();
            Assert.Equal(0, store.PostgreSqlGroupCommit!.Value.QueuedCalls); // the three calls are in the waiting statement
            var after = store.AppendAsync([Event(customer, "after", 9)]).AsTask();
            await WaitUntilAsync(() => store.PostgreSqlGroupCommit!.Value.QueuedCalls == 1);
            await TerminateAsync(lostBackend);
            var errors = new List<Exception>();
            foreach (var call in failing)
            {
                errors.Add(await Assert.ThrowsAnyAsync<Exception>(() => call));
            }

            Assert.All(errors, e => Assert.Same(errors[0], e));
            Assert.Contains(Chain(errors[0]), e => e is PostgresException { SqlState: PostgresErrorCodes.AdminShutdown });
            await WaitForBlockedInsertsAsync(2); // "after" waits for the lock in its own statement, beside "second"
            await blocker.CommitAsync();
            Assert.Equal([true], await after);
            Assert.Equal([true], await second);
        }

        Assert.Equal(["after", "second"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
        Assert.Equal([true, false], await store.AppendAsync([Event(customer, "lost0", 0), Event(customer, "after", 9)]));
        Assert.Equal(new BatchingUsageEventStoreStatistics(7, 3, 4, 0, 0), store.PostgreSqlGroupCommit);
    }

    private static IEnumerable<Exception> Chain(Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            yield return e;
        }
    }

    /// <summary>Waits until <paramref name="count"/> inserts into the events table wait for a lock; returns their backends.</summary>
    private async Task<int[]> WaitForBlockedInsertsAsync(int count)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            await using var connection = new NpgsqlConnection(_database.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND (query LIKE 'INSERT INTO%usage_events%' OR query LIKE 'COPY %usage_events%')", connection);
            var pids = new List<int>();
            await using (var reader = await command.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    pids.Add(reader.GetInt32(0));
                }
            }

            if (pids.Count == count)
            {
                return [.. pids];
            }

            Assert.True(DateTime.UtcNow < deadline, $"{pids.Count} inserts wait for the lock, not {count}.");
            await Task.Delay(10);
        }
    }

    private async Task TerminateAsync(int pid)
    {
        await using var connection = new NpgsqlConnection(_database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT pg_terminate_backend(@pid)", connection);
        command.Parameters.AddWithValue("pid", pid);
        Assert.True((bool)(await command.ExecuteScalarAsync())!);
    }

    /// <summary>One PostgreSQL database for the class; a migrated schema per store.</summary>
    public sealed class Database
    {
        private readonly Lazy<Task<string>> _connectionString = new(() => Support.TestDatabases.NewPostgresDatabaseAsync("usage_group_commit"));
        private int _schemas;

        /// <summary>The database's connection string (after the first <see cref="NewStoreAsync"/>).</summary>
        public string ConnectionString => _connectionString.Value.GetAwaiter().GetResult();

        /// <summary>
        /// A store on a new migrated schema, and a way to lock its events table against inserts: an open transaction
        /// holding <c>LOCK TABLE … IN EXCLUSIVE MODE</c> until it is committed or disposed.
        /// </summary>
        public async Task<(EntityFrameworkUsageEventStore Store, Func<Task<TableLock>> LockTable)> NewStoreAsync()
        {
            var schema = string.Create(CultureInfo.InvariantCulture, $"group_commit_{Interlocked.Increment(ref _schemas)}");
            var cs = await _connectionString.Value;
            var store = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
            await store.MigrateAsync();
            return (store, () => TableLock.TakeAsync(cs, $"\"{schema}\".usage_events"));
        }
    }

    /// <summary>A transaction holding <c>LOCK TABLE … IN EXCLUSIVE MODE</c> on its own connection until committed or disposed.</summary>
    public sealed class TableLock : IAsyncDisposable
    {
        private readonly NpgsqlConnection _connection;
        private readonly NpgsqlTransaction _transaction;

        private TableLock(NpgsqlConnection connection, NpgsqlTransaction transaction) => (_connection, _transaction) = (connection, transaction);

        /// <summary>Opens a connection and takes the lock.</summary>
        public static async Task<TableLock> TakeAsync(string connectionString, string table)
        {
            var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            var transaction = await connection.BeginTransactionAsync();
            await using var command = new NpgsqlCommand($"LOCK TABLE {table} IN EXCLUSIVE MODE", connection, transaction);
            await command.ExecuteNonQueryAsync();
            return new TableLock(connection, transaction);
        }

        /// <summary>Ends the transaction, releasing the lock.</summary>
        public Task CommitAsync() => _transaction.CommitAsync();

        /// <inheritdoc />
        public async ValueTask DisposeAsync()
        {
            await _transaction.DisposeAsync();
            await _connection.DisposeAsync();
        }
    }
}
