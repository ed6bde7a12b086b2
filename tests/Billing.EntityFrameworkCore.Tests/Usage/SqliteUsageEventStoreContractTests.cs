using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>The usage event store contract against SQLite: one database file for the class.</summary>
public sealed class SqliteUsageEventStoreContractTests : UsageEventStoreContract, IClassFixture<SqliteUsageEventStoreContractTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public SqliteUsageEventStoreContractTests(Database database) => _database = database;

    /// <inheritdoc />
    protected override async ValueTask<IUsageEventStore> CreateStoreAsync() => await _database.Store.Value;

    /// <summary>One migrated database file for the class (deleted with the fixture).</summary>
    public sealed class Database : IDisposable
    {
        private readonly SqliteFiles _files = new();

        /// <summary>Creates the fixture.</summary>
        public Database() => Store = new(async () => EntityFrameworkUsageEventStore.ForSqlite(await UsageDatabases.NewSqliteAsync(_files)));

        /// <summary>The store on the class's database.</summary>
        public Lazy<Task<EntityFrameworkUsageEventStore>> Store { get; }

        /// <inheritdoc />
        public void Dispose() => _files.Dispose();
    }
}
