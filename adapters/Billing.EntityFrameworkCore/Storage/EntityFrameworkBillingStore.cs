using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Model;
using Billing.Ports;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

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
/// <para>
/// Sessions rent their contexts from a pool owned by the store, so a session costs no model lookup or service
/// resolution; keep one store per database and schema (the DI registration does).
/// </para>
/// </remarks>
public sealed class EntityFrameworkBillingStore : IBillingStore, IBillingStoreChanges
{
    /// <summary>Contexts kept for reuse: enough for every concurrent session of a busy host.</summary>
    private const int ContextPoolSize = 256;

    private readonly PooledDbContextFactory<BillingDbContext> _contexts;
    private readonly SqlDialect _sql;
    private readonly CompiledQueries _queries = new();
    private readonly BillingStoreChangeFeed _changes = new();
    private PostgreSqlWriter? _writer;

    /// <summary>Creates a store over a configured provider.</summary>
    /// <param name="options">Options with <c>UseNpgsql(...)</c> or <c>UseSqlite(...)</c>.</param>
    /// <param name="schema">The PostgreSQL schema (default <c>billing</c>); ignored on SQLite.</param>
    /// <exception cref="NotSupportedException">The options use another provider.</exception>
    public EntityFrameworkBillingStore(DbContextOptions options, string? schema = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var typed = BillingDbContext.OptionsFrom(options);
        using (var probe = BillingDbContext.Create(typed, null))
        {
            Provider = BillingModelBuilderExtensions.ProviderOf(probe.Database);
        }

        _sql = SqlDialect.For(Provider, schema);
        Schema = _sql.Schema;
        _contexts = new PooledDbContextFactory<BillingDbContext>(typed, ContextPoolSize);
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
    /// <remarks>
    /// Turns on Npgsql's automatic statement preparation (<c>Max Auto Prepare=32</c>, <c>Auto Prepare Min Usages=2</c>)
    /// unless the connection string sets it, and <c>No Reset On Close=true</c> unless it mentions it: the store sends
    /// the same few statements for every renewal and changes no session state, so preparing them saves PostgreSQL
    /// most of its parse and plan work and resetting pooled connections would be pure cost. Set them yourself when you
    /// register the store through <c>AddEntityFrameworkCore</c>.
    /// </remarks>
    public static EntityFrameworkBillingStore ForPostgreSql(string connectionString, string? schema = null) =>
        new(new DbContextOptionsBuilder().UseNpgsql(NpgsqlDefaults.Tuned(connectionString)).Options, schema);

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
        var context = _contexts.CreateDbContext();
        context.Schema = Schema;
        var writer = Provider == BillingDatabaseProvider.PostgreSql ? _writer ??= PostgreSqlWriter.For(context, Schema!) : null;
        return ValueTask.FromResult<IBillingSession>(new EntityFrameworkBillingSession(context, _sql, _queries, writer, _changes));
    }

    /// <inheritdoc />
    /// <remarks>Only commits through this store object are reported, not those of another process or store object.</remarks>
    public IDisposable Subscribe(Action<BillingStoreChange> committed) => _changes.Subscribe(committed);
}
