using Billing.EntityFrameworkCore.Tests.Support;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.EntityFrameworkCore.Tests.Storage;

/// <summary>The store contract suite of Billing.Testing against SQLite: each test gets a new, migrated database file.</summary>
public sealed class SqliteStoreContractTests(SqliteFiles sqlite) : BillingStoreContract, IClassFixture<SqliteFiles>
{
    /// <inheritdoc />
    protected override async ValueTask<IBillingStore> CreateStoreAsync() => await sqlite.NewStoreAsync();
}
