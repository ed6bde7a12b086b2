using Billing.EntityFrameworkCore.Tests.Support;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.EntityFrameworkCore.Tests.Storage;

/// <summary>The store contract suite of Billing.Testing against real PostgreSQL: each test gets a new, migrated schema.</summary>
public sealed class PostgreSqlStoreContractTests : BillingStoreContract, IClassFixture<PostgreSqlStoreContractTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public PostgreSqlStoreContractTests(Database database) => _database = database;

    /// <inheritdoc />
    protected override async ValueTask<IBillingStore> CreateStoreAsync() =>
        await TestDatabases.NewPostgresStoreAsync(await _database.ConnectionString.Value);

    /// <summary>One database for the class.</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("contract"));
    }
}
