using System.Globalization;
using Billing.EntityFrameworkCore.Storage;
using Billing.Testing.Servers;
using Npgsql;

namespace Billing.EntityFrameworkCore.Tests.Support;

/// <summary>
/// Real databases for the tests: PostgreSQL started from the machine's binaries (or the server named by
/// <c>BILLING_TEST_POSTGRES</c>), one database per test class and one schema per store. A missing PostgreSQL fails the
/// tests with what to install. SQLite files: <see cref="SqliteFiles"/>.
/// </summary>
internal static class TestDatabases
{
    /// <summary>Names a connection string of an existing PostgreSQL server to use instead of starting one.</summary>
    public const string PostgresVariable = "BILLING_TEST_POSTGRES";

    private static readonly Lazy<Task<string>> ServerConnection = new(StartServerAsync);
    private static int _counter;

    /// <summary>The connection string of the (started or configured) PostgreSQL server's maintenance database.</summary>
    public static Task<string> PostgresServerAsync() => ServerConnection.Value;

    /// <summary>Creates a new, empty PostgreSQL database and returns its connection string.</summary>
    public static async Task<string> NewPostgresDatabaseAsync(string prefix)
    {
        var admin = await PostgresServerAsync();
        var name = string.Create(CultureInfo.InvariantCulture, $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _counter)}_{Guid.NewGuid():N}").ToLowerInvariant();
        name = name[..Math.Min(63, name.Length)];
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(admin) { Database = name, MaxPoolSize = 100, IncludeErrorDetail = true }.ConnectionString;
    }

    /// <summary>A new, migrated store in its own schema of the given database.</summary>
    public static async Task<EntityFrameworkBillingStore> NewPostgresStoreAsync(string connectionString)
    {
        var schema = string.Create(CultureInfo.InvariantCulture, $"billing_{Interlocked.Increment(ref _counter)}");
        var store = EntityFrameworkBillingStore.ForPostgreSql(connectionString, schema);
        await store.MigrateAsync();
        return store;
    }

    private static async Task<string> StartServerAsync()
    {
        if (Environment.GetEnvironmentVariable(PostgresVariable) is { Length: > 0 } configured)
        {
            return configured;
        }

        var server = await LocalPostgresServer.SharedAsync();
        return server.ConnectionString;
    }
}
