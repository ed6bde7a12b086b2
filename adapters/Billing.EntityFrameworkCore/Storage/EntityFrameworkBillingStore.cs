using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Model;
using Billing.Ports;
using Microsoft.EntityFrameworkCore;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>
/// The billing store on EF Core, on PostgreSQL (production; many processes may share one database) or SQLite (the
/// embedded default; one process). Each session is one context and, at commit, one transaction.
/// </summary>
/// <remarks>
/// <para>
/// Duplicates are impossible by construction: the database enforces one invoice per dedup key and per
/// (subscription, period start), unique invoice numbers, unique payment idempotency keys, unique outbox event ids
/// and unique idempotency records per (scope, key). Every aggregate carries a version column; a stale write fails
/// with <see cref="ConcurrencyConflictException"/> and changes nothing.
/// </para>
/// <para>
/// Invoice numbers come from a sequence row that the numbering transaction holds locked until it commits, so numbers
/// are gap-free: a rolled-back number is handed out again. Outbox rows are written in the same transaction as the
/// state change that produced them.
/// </para>
/// <para>
/// Scale-out: on PostgreSQL the billing run claims due rows with <c>FOR UPDATE SKIP LOCKED</c> and a lease, so any
/// number of processes can run it at once. SQLite serializes writers and has no row locks: run the billing run in
/// one process (several runs in that process are still safe).
/// </para>
/// </remarks>
public sealed class EntityFrameworkBillingStore : IBillingStore
{
    private readonly DbContextOptions _options;
    private readonly SqlDialect _sql;
    private readonly CompiledQueries _queries = new();

    /// <summary>Creates a store over a configured provider.</summary>
    /// <param name="options">Options with <c>UseNpgsql(...)</c> or <c>UseSqlite(...)</c>.</param>
    /// <param name="schema">The PostgreSQL schema (default <c>billing</c>); ignored on SQLite.</param>
    /// <exception cref="NotSupportedException">The options use another provider.</exception>
    public EntityFrameworkBillingStore(DbContextOptions options, string? schema = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        using var probe = new BillingDbContext(options, null);
        Provider = BillingModelBuilderExtensions.ProviderOf(probe.Database);
        _sql = SqlDialect.For(Provider, schema);
        Schema = _sql.Schema;
        Migrator = new BillingMigrator(options, Schema);
    }

    /// <summary>The database provider.</summary>
    public BillingDatabaseProvider Provider { get; }

    /// <summary>The PostgreSQL schema; null on SQLite.</summary>
    public string? Schema { get; }

    /// <summary>The migrator of this store's database.</summary>
    public BillingMigrator Migrator { get; }

    /// <summary>Creates a store on PostgreSQL.</summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    /// <param name="schema">The schema; null for <c>billing</c>.</param>
    /// <returns>The store.</returns>
    public static EntityFrameworkBillingStore ForPostgreSql(string connectionString, string? schema = null) =>
        new(new DbContextOptionsBuilder().UseNpgsql(connectionString).Options, schema);

    /// <summary>Creates a store on SQLite.</summary>
    /// <param name="connectionString">A Microsoft.Data.Sqlite connection string, e.g. <c>Data Source=data/billing.db</c>.</param>
    /// <returns>The store.</returns>
    public static EntityFrameworkBillingStore ForSqlite(string connectionString) =>
        new(new DbContextOptionsBuilder().UseSqlite(connectionString).Options);

    /// <summary>Applies pending migrations (see <see cref="BillingMigrator.MigrateAsync"/>).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The versions applied by this call.</returns>
    public Task<IReadOnlyList<int>> MigrateAsync(CancellationToken cancellationToken = default) => Migrator.MigrateAsync(null, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult<IBillingSession>(new EntityFrameworkBillingSession(new BillingDbContext(_options, Schema), _sql, _queries));
    }
}
