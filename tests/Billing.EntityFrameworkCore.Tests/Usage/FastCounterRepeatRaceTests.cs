using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.Testing.Contracts;
using Billing.Testing.Usage;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// An event and its repeat arriving together through the metering service with a fast counter (in memory, flushable
/// like Redis) in front of the EF Core event store on real PostgreSQL and SQLite (<see cref="UsageMeteringRepeatRace"/>):
/// the repeat's append reaches the table first, yet the event is answered "accepted" (the stored acceptance token is
/// its own) and its repeat "duplicate", nothing is rebuilt, and every event is counted once; after the counter loses
/// its keys a replay is a duplicate (the stored token is another acceptance's) and the counter is rebuilt.
/// </summary>
public sealed class FastCounterRepeatRaceTests : IClassFixture<FastCounterRepeatRaceTests.Database>, IClassFixture<SqliteFiles>
{
    private readonly Database _database;
    private readonly SqliteFiles _sqlite;

    /// <summary>Creates the test class.</summary>
    public FastCounterRepeatRaceTests(Database database, SqliteFiles sqlite)
    {
        _database = database;
        _sqlite = sqlite;
    }

    /// <summary>On PostgreSQL.</summary>
    [Fact]
    public async Task A_repeat_stored_first_leaves_the_event_accepted_on_PostgreSql()
    {
        var (cs, schema) = await _database.Schema.Value;
        await CheckAsync(EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema));
    }

    /// <summary>On SQLite (appends go through its group commit).</summary>
    [Fact]
    public async Task A_repeat_stored_first_leaves_the_event_accepted_on_Sqlite() =>
        await CheckAsync(EntityFrameworkUsageEventStore.ForSqlite(await UsageDatabases.NewSqliteAsync(_sqlite)));

    private static async Task CheckAsync(EntityFrameworkUsageEventStore events)
    {
        var counter = new FlushableUsageCounter();
        await UsageMeteringRepeatRace.CheckAsync(counter, events, () =>
        {
            counter.Flush();
            return Task.CompletedTask;
        });
    }

    /// <summary>One migrated PostgreSQL database and schema for the class.</summary>
    public sealed class Database
    {
        /// <summary>The connection string and schema.</summary>
        public Lazy<Task<(string ConnectionString, string Schema)>> Schema { get; } = new(() => UsageDatabases.NewPostgresAsync("fast_repeat_race"));
    }
}
