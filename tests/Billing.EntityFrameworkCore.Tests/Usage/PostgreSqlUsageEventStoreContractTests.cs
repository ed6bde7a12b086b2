using Billing.EntityFrameworkCore.Usage;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>The usage event store contract against real PostgreSQL: one database and schema for the class.</summary>
public sealed class PostgreSqlUsageEventStoreContractTests : UsageEventStoreContract, IClassFixture<PostgreSqlUsageEventStoreContractTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public PostgreSqlUsageEventStoreContractTests(Database database) => _database = database;

    /// <inheritdoc />
    protected override async ValueTask<IUsageEventStore> CreateStoreAsync() => await _database.Store.Value;

    /// <summary>One migrated database for the class.</summary>
    public sealed class Database
    {
        /// <summary>The store on the class's database.</summary>
        public Lazy<Task<EntityFrameworkUsageEventStore>> Store { get; } = new(async () =>
        {
            var (cs, schema) = await UsageDatabases.NewPostgresAsync("usage_store");
            return EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        });
    }
}
