using Billing.EntityFrameworkCore.Usage;
using Billing.InMemory;
using Billing.Testing.Contracts;
using Billing.Usage;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// The service-level metering property (<see cref="UsageMeteringProperty"/>) on real PostgreSQL: for any interleaving
/// of new events, duplicates, over-limit attempts, batches, concurrent calls and
/// <see cref="UsageMeteringService.RebuildCountersAsync"/> through <see cref="UsageMeteringService"/> with the EF Core
/// durable event store, every counter's total equals the durable aggregate, and both equal the fold of the unique
/// events the service answered "accepted". Run with the in-memory counter and with the EF Core durable counter in
/// front of the store.
/// </summary>
public sealed class UsageMeteringServicePostgreSqlPropertyTests : IClassFixture<UsageMeteringServicePostgreSqlPropertyTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public UsageMeteringServicePostgreSqlPropertyTests(Database database) => _database = database;

    /// <summary>The counter in front of the durable store.</summary>
    public enum CounterKind
    {
        /// <summary><see cref="InMemoryUsageCounter"/>.</summary>
        InMemory,

        /// <summary><see cref="EntityFrameworkUsageCounter"/> on the same database.</summary>
        Durable,
    }

    /// <summary>The property, 40 random step sequences per counter kind, on one migrated PostgreSQL schema.</summary>
    [Theory]
    [InlineData(CounterKind.InMemory)]
    [InlineData(CounterKind.Durable)]
    public async Task For_any_interleaving_on_PostgreSQL_counter_totals_equal_the_durable_aggregate_and_the_accepted_fold(CounterKind kind)
    {
        var (cs, schema) = await _database.Schema.Value;
        var events = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        new UsageMeteringProperty().Check(
            () => kind == CounterKind.InMemory ? new InMemoryUsageCounter() : EntityFrameworkUsageCounter.ForPostgreSql(cs, schema),
            () => events);
    }

    /// <summary>One migrated PostgreSQL database and schema for the class.</summary>
    public sealed class Database
    {
        /// <summary>The connection string and schema.</summary>
        public Lazy<Task<(string ConnectionString, string Schema)>> Schema { get; } = new(() => UsageDatabases.NewPostgresAsync("metering_property"));
    }
}
