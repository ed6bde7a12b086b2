using System.Data.Common;
using System.Globalization;
using System.Reflection;
using Billing.EntityFrameworkCore.Model;
using Billing.EntityFrameworkCore.Storage;
using Microsoft.EntityFrameworkCore;

namespace Billing.EntityFrameworkCore.Migrations;

/// <summary>One checked-in migration: a version and the SQL script of each provider.</summary>
/// <param name="Version">The schema version the script brings the database to.</param>
/// <param name="Name">The script's name.</param>
public sealed record BillingMigration(int Version, string Name);

/// <summary>
/// Applies the checked-in SQL migrations of the billing tables, recording each in a <c>schema_migrations</c> table.
/// </summary>
/// <remarks>
/// Idempotent: applied versions are skipped, so calling it on every start is safe. All pending scripts run in one
/// transaction: a failing script leaves the database at the version it had. On PostgreSQL a transaction-scoped
/// advisory lock (per schema) serializes migrators, so several processes starting at once apply each script exactly
/// once; on SQLite the write lock does the same. The EF Core Design package (<c>dotnet ef migrations add</c>) is not
/// used: the scripts are written by hand and kept next to this class.
/// </remarks>
public sealed class BillingMigrator
{
    private readonly DbContextOptions<BillingDbContext> _options;
    private readonly string? _schema;
    private readonly BillingDatabaseProvider _provider;

    /// <summary>Creates a migrator.</summary>
    /// <param name="options">Options with <c>UseNpgsql(...)</c> or <c>UseSqlite(...)</c>.</param>
    /// <param name="schema">The PostgreSQL schema (default <c>billing</c>); ignored on SQLite.</param>
    public BillingMigrator(DbContextOptions options, string? schema = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = BillingDbContext.OptionsFrom(options);
        using var probe = BillingDbContext.Create(_options, null);
        _provider = BillingModelBuilderExtensions.ProviderOf(probe.Database);
        _schema = SqlDialect.For(_provider, schema).Schema;
    }

    /// <summary>Every migration this version of the package knows, oldest first.</summary>
    public static IReadOnlyList<BillingMigration> Migrations { get; } = LoadScripts("postgresql").Select(s => new BillingMigration(s.Version, s.Name)).ToList();

    /// <summary>The newest schema version.</summary>
    public static int LatestVersion => Migrations[^1].Version;

    /// <summary>Applies the pending migrations up to <paramref name="targetVersion"/> (null: all).</summary>
    /// <param name="targetVersion">The version to stop at, or null for the latest.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The versions this call applied (empty when the database was up to date).</returns>
    public async Task<IReadOnlyList<int>> MigrateAsync(int? targetVersion = null, CancellationToken cancellationToken = default)
    {
        var scripts = LoadScripts(_provider == BillingDatabaseProvider.PostgreSql ? "postgresql" : "sqlite")
            .Where(s => targetVersion is null || s.Version <= targetVersion)
            .ToList();
        await using var db = BillingDbContext.Create(_options, _schema);
        await db.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var connection = db.Database.GetDbConnection();
        var pg = _provider == BillingDatabaseProvider.PostgreSql;
        var table = pg ? $"{_schema}.schema_migrations" : "schema_migrations";
        if (!pg)
        {
            await ExecuteAsync(connection, null, "PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
        }

        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (pg)
        {
            await ExecuteAsync(connection, tx, $"SELECT pg_advisory_xact_lock({SqlDialect.LockKey("migrations", _schema!)});", cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, $"CREATE SCHEMA IF NOT EXISTS {_schema};", cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, $"CREATE TABLE IF NOT EXISTS {table} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());", cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await ExecuteAsync(connection, tx, $"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);", cancellationToken).ConfigureAwait(false);
        }

        var applied = new HashSet<int>();
        await using (var command = connection.CreateCommand())
        {
            command.Transaction = tx;
            command.CommandText = $"SELECT version FROM {table}";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                applied.Add(reader.GetInt32(0));
            }
        }

        var done = new List<int>();
        foreach (var script in scripts.Where(s => !applied.Contains(s.Version)))
        {
            await ExecuteAsync(connection, tx, pg ? script.Sql.Replace("{schema}", _schema, StringComparison.Ordinal) : script.Sql, cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, string.Create(CultureInfo.InvariantCulture, $"INSERT INTO {table} (version, name) VALUES ({script.Version}, '{script.Name}');"), cancellationToken).ConfigureAwait(false);
            done.Add(script.Version);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return done;
    }

    /// <summary>The versions applied to the database, oldest first (empty for a database never migrated).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The applied versions.</returns>
    public async Task<IReadOnlyList<int>> GetAppliedVersionsAsync(CancellationToken cancellationToken = default)
    {
        await using var db = BillingDbContext.Create(_options, _schema);
        await db.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var connection = db.Database.GetDbConnection();
        var pg = _provider == BillingDatabaseProvider.PostgreSql;
        await using var command = connection.CreateCommand();
        command.CommandText = pg
            ? $"SELECT to_regclass('{_schema}.schema_migrations') IS NOT NULL"
            : "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')";
        var exists = Convert.ToBoolean(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
        if (!exists)
        {
            return [];
        }

        command.CommandText = $"SELECT version FROM {(pg ? $"{_schema}." : "")}schema_migrations ORDER BY version";
        var versions = new List<int>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            versions.Add(reader.GetInt32(0));
        }

        return versions;
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.CommandTimeout = 300;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static List<(int Version, string Name, string Sql)> LoadScripts(string provider)
    {
        var assembly = typeof(BillingMigrator).Assembly;
        var prefix = $"Billing.EntityFrameworkCore.Migrations.{provider}/";
        var scripts = new List<(int, string, string)>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(resource[prefix.Length..]);
            var version = int.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            scripts.Add((version, name, reader.ReadToEnd()));
        }

        return scripts.Count > 0 ? scripts : throw new InvalidOperationException($"No {provider} migration scripts are embedded in {assembly.GetName().Name}.");
    }
}
