using System.Globalization;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>Migrated databases for the usage tests: one PostgreSQL database (own schema) or SQLite file per test class.</summary>
internal static class UsageDatabases
{
    private static int _counter;

    /// <summary>A new PostgreSQL database with a migrated schema: its connection string and schema.</summary>
    public static async Task<(string ConnectionString, string Schema)> NewPostgresAsync(string prefix)
    {
        var cs = await TestDatabases.NewPostgresDatabaseAsync(prefix);
        var schema = string.Create(CultureInfo.InvariantCulture, $"usage_{Interlocked.Increment(ref _counter)}");
        await EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema).MigrateAsync();
        return (cs, schema);
    }

    /// <summary>A new, migrated SQLite file among <paramref name="files"/>: its connection string.</summary>
    public static async Task<string> NewSqliteAsync(SqliteFiles files)
    {
        var cs = files.NewConnectionString();
        await EntityFrameworkUsageEventStore.ForSqlite(cs).MigrateAsync();
        return cs;
    }
}
