using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Model;
using Billing.EntityFrameworkCore.Storage;
using Billing.Usage;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Npgsql;
using NpgsqlTypes;

namespace Billing.EntityFrameworkCore.Usage;

/// <summary>
/// The usage tables of one database: the provider, the schema, connections (plain ADO.NET on the connection string of
/// the EF Core options, so a batch is one statement), the migrator and the error translation shared by the usage
/// event store and the durable counter; on SQLite this process's state of the file (<see cref="Log"/>: the writer
/// turn and the event log in front of usage_events).
/// </summary>
internal sealed class UsageDatabase
{
    private static readonly IReadOnlyDictionary<string, string> NoProperties = new Dictionary<string, string>(StringComparer.Ordinal);

    private readonly string _connectionString;

    private UsageDatabase(BillingDatabaseProvider provider, string? schema, string connectionString, BillingMigrator migrator)
    {
        Provider = provider;
        Schema = schema;
        Migrator = migrator;
        if (provider == BillingDatabaseProvider.PostgreSql)
        {
            _connectionString = Storage.NpgsqlDefaults.Tuned(connectionString);
        }
        else
        {
            _connectionString = connectionString;
            Log = SqliteUsageLog.For(connectionString);
        }

        var p = IsPostgreSql ? $"{schema}." : string.Empty;
        Events = $"{p}usage_events";
        Counters = $"{p}usage_counters";
    }

    public BillingDatabaseProvider Provider { get; }

    public bool IsPostgreSql => Provider == BillingDatabaseProvider.PostgreSql;

    /// <summary>The PostgreSQL schema; null on SQLite.</summary>
    public string? Schema { get; }

    public BillingMigrator Migrator { get; }

    /// <summary>This process's state of the SQLite database (writer turn, event log); null on PostgreSQL.</summary>
    public SqliteUsageLog? Log { get; }

    /// <summary>The events table, schema-qualified on PostgreSQL.</summary>
    public string Events { get; }

    /// <summary>The counters table, schema-qualified on PostgreSQL.</summary>
    public string Counters { get; }

    /// <summary>The database of EF Core options with <c>UseNpgsql</c> or <c>UseSqlite</c> and a connection string.</summary>
    public static UsageDatabase From(DbContextOptions options, string? schema, BillingMigrator? migrator = null) =>
        TryFrom(options, schema, migrator)
        ?? throw new NotSupportedException("The usage tables are reached through a connection string: configure UseNpgsql(connectionString) or UseSqlite(connectionString).");

    /// <summary>The database of EF Core options, or null when the options carry no connection string (a data source only).</summary>
    public static UsageDatabase? TryFrom(DbContextOptions options, string? schema, BillingMigrator? migrator = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        BillingDatabaseProvider provider;
        using (var probe = new DbContext(options))
        {
            provider = BillingModelBuilderExtensions.ProviderOf(probe.Database);
        }

        var relational = RelationalOptionsExtension.Extract(options);
        var connectionString = relational.ConnectionString ?? relational.Connection?.ConnectionString;
        if (string.IsNullOrEmpty(connectionString))
        {
            return null;
        }

        var validated = provider == BillingDatabaseProvider.PostgreSql ? SchemaName.Validate(schema ?? BillingModelBuilderExtensions.DefaultSchema) : null;
        return new UsageDatabase(provider, validated, connectionString, migrator ?? new BillingMigrator(options, validated));
    }

    public ValueTask<NpgsqlConnection> OpenPostgreSqlAsync(CancellationToken cancellationToken) =>
        OpenAsync(new NpgsqlConnection(_connectionString), cancellationToken);

    public ValueTask<SqliteConnection> OpenSqliteAsync(CancellationToken cancellationToken) =>
        OpenAsync(new SqliteConnection(_connectionString), cancellationToken);

    /// <summary>
    /// A connection for a batch of usage writes: with a 64 MiB page cache (the default 2 MiB holds a few thousand of
    /// the random index pages a batch of keys touches) and an automatic checkpoint every 50,000 pages of write-ahead
    /// log (about 200 MiB) instead of 1,000, so a page written by many commits is copied back to the database once.
    /// Both are settings of the writer's own connection (not pooled, kept by <see cref="SqliteUsageLog"/>); the log is
    /// still synced at every commit but those of the moves of the event log.
    /// </summary>
    /// <remarks>
    /// Appends go to the usage event log (migration 9, <see cref="SqliteUsageLog"/>): a few new pages per group commit
    /// instead of about two random index pages per event. The pages written per event are now those of the moves of
    /// the log into usage_events: a move of a range of keys dirties the primary-key and counter-index leaves of that
    /// range once (with 1,000 customers and 8 writers about 9,000 leaves for the whole key range, whatever the number
    /// of events moved). The 64 MiB cache holds that working set: in single runs of the sample host's benchmark on the
    /// busy shared machine a move of 8,192 events took 100–270 ms to insert with 32 MiB and about 45 ms with 128 MiB
    /// (a smaller cache reads the index pages back from the file).
    /// Before the log, with 10,000 pages of automatic checkpoint a benchmark of 1,000 customers wrote 14.3 KB per
    /// event and ran 24.7k events/s, with 50,000 pages 11.2 KB and 32–34.5k events/s (SQLite alone, fsync at every
    /// commit). The log file keeps the size it reached (about 200 MiB) after a checkpoint, and a restart after a crash
    /// replays at most that much. Databases keep SQLite's 4,096-byte pages: 1,024-byte pages halved the bytes written
    /// per event in the sample host's benchmark (6.5 against 13 KB, before the event log) but not the time, and
    /// raised its p99 by about 100 ms (a checkpoint of the same log copies four times as many pages).
    /// </remarks>
    private async Task<SqliteConnection> OpenSqliteWriterAsync(CancellationToken cancellationToken)
    {
        // Not from the pool: a pooled connection that another connection of the pool used since drops its whole page
        // cache at its next transaction (SQLite resets a connection's cache when another connection has written), so the
        // writer keeps a connection of its own (see SqliteUsageLog.WriterConnectionAsync).
        var connection = await OpenAsync(new SqliteConnection(new SqliteConnectionStringBuilder(_connectionString) { Pooling = false }.ToString()), cancellationToken).ConfigureAwait(false);
        try
        {
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 50000;";
            await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask<TConnection> OpenAsync<TConnection>(TConnection connection, CancellationToken cancellationToken)
        where TConnection : System.Data.Common.DbConnection
    {
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

    /// <summary>Takes this process's SQLite write turn for the database file; dispose the result to give it back.</summary>
    private async ValueTask<WriterTurn> EnterSqliteWriterAsync(CancellationToken cancellationToken)
    {
        await Log!.Writer.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new WriterTurn(Log.Writer);
    }

    /// <summary>
    /// One SQLite write transaction under this process's writer turn, on a writer connection: starts the transaction's
    /// use of the event log (<see cref="SqliteUsageLog.BeginWriteAsync"/>), runs <paramref name="work"/>, commits, and
    /// applies the log's changes (<see cref="SqliteUsageLog.LogWrite.Committed"/>) before the turn is given back.
    /// </summary>
    /// <param name="emptyLog">The work reads usage_events for keys: the whole log is moved first.</param>
    /// <param name="work">The transaction's statements.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <param name="syncCommit">False for a transaction that may be lost in a power cut without losing anything (a move
    /// of the log, which leaves its rows in the log until it commits): its commit does not wait for the write-ahead log
    /// to be synced (<c>PRAGMA synchronous = NORMAL</c> for this transaction when the connection's setting is higher). The
    /// next synced commit syncs it too; a crash before that undoes it as a whole.</param>
    /// <returns>What <paramref name="work"/> returned.</returns>
    public async Task<T> WriteSqliteAsync<T>(bool emptyLog, Func<SqliteConnection, SqliteTransaction, SqliteUsageLog.LogWrite, Task<T>> work, CancellationToken cancellationToken, bool syncCommit = true)
    {
        using var turn = await EnterSqliteWriterAsync(cancellationToken).ConfigureAwait(false);
        var connection = await Log!.WriterConnectionAsync(OpenSqliteWriterAsync, cancellationToken).ConfigureAwait(false);
        var restore = syncCommit ? null : await LowerSynchronousAsync(connection, cancellationToken).ConfigureAwait(false);
        try
        {
            await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var log = await Log!.BeginWriteAsync(connection, tx, emptyLog, cancellationToken).ConfigureAwait(false);
            var result = await work(connection, tx, log).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            log.Committed(this);
            return result;
        }
        finally
        {
            if (restore is not null)
            {
                // The writer's connection keeps its own setting for the transactions after this one.
                await using var pragma = connection.CreateCommand();
                pragma.CommandText = "PRAGMA synchronous = " + restore;
                await pragma.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Sets <c>PRAGMA synchronous = NORMAL</c> when the connection's setting is higher; returns the setting to restore, or null.</summary>
    private static async Task<string?> LowerSynchronousAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous";
        var current = Convert.ToInt64(await pragma.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
        if (current <= 1)
        {
            return null;
        }

        pragma.CommandText = "PRAGMA synchronous = NORMAL";
        await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return current.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The engine's exception for a provider error (see <see cref="DatabaseErrors"/>); sums past the largest long are
    /// <see cref="OverflowException"/>s. Null when the error is not one we translate.
    /// </summary>
    public static Exception? Translate(Exception error) => error switch
    {
        PostgresException { SqlState: PostgresErrorCodes.NumericValueOutOfRange } pg => new OverflowException($"The usage total is past the largest 64-bit number: {pg.MessageText}", pg),
        SqliteException lite when lite.Message.Contains("integer overflow", StringComparison.Ordinal) => new OverflowException("The usage total is past the largest 64-bit number.", lite),
        _ => DatabaseErrors.Translate(error),
    };

    /// <summary>Whether a PostgreSQL error rolled back a transaction that is safe to run again (deadlock, serialization).</summary>
    public static bool IsRetryable(Exception error) =>
        error is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure };

    public static UsageCounterKey Utc(UsageCounterKey key) =>
        key.PeriodStart.Offset == TimeSpan.Zero ? key : key with { PeriodStart = key.PeriodStart.ToUniversalTime() };

    public static string SerializeProperties(IReadOnlyDictionary<string, string>? properties) =>
        properties is null || properties.Count == 0 ? "{}" : JsonSerializer.Serialize(properties);

    public static IReadOnlyDictionary<string, string> DeserializeProperties(string json) =>
        json.Length <= 2 ? NoProperties : JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? NoProperties;

    public static DateTimeOffset FromTicks(long ticks) => new(ticks, TimeSpan.Zero);

    public static DateTimeOffset FromPostgreSql(DateTime utc) => new(DateTime.SpecifyKind(utc, DateTimeKind.Utc));

    public static NpgsqlParameter ArrayParameter<T>(string name, NpgsqlDbType elementType, T[] values) =>
        new NpgsqlParameter<T[]>(name, NpgsqlDbType.Array | elementType) { TypedValue = values };

    public static NpgsqlParameter ValueParameter<T>(string name, NpgsqlDbType type, T value) =>
        new NpgsqlParameter<T>(name, type) { TypedValue = value };

    public static SqliteParameter Parameter(SqliteCommand command, string name, SqliteType type)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.SqliteType = type;
        command.Parameters.Add(parameter);
        return parameter;
    }

    public static object DbValue(object? value) => value ?? DBNull.Value;

    /// <summary>The columns <see cref="ReadEvent"/> reads, in order.</summary>
    public const string EventColumns = "e.customer_id, e.idempotency_key, e.meter_key, e.period_start, e.subscription_id, e.quantity, e.timestamp, e.unique_value, e.properties, e.received_at, e.acceptance_token";

    public StoredUsageEvent ReadEvent(DbDataReader reader)
    {
        var pg = IsPostgreSql;
        DateTimeOffset Instant(int i) => pg ? FromPostgreSql(reader.GetFieldValue<DateTime>(i)) : FromTicks(reader.GetInt64(i));
        return new StoredUsageEvent
        {
            Counter = new UsageCounterKey(reader.GetString(0), reader.GetString(2), Instant(3)),
            IdempotencyKey = reader.GetString(1),
            SubscriptionId = reader.IsDBNull(4) ? null : reader.GetString(4),
            Quantity = reader.GetInt64(5),
            Timestamp = Instant(6),
            UniqueValue = reader.IsDBNull(7) ? null : reader.GetString(7),
            Properties = DeserializeProperties(reader.GetString(8)),
            ReceivedAt = Instant(9),
            AcceptanceToken = reader.IsDBNull(10) ? null : reader.GetInt64(10),
        };
    }

    /// <summary>
    /// The aggregate of a counter's stored events in SQL, by the rules of <see cref="UsageCounterState"/>: sum and
    /// count, max, last by (timestamp, key) descending in ordinal order, distinct non-null unique values. Parameters:
    /// @customer, @meter, @period.
    /// </summary>
    public string AggregateSql(MeterAggregation aggregation)
    {
        var where = $"e.customer_id = @customer AND e.meter_key = @meter AND e.period_start = @period";
        var collate = IsPostgreSql ? " COLLATE \"C\"" : string.Empty;
        return aggregation switch
        {
            MeterAggregation.Sum => $"SELECT COALESCE(SUM(e.quantity), 0) FROM {Events} AS e WHERE {where}",
            MeterAggregation.Count => $"SELECT COUNT(*) FROM {Events} AS e WHERE {where}",
            MeterAggregation.Max => $"SELECT COALESCE(MAX(e.quantity), 0) FROM {Events} AS e WHERE {where}",
            MeterAggregation.Last => $"SELECT COALESCE((SELECT e.quantity FROM {Events} AS e WHERE {where} ORDER BY e.timestamp DESC, e.idempotency_key{collate} DESC LIMIT 1), 0)",
            MeterAggregation.UniqueCount => $"SELECT COUNT(DISTINCT e.unique_value) FROM {Events} AS e WHERE {where}",
            _ => throw new ArgumentOutOfRangeException(nameof(aggregation), aggregation, "Unknown aggregation."),
        };
    }

    /// <summary>Adds @customer, @meter and @period for a counter.</summary>
    public static void AddCounterParameters(DbCommand command, UsageCounterKey counter)
    {
        if (command is NpgsqlCommand pg)
        {
            pg.Parameters.Add(ValueParameter("customer", NpgsqlDbType.Text, counter.CustomerId));
            pg.Parameters.Add(ValueParameter("meter", NpgsqlDbType.Text, counter.MeterKey));
            pg.Parameters.Add(ValueParameter("period", NpgsqlDbType.TimestampTz, counter.PeriodStart.UtcDateTime));
        }
        else
        {
            var lite = (SqliteCommand)command;
            lite.Parameters.Add(new SqliteParameter("@customer", SqliteType.Text) { Value = counter.CustomerId });
            lite.Parameters.Add(new SqliteParameter("@meter", SqliteType.Text) { Value = counter.MeterKey });
            lite.Parameters.Add(new SqliteParameter("@period", SqliteType.Integer) { Value = counter.PeriodStart.UtcTicks });
        }
    }

    /// <summary>An aggregate read from the database as a long; a sum past the largest long overflows.</summary>
    public static long ToTotal(object? value) => value switch
    {
        null or DBNull => 0,
        long l => l,
        int i => i,
        decimal d => checked((long)d),
        _ => Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>A process-local SQLite write turn.</summary>
    public readonly struct WriterTurn(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }
}
