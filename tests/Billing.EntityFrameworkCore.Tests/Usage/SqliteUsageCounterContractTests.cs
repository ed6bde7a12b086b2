using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>The usage counter contract against the durable counter on SQLite: one database file for the class.</summary>
public sealed class SqliteUsageCounterContractTests : UsageCounterContract, IClassFixture<SqliteUsageCounterContractTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public SqliteUsageCounterContractTests(Database database) => _database = database;

    /// <inheritdoc />
    protected override bool KeysExpire => false;

    /// <inheritdoc />
    protected override async ValueTask<IUsageCounter> CreateCounterAsync() => await _database.Counter.Value;

    /// <summary>One migrated database file for the class (deleted with the fixture).</summary>
    public sealed class Database : IDisposable
    {
        private readonly SqliteFiles _files = new();

        /// <summary>Creates the fixture.</summary>
        public Database() => Counter = new(async () => EntityFrameworkUsageCounter.ForSqlite(await UsageDatabases.NewSqliteAsync(_files)));

        /// <summary>The counter on the class's database.</summary>
        public Lazy<Task<EntityFrameworkUsageCounter>> Counter { get; }

        /// <inheritdoc />
        public void Dispose() => _files.Dispose();
    }
}
