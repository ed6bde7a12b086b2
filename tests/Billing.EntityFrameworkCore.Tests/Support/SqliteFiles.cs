using System.Globalization;
using Billing.EntityFrameworkCore.Storage;
using Billing.Testing.Servers;
using Microsoft.Data.Sqlite;

namespace Billing.EntityFrameworkCore.Tests.Support;

/// <summary>
/// SQLite database files for one test class (an <c>IClassFixture</c>, or owned by the class's fixture): in a temp
/// directory of their own, deleted when the fixture is disposed after the class's last test.
/// </summary>
public sealed class SqliteFiles : IDisposable
{
    private int _counter;

    /// <summary>The directory of the files.</summary>
    public string Directory { get; } = TempDirectories.Create("billing-sqlite-");

    private string NewFile() => Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture, $"billing_{Interlocked.Increment(ref _counter)}.db"));

    /// <summary>The connection string the tests use for a new database file.</summary>
    public string NewConnectionString() => $"Data Source={NewFile()};Default Timeout=60;Pooling=True";

    /// <summary>A new, migrated store in its own file.</summary>
    public async Task<EntityFrameworkBillingStore> NewStoreAsync()
    {
        var store = EntityFrameworkBillingStore.ForSqlite(NewConnectionString());
        await store.MigrateAsync();
        return store;
    }

    /// <summary>Deletes the directory (where an open file holds it, not on Linux, SQLite's pools are cleared and it is retried).</summary>
    public void Dispose() => TempDirectories.Delete(Directory, SqliteConnection.ClearAllPools);
}
