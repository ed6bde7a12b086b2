using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Billing.SampleHost.Data;

/// <summary>The database the host talks to directly (its own tables, list queries, the readiness check), next to the
/// billing store. Both providers accept <c>@name</c> parameters and <c>LIMIT</c>, so the SQL is shared.</summary>
internal sealed class HostDatabase : IAsyncDisposable
{
    private readonly NpgsqlDataSource? _postgres;
    private readonly string? _sqlite;

    private HostDatabase(NpgsqlDataSource? postgres, string? sqlite, string? schema)
    {
        _postgres = postgres;
        _sqlite = sqlite;
        Schema = schema;
    }

    /// <summary>Whether this is PostgreSQL (otherwise SQLite).</summary>
    public bool IsPostgreSql => _postgres is not null;

    /// <summary>The PostgreSQL schema of the billing tables; null on SQLite.</summary>
    public string? Schema { get; }

    public static HostDatabase ForSqlite(string connectionString) => new(null, connectionString, null);

    public static HostDatabase ForPostgreSql(string connectionString, string schema) => new(NpgsqlDataSource.Create(connectionString), null, schema);

    /// <summary>A table name, qualified with the schema on PostgreSQL. <paramref name="name"/> is a constant of the host.</summary>
    public string Table(string name) => Schema is null ? name : $"{Schema}.{name}";

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (_postgres is not null)
        {
            return await _postgres.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }

        var connection = new SqliteConnection(_sqlite);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>Small ADO.NET helpers.</summary>
internal static class DbCommands
{
    public static DbCommand Command(this DbConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
#pragma warning disable CA2100 // SQL text is built from host constants only; values go in parameters.
        command.CommandText = sql;
#pragma warning restore CA2100
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    public static async Task<int> ExecuteAsync(this DbConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = connection.Command(sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
