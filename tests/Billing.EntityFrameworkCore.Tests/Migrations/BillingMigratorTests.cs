using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Storage;
using Billing.EntityFrameworkCore.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Billing.EntityFrameworkCore.Tests.Migrations;

/// <summary>The migrator on both providers: empty databases, the previous version with data, and racing migrators.</summary>
public sealed class BillingMigratorTests : IClassFixture<BillingMigratorTests.Database>, IClassFixture<SqliteFiles>
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly Database _database;
    private readonly SqliteFiles _sqlite;

    /// <summary>Creates the test class.</summary>
    public BillingMigratorTests(Database database, SqliteFiles sqlite)
    {
        _database = database;
        _sqlite = sqlite;
    }

    /// <summary>The package knows its migrations in order, and the latest adds the usage details of invoices.</summary>
    [Fact]
    public void Migrations_are_numbered_from_1_without_gaps()
    {
        Assert.Equal(Enumerable.Range(1, BillingMigrator.Migrations.Count), BillingMigrator.Migrations.Select(m => m.Version));
        Assert.Equal(BillingMigrator.Migrations.Count, BillingMigrator.LatestVersion);
        Assert.Equal("0002_work_claims", BillingMigrator.Migrations[1].Name);
        Assert.Equal("0003_usage_events", BillingMigrator.Migrations[2].Name);
        Assert.Equal("0004_lean_writes", BillingMigrator.Migrations[3].Name);
        Assert.Equal("0005_invoice_usage_details", BillingMigrator.Migrations[4].Name);
        Assert.Equal("0006_usage_events_one_counter_index", BillingMigrator.Migrations[5].Name);
        Assert.Equal("0007_list_indexes", BillingMigrator.Migrations[6].Name);
        Assert.Equal("0008_usage_acceptance_token", BillingMigrator.Migrations[7].Name);
        Assert.Equal("0009_usage_event_log", BillingMigrator.Migrations[8].Name);
    }

    /// <summary>An empty PostgreSQL schema gets every migration once; a second call applies nothing.</summary>
    [Fact]
    public async Task PostgreSql_empty_database_is_migrated_to_the_latest_version_idempotently()
    {
        var store = EntityFrameworkBillingStore.ForPostgreSql(await _database.ConnectionString.Value, "mig_empty");
        Assert.Empty(await store.Migrator.GetAppliedVersionsAsync());
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9], await store.MigrateAsync());
        Assert.Empty(await store.MigrateAsync());
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9], await store.Migrator.GetAppliedVersionsAsync());
        await using var session = await store.BeginAsync();
        Assert.Null(await session.Customers.GetAsync("cus_none"));
    }

    /// <summary>An empty SQLite file gets every migration once; a second call applies nothing.</summary>
    [Fact]
    public async Task Sqlite_empty_database_is_migrated_to_the_latest_version_idempotently()
    {
        var store = EntityFrameworkBillingStore.ForSqlite(_sqlite.NewConnectionString());
        Assert.Empty(await store.Migrator.GetAppliedVersionsAsync());
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9], await store.MigrateAsync());
        Assert.Empty(await store.MigrateAsync());
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9], await store.Migrator.GetAppliedVersionsAsync());
    }

    /// <summary>
    /// A PostgreSQL database at version 1 with a due subscription in it migrates to the latest version, keeps the
    /// row, and the row is then readable and claimable through the store.
    /// </summary>
    [Fact]
    public async Task PostgreSql_database_at_the_previous_version_keeps_its_data_through_the_migration()
    {
        var cs = await _database.ConnectionString.Value;
        var store = EntityFrameworkBillingStore.ForPostgreSql(cs, "mig_previous");
        Assert.Equal([1], await store.Migrator.MigrateAsync(targetVersion: 1));
        await using (var connection = new NpgsqlConnection(cs))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(V1Subscription("mig_previous."), connection);
            await command.ExecuteNonQueryAsync();
        }

        Assert.Equal([2, 3, 4, 5, 6, 7, 8, 9], await store.MigrateAsync());
        await AssertOldRowIsUsableAsync(store);
    }

    /// <summary>The same on SQLite.</summary>
    [Fact]
    public async Task Sqlite_database_at_the_previous_version_keeps_its_data_through_the_migration()
    {
        var cs = _sqlite.NewConnectionString();
        var store = EntityFrameworkBillingStore.ForSqlite(cs);
        Assert.Equal([1], await store.Migrator.MigrateAsync(targetVersion: 1));
        await using (var connection = new SqliteConnection(cs))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = V1Subscription("")
                .Replace("'2025-03-01T12:00:00Z'", T0.UtcTicks.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("'2025-04-01T12:00:00Z'", T0.AddMonths(1).UtcTicks.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("'2025-03-01T12:00:00'", new DateTime(2025, 3, 1, 12, 0, 0).Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("false", "0", StringComparison.Ordinal);
            await command.ExecuteNonQueryAsync();
        }

        Assert.Equal([2, 3, 4, 5, 6, 7, 8, 9], await store.MigrateAsync());
        await AssertOldRowIsUsableAsync(store);
    }

    /// <summary>Eight migrators racing on one fresh PostgreSQL schema: each script runs exactly once, none fails.</summary>
    [Fact]
    public async Task Concurrent_PostgreSql_migrators_apply_each_migration_exactly_once()
    {
        var cs = await _database.ConnectionString.Value;
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
            new BillingMigrator(new DbContextOptionsBuilder().UseNpgsql(cs).Options, "mig_race").MigrateAsync())));
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9], results.SelectMany(r => r).Order());
        Assert.Single(results, r => r.Count > 0);
    }

    private static string V1Subscription(string prefix) => $"""
        INSERT INTO {prefix}subscriptions (id, customer_id, plan_id, quantity, status, schedule_start, anchor_local,
            current_period_start, current_period_end, cancel_at_period_end, pending_lines, next_action_at, created_at, version)
        VALUES ('sub_old', 'cus_old', 'plan_old', 3, 'active', '2025-03-01T12:00:00Z', '2025-03-01T12:00:00',
            '2025-03-01T12:00:00Z', '2025-04-01T12:00:00Z', false, '[]', '2025-04-01T12:00:00Z', '2025-03-01T12:00:00Z', 4)
        """;

    private static async Task AssertOldRowIsUsableAsync(EntityFrameworkBillingStore store)
    {
        await using var session = await store.BeginAsync();
        var old = await session.Subscriptions.GetAsync("sub_old");
        Assert.NotNull(old);
        Assert.Equal(3, old.Quantity);
        Assert.Equal(4, old.Version);
        Assert.Equal(T0.AddMonths(1), old.CurrentPeriod.End);
        Assert.Equal(["sub_old"], (await session.Subscriptions.ClaimDueAsync(T0.AddMonths(1), null, 10, T0, TimeSpan.FromMinutes(5))).Select(s => s.Id));
        session.Subscriptions.Update(old with { Quantity = 4 });
        await session.CommitAsync();
    }

    /// <summary>One database for the class.</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("migrations"));
    }
}
