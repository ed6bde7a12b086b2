using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Model;
using Billing.Ports;
using Billing.Usage;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;

namespace Billing.EntityFrameworkCore.Usage;

/// <summary>
/// The durable store as a usage counter: every accepted event is a row of <c>usage_events</c> (the same table as
/// <see cref="EntityFrameworkUsageEventStore"/>) and every counter a row of <c>usage_counters</c>. For hosts without
/// a fast counter (Redis), or as the reference a fast counter is checked against.
/// </summary>
/// <remarks>
/// <para>
/// <b>Atomic per event.</b> The events of a counter are serialized on its <c>usage_counters</c> row: on PostgreSQL a
/// batch is one call of the <c>record_usage_events</c> function (migration 3), one transaction that creates and
/// locks (<c>FOR UPDATE</c>) the batch's counter rows in key order, then for each event checks its key, computes the
/// new total by the rules of <see cref="UsageCounterState"/> (Last from the counter's latest (timestamp, key), unique
/// count by looking the value up in the counter's events), checks the hard limit, inserts the event with the total it
/// produced and updates the counter. On SQLite a batch is one <c>BEGIN IMMEDIATE</c> transaction (writers are
/// serialized) running the same steps; it first moves the usage event log (events
/// <see cref="EntityFrameworkUsageEventStore"/> appended and has not moved into <c>usage_events</c> yet, migration 9)
/// so that its key and unique-value checks see every event; so does <see cref="RebuildAsync"/>. An over-limit event inserts nothing, so its key stays free. Two events with
/// one key racing on two meters of a customer end as one accepted and one duplicate: the table's unique key decides
/// (<c>ON CONFLICT DO NOTHING</c>, then the stored row is read). A PostgreSQL deadlock or serialization failure rolls
/// the whole batch back and it is run again (up to 5 times).
/// </para>
/// <para>
/// <b>Keys are kept for good</b>: the durable store never forgets an accepted event, so an idempotency key stays
/// taken after its dedup window (<see cref="UsageCounterEvent.DedupWindow"/> and
/// <see cref="UsageCounterEvent.CounterRetention"/> are ignored); <see cref="UsageCounterEvent.Now"/> is stored as
/// the event's received time. A duplicate returns the total its original event produced; for an event appended by
/// <see cref="EntityFrameworkUsageEventStore"/> (which keeps no totals) it returns the counter's current total.
/// </para>
/// <para>
/// An event the counter records is stored with "awaiting its append": the first
/// <see cref="EntityFrameworkUsageEventStore.AppendAsync"/> of it reports it as stored and adds its subscription and
/// properties, as the metering service expects of a counter in front of the durable store. Counters count only the
/// events recorded through them: events appended with <see cref="EntityFrameworkUsageEventStore.AppendAsync"/> alone
/// take their keys but do not move a counter until <see cref="RebuildAsync"/>. A batch is one transaction: a sum
/// past <see cref="long.MaxValue"/> throws <see cref="OverflowException"/> and records none of the batch.
/// </para>
/// </remarks>
public sealed class EntityFrameworkUsageCounter : IUsageCounter
{
    private const int Attempts = 5;

    private readonly UsageDatabase _db;
    private readonly string _record;
    private readonly string _total;

    /// <summary>Creates the counter over a configured provider.</summary>
    /// <param name="options">Options with <c>UseNpgsql(connectionString)</c> or <c>UseSqlite(connectionString)</c>.</param>
    /// <param name="schema">The PostgreSQL schema (default <c>billing</c>); ignored on SQLite.</param>
    /// <exception cref="NotSupportedException">The options use another provider, or no connection string.</exception>
    public EntityFrameworkUsageCounter(DbContextOptions options, string? schema = null)
        : this(UsageDatabase.From(options, schema))
    {
    }

    internal EntityFrameworkUsageCounter(UsageDatabase database)
    {
        _db = database;
        _record = $"SELECT o_outcome, o_total FROM {_db.Schema}.record_usage_events(@customer_ids, @meter_keys, @period_starts, @aggregations, @quantities, @keys, @timestamps, @unique_values, @hard_limits, @received_at)";
        _total = $"SELECT c.total FROM {_db.Counters} AS c WHERE c.customer_id = @customer AND c.meter_key = @meter AND c.period_start = @period";
    }

    /// <inheritdoc />
    /// <remarks>
    /// True: an accepted event is a row of <c>usage_events</c> from the moment the counter's transaction commits, so an
    /// append of it reporting "already stored" (a concurrent repeat of the event appended first and completed the
    /// row) never means that the counter forgot the key.
    /// </remarks>
    public bool IsDurable => true;

    /// <summary>The database provider.</summary>
    public BillingDatabaseProvider Provider => _db.Provider;

    /// <summary>The PostgreSQL schema; null on SQLite.</summary>
    public string? Schema => _db.Schema;

    /// <summary>The migrator of this counter's database (the usage tables arrive with version 3).</summary>
    public BillingMigrator Migrator => _db.Migrator;

    /// <summary>Creates the counter on PostgreSQL.</summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    /// <param name="schema">The schema; null for <c>billing</c>.</param>
    /// <returns>The counter.</returns>
    public static EntityFrameworkUsageCounter ForPostgreSql(string connectionString, string? schema = null) =>
        new(new DbContextOptionsBuilder().UseNpgsql(connectionString).Options, schema);

    /// <summary>Creates the counter on SQLite.</summary>
    /// <param name="connectionString">A Microsoft.Data.Sqlite connection string, e.g. <c>Data Source=data/billing.db</c>.</param>
    /// <returns>The counter.</returns>
    public static EntityFrameworkUsageCounter ForSqlite(string connectionString) =>
        new(new DbContextOptionsBuilder().UseSqlite(connectionString).Options);

    /// <summary>Applies pending migrations (see <see cref="BillingMigrator.MigrateAsync"/>).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The versions applied by this call.</returns>
    public Task<IReadOnlyList<int>> MigrateAsync(CancellationToken cancellationToken = default) => Migrator.MigrateAsync(null, cancellationToken);

    /// <inheritdoc />
    public async ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default) =>
        (await RecordBatchAsync([usageEvent], cancellationToken).ConfigureAwait(false))[0];

    /// <inheritdoc />
    /// <remarks>The batch is one transaction; each event is checked and applied on its own, in order.</remarks>
    public async ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return [];
        }

        var batch = new UsageCounterEvent[events.Count];
        for (var i = 0; i < batch.Length; i++)
        {
            var e = events[i];
            UsageCounterEvents.Validate(e);
            if (!Enum.IsDefined(e.Aggregation))
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' has an unknown aggregation.", nameof(events));
            }

            batch[i] = e with { Counter = UsageDatabase.Utc(e.Counter) };
        }

        try
        {
            return _db.IsPostgreSql
                ? await RecordPostgreSqlAsync(batch, cancellationToken).ConfigureAwait(false)
                : await RecordSqliteAsync(batch, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (UsageDatabase.Translate(e) is { } translated)
        {
            throw translated;
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(counter.CustomerId);
        ArgumentNullException.ThrowIfNull(counter.MeterKey);
        try
        {
            if (_db.IsPostgreSql)
            {
                await using var connection = await _db.OpenPostgreSqlAsync(cancellationToken).ConfigureAwait(false);
                await using var command = new NpgsqlCommand(_total, connection);
                UsageDatabase.AddCounterParameters(command, UsageDatabase.Utc(counter));
                return UsageDatabase.ToTotal(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
            }
            else
            {
                await using var connection = await _db.OpenSqliteAsync(cancellationToken).ConfigureAwait(false);
                await using var command = new SqliteCommand(_total, connection);
                UsageDatabase.AddCounterParameters(command, UsageDatabase.Utc(counter));
                return UsageDatabase.ToTotal(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
            }
        }
        catch (Exception e) when (UsageDatabase.Translate(e) is { } translated)
        {
            throw translated;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// <para>
    /// For the durable counter the stored events are the state, so a rebuild makes the counter's stored events those
    /// of <paramref name="events"/>, in one transaction holding the counter's row: stored events of the counter whose
    /// keys are not in the list are deleted (their keys become free), events of the list that are not stored are
    /// inserted (an event whose key is stored for another counter of the customer stays there and is not counted
    /// here), and events stored already keep their stored values. The total is then computed from the stored events
    /// (the query of <see cref="EntityFrameworkUsageEventStore.AggregateAsync"/>), and each listed event's
    /// "total after" becomes the running total of the list folded in order, as a duplicate of it will report.
    /// </para>
    /// <para>Run it when writers of the counter are quiet, as the port says; it never applies hard limits.</para>
    /// </remarks>
    public async ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(counter.CustomerId);
        ArgumentNullException.ThrowIfNull(counter.MeterKey);
        ArgumentNullException.ThrowIfNull(events);
        var key = UsageDatabase.Utc(counter);
        var sql = _db.AggregateSql(aggregation);
        var state = new UsageCounterState();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var list = new List<(UsageCounterEvent Event, long TotalAfter)>(events.Count);
        foreach (var e in events)
        {
            UsageCounterEvents.Validate(e);
            if (UsageDatabase.Utc(e.Counter) != key)
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' belongs to another counter.", nameof(events));
            }

            if (seen.Add(e.IdempotencyKey))
            {
                list.Add((e with { Counter = key }, state.Apply(aggregation, e)));
            }
        }

        try
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    return _db.IsPostgreSql
                        ? await RebuildPostgreSqlAsync(key, sql, list, cancellationToken).ConfigureAwait(false)
                        : await RebuildSqliteAsync(key, sql, list, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (attempt < Attempts && UsageDatabase.IsRetryable(e))
                {
                    // rolled back as a whole: run it again
                }
            }
        }
        catch (Exception e) when (UsageDatabase.Translate(e) is { } translated)
        {
            throw translated;
        }
    }

    // ------------------------------------------------------------------ PostgreSQL

    private async Task<UsageCounterResult[]> RecordPostgreSqlAsync(UsageCounterEvent[] batch, CancellationToken cancellationToken)
    {
        var n = batch.Length;
        var customers = new string[n];
        var meters = new string[n];
        var periods = new DateTime[n];
        var aggregations = new short[n];
        var quantities = new long[n];
        var keys = new string[n];
        var timestamps = new DateTime[n];
        var uniques = new string?[n];
        var limits = new long?[n];
        var received = new DateTime[n];
        for (var i = 0; i < n; i++)
        {
            var e = batch[i];
            customers[i] = e.Counter.CustomerId;
            meters[i] = e.Counter.MeterKey;
            periods[i] = e.Counter.PeriodStart.UtcDateTime;
            aggregations[i] = (short)e.Aggregation;
            quantities[i] = e.Quantity;
            keys[i] = e.IdempotencyKey;
            timestamps[i] = e.Timestamp.UtcDateTime;
            uniques[i] = e.UniqueValue;
            limits[i] = e.HardLimit;
            received[i] = e.Now.UtcDateTime;
        }

        await using var connection = await _db.OpenPostgreSqlAsync(cancellationToken).ConfigureAwait(false);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var command = new NpgsqlCommand(_record, connection);
                command.Parameters.Add(UsageDatabase.ArrayParameter("customer_ids", NpgsqlDbType.Text, customers));
                command.Parameters.Add(UsageDatabase.ArrayParameter("meter_keys", NpgsqlDbType.Text, meters));
                command.Parameters.Add(UsageDatabase.ArrayParameter("period_starts", NpgsqlDbType.TimestampTz, periods));
                command.Parameters.Add(UsageDatabase.ArrayParameter("aggregations", NpgsqlDbType.Smallint, aggregations));
                command.Parameters.Add(UsageDatabase.ArrayParameter("quantities", NpgsqlDbType.Bigint, quantities));
                command.Parameters.Add(UsageDatabase.ArrayParameter("keys", NpgsqlDbType.Text, keys));
                command.Parameters.Add(UsageDatabase.ArrayParameter("timestamps", NpgsqlDbType.TimestampTz, timestamps));
                command.Parameters.Add(UsageDatabase.ArrayParameter("unique_values", NpgsqlDbType.Text, uniques));
                command.Parameters.Add(UsageDatabase.ArrayParameter("hard_limits", NpgsqlDbType.Bigint, limits));
                command.Parameters.Add(UsageDatabase.ArrayParameter("received_at", NpgsqlDbType.TimestampTz, received));
                var results = new UsageCounterResult[n];
                var count = 0;
                await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        results[count++] = new UsageCounterResult((UsageOutcome)reader.GetInt16(0), reader.GetInt64(1));
                    }
                }

                return count == n ? results : throw new InvalidOperationException($"record_usage_events returned {count} results for {n} events.");
            }
            catch (PostgresException e) when (attempt < Attempts && UsageDatabase.IsRetryable(e))
            {
                // The call was one transaction and rolled back as a whole: run it again.
            }
        }
    }

    private async Task<long> RebuildPostgreSqlAsync(UsageCounterKey counter, string aggregateSql, List<(UsageCounterEvent Event, long TotalAfter)> list, CancellationToken cancellationToken)
    {
        var n = list.Count;
        var keys = new string[n];
        var quantities = new long[n];
        var timestamps = new DateTime[n];
        var uniques = new string?[n];
        var received = new DateTime[n];
        var totals = new long[n];
        for (var i = 0; i < n; i++)
        {
            var (e, after) = list[i];
            keys[i] = e.IdempotencyKey;
            quantities[i] = e.Quantity;
            timestamps[i] = e.Timestamp.UtcDateTime;
            uniques[i] = e.UniqueValue;
            received[i] = e.Now.UtcDateTime;
            totals[i] = after;
        }

        await using var connection = await _db.OpenPostgreSqlAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var where = "customer_id = @customer AND meter_key = @meter AND period_start = @period";
        var sql = $"""
            INSERT INTO {_db.Counters} (customer_id, meter_key, period_start, total) VALUES (@customer, @meter, @period, 0) ON CONFLICT DO NOTHING;
            SELECT 1 FROM {_db.Counters} WHERE {where} FOR UPDATE;
            DELETE FROM {_db.Events} WHERE {where} AND NOT (idempotency_key = ANY (@keys));
            INSERT INTO {_db.Events} (customer_id, idempotency_key, meter_key, period_start, quantity, timestamp, unique_value, received_at, total_after, appended)
            SELECT @customer, u.key, @meter, @period, u.quantity, u.timestamp, u.unique_value, u.received_at, u.total, false
            FROM unnest(@keys, @quantities, @timestamps, @unique_values, @received_at, @totals) AS u(key, quantity, timestamp, unique_value, received_at, total)
            ON CONFLICT (customer_id, idempotency_key) DO NOTHING;
            UPDATE {_db.Events} AS e SET total_after = u.total
            FROM unnest(@keys, @totals) AS u(key, total)
            WHERE e.customer_id = @customer AND e.idempotency_key = u.key AND e.meter_key = @meter AND e.period_start = @period;
            """;
        await using (var command = new NpgsqlCommand(sql, connection, tx))
        {
            UsageDatabase.AddCounterParameters(command, counter);
            command.Parameters.Add(UsageDatabase.ArrayParameter("keys", NpgsqlDbType.Text, keys));
            command.Parameters.Add(UsageDatabase.ArrayParameter("quantities", NpgsqlDbType.Bigint, quantities));
            command.Parameters.Add(UsageDatabase.ArrayParameter("timestamps", NpgsqlDbType.TimestampTz, timestamps));
            command.Parameters.Add(UsageDatabase.ArrayParameter("unique_values", NpgsqlDbType.Text, uniques));
            command.Parameters.Add(UsageDatabase.ArrayParameter("received_at", NpgsqlDbType.TimestampTz, received));
            command.Parameters.Add(UsageDatabase.ArrayParameter("totals", NpgsqlDbType.Bigint, totals));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        long total;
        await using (var command = new NpgsqlCommand(aggregateSql, connection, tx))
        {
            UsageDatabase.AddCounterParameters(command, counter);
            total = UsageDatabase.ToTotal(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
        }

        await using (var command = new NpgsqlCommand(
            $"""
            UPDATE {_db.Counters} AS c SET total = @total, last_timestamp = l.timestamp, last_key = l.idempotency_key
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL (
                SELECT e.timestamp, e.idempotency_key FROM {_db.Events} AS e
                WHERE e.customer_id = @customer AND e.meter_key = @meter AND e.period_start = @period
                ORDER BY e.timestamp DESC, e.idempotency_key COLLATE "C" DESC LIMIT 1) AS l ON true
            WHERE c.customer_id = @customer AND c.meter_key = @meter AND c.period_start = @period
            """,
            connection,
            tx))
        {
            UsageDatabase.AddCounterParameters(command, counter);
            command.Parameters.Add(UsageDatabase.ValueParameter("total", NpgsqlDbType.Bigint, total));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return total;
    }

    // ------------------------------------------------------------------ SQLite

    private async Task<UsageCounterResult[]> RecordSqliteAsync(UsageCounterEvent[] batch, CancellationToken cancellationToken)
    {
        return await _db.WriteSqliteAsync(
            emptyLog: true,
            async (connection, tx, _) =>
            {
                await using var statements = new SqliteStatements(_db, connection, tx);
                var results = new UsageCounterResult[batch.Length];
                for (var i = 0; i < batch.Length; i++)
                {
                    results[i] = await statements.RecordAsync(batch[i], cancellationToken).ConfigureAwait(false);
                }

                return results;
            },
            cancellationToken).ConfigureAwait(false);
    }

    private Task<long> RebuildSqliteAsync(UsageCounterKey counter, string aggregateSql, List<(UsageCounterEvent Event, long TotalAfter)> list, CancellationToken cancellationToken) =>
        _db.WriteSqliteAsync(emptyLog: true, (connection, tx, _) => RebuildSqliteAsync(connection, tx, counter, aggregateSql, list, cancellationToken), cancellationToken);

    private async Task<long> RebuildSqliteAsync(SqliteConnection connection, SqliteTransaction tx, UsageCounterKey counter, string aggregateSql, List<(UsageCounterEvent Event, long TotalAfter)> list, CancellationToken cancellationToken)
    {
        var where = "customer_id = @customer AND meter_key = @meter AND period_start = @period";
        await using (var delete = new SqliteCommand($"DELETE FROM {_db.Events} WHERE {where} AND idempotency_key NOT IN (SELECT value FROM json_each(@keys))", connection, tx))
        {
            UsageDatabase.AddCounterParameters(delete, counter);
            delete.Parameters.Add(new SqliteParameter("@keys", SqliteType.Text) { Value = System.Text.Json.JsonSerializer.Serialize(list.Select(x => x.Event.IdempotencyKey)) });
            await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var insert = new SqliteCommand(
            $"""
            INSERT INTO {_db.Events} (customer_id, idempotency_key, meter_key, period_start, quantity, timestamp, unique_value, received_at, total_after, appended)
            VALUES (@customer, @key, @meter, @period, @quantity, @timestamp, @unique_value, @received_at, @total, 0)
            ON CONFLICT (customer_id, idempotency_key) DO UPDATE SET total_after = excluded.total_after
            WHERE usage_events.meter_key = excluded.meter_key AND usage_events.period_start = excluded.period_start
            """,
            connection,
            tx))
        {
            UsageDatabase.AddCounterParameters(insert, counter);
            var key = UsageDatabase.Parameter(insert, "@key", SqliteType.Text);
            var quantity = UsageDatabase.Parameter(insert, "@quantity", SqliteType.Integer);
            var timestamp = UsageDatabase.Parameter(insert, "@timestamp", SqliteType.Integer);
            var unique = UsageDatabase.Parameter(insert, "@unique_value", SqliteType.Text);
            var received = UsageDatabase.Parameter(insert, "@received_at", SqliteType.Integer);
            var total = UsageDatabase.Parameter(insert, "@total", SqliteType.Integer);
            foreach (var (e, after) in list)
            {
                key.Value = e.IdempotencyKey;
                quantity.Value = e.Quantity;
                timestamp.Value = e.Timestamp.UtcTicks;
                unique.Value = UsageDatabase.DbValue(e.UniqueValue);
                received.Value = e.Now.UtcTicks;
                total.Value = after;
                await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        long result;
        await using (var aggregate = new SqliteCommand(aggregateSql, connection, tx))
        {
            UsageDatabase.AddCounterParameters(aggregate, counter);
            result = UsageDatabase.ToTotal(await aggregate.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
        }

        await using (var update = new SqliteCommand(
            $"""
            INSERT INTO {_db.Counters} (customer_id, meter_key, period_start, total, last_timestamp, last_key)
            SELECT @customer, @meter, @period, @total, l.timestamp, l.idempotency_key
            FROM (SELECT 1) LEFT JOIN (
                SELECT e.timestamp, e.idempotency_key FROM {_db.Events} AS e
                WHERE e.customer_id = @customer AND e.meter_key = @meter AND e.period_start = @period
                ORDER BY e.timestamp DESC, e.idempotency_key DESC LIMIT 1) AS l ON 1
            WHERE true
            ON CONFLICT (customer_id, meter_key, period_start) DO UPDATE
            SET total = excluded.total, last_timestamp = excluded.last_timestamp, last_key = excluded.last_key
            """,
            connection,
            tx))
        {
            UsageDatabase.AddCounterParameters(update, counter);
            update.Parameters.Add(new SqliteParameter("@total", SqliteType.Integer) { Value = result });
            await update.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>The prepared statements of one SQLite batch, reused for each event.</summary>
    private sealed class SqliteStatements : IAsyncDisposable
    {
        private readonly SqliteCommand _findKey;
        private readonly SqliteCommand _readCounter;
        private readonly SqliteCommand _hasValue;
        private readonly SqliteCommand _insert;
        private readonly SqliteCommand _writeCounter;

        public SqliteStatements(UsageDatabase db, SqliteConnection connection, SqliteTransaction tx)
        {
            _findKey = new SqliteCommand($"SELECT total_after FROM {db.Events} WHERE customer_id = @customer AND idempotency_key = @key", connection, tx);
            _readCounter = new SqliteCommand($"SELECT total, last_timestamp, last_key FROM {db.Counters} WHERE customer_id = @customer AND meter_key = @meter AND period_start = @period", connection, tx);
            _hasValue = new SqliteCommand($"SELECT EXISTS (SELECT 1 FROM {db.Events} WHERE customer_id = @customer AND meter_key = @meter AND period_start = @period AND unique_value = @unique_value)", connection, tx);
            _insert = new SqliteCommand(
                $"""
                INSERT INTO {db.Events} (customer_id, idempotency_key, meter_key, period_start, quantity, timestamp, unique_value, received_at, total_after, appended)
                VALUES (@customer, @key, @meter, @period, @quantity, @timestamp, @unique_value, @received_at, @total, 0)
                ON CONFLICT (customer_id, idempotency_key) DO NOTHING
                """,
                connection,
                tx);
            _writeCounter = new SqliteCommand(
                $"""
                INSERT INTO {db.Counters} (customer_id, meter_key, period_start, total, last_timestamp, last_key)
                VALUES (@customer, @meter, @period, @total, @last_timestamp, @last_key)
                ON CONFLICT (customer_id, meter_key, period_start) DO UPDATE
                SET total = excluded.total, last_timestamp = excluded.last_timestamp, last_key = excluded.last_key
                """,
                connection,
                tx);
        }

        public async Task<UsageCounterResult> RecordAsync(UsageCounterEvent e, CancellationToken cancellationToken)
        {
            var c = e.Counter;
            var (total, lastTicks, lastKey) = await ReadCounterAsync(c, cancellationToken).ConfigureAwait(false);
            Set(_findKey, ("@customer", c.CustomerId), ("@key", e.IdempotencyKey));
            await using (var reader = await _findKey.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return new UsageCounterResult(UsageOutcome.Duplicate, reader.IsDBNull(0) ? total : reader.GetInt64(0));
                }
            }

            var later = false;
            long candidate;
            switch (e.Aggregation)
            {
                case MeterAggregation.Sum:
                    candidate = checked(total + e.Quantity);
                    break;
                case MeterAggregation.Count:
                    candidate = checked(total + 1);
                    break;
                case MeterAggregation.Max:
                    candidate = Math.Max(total, e.Quantity);
                    break;
                case MeterAggregation.Last:
                    var ticks = e.Timestamp.UtcTicks;
                    later = lastTicks is not { } last || ticks > last || (ticks == last && string.CompareOrdinal(e.IdempotencyKey, lastKey) > 0);
                    candidate = later ? e.Quantity : total;
                    break;
                default:
                    Set(_hasValue, ("@customer", c.CustomerId), ("@meter", c.MeterKey), ("@period", c.PeriodStart.UtcTicks), ("@unique_value", e.UniqueValue));
                    var seen = Convert.ToInt64(await _hasValue.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture) != 0;
                    candidate = seen ? total : checked(total + 1);
                    break;
            }

            if (e.HardLimit is { } limit && candidate > limit)
            {
                return new UsageCounterResult(UsageOutcome.OverLimit, total);
            }

            Set(
                _insert,
                ("@customer", c.CustomerId),
                ("@key", e.IdempotencyKey),
                ("@meter", c.MeterKey),
                ("@period", c.PeriodStart.UtcTicks),
                ("@quantity", e.Quantity),
                ("@timestamp", e.Timestamp.UtcTicks),
                ("@unique_value", e.UniqueValue),
                ("@received_at", e.Now.UtcTicks),
                ("@total", candidate));
            if (await _insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                // Unreachable while writers are serialized; kept so that the unique key always has the last word.
                return new UsageCounterResult(UsageOutcome.Duplicate, total);
            }

            Set(
                _writeCounter,
                ("@customer", c.CustomerId),
                ("@meter", c.MeterKey),
                ("@period", c.PeriodStart.UtcTicks),
                ("@total", candidate),
                ("@last_timestamp", later ? e.Timestamp.UtcTicks : lastTicks),
                ("@last_key", later ? e.IdempotencyKey : lastKey));
            await _writeCounter.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return new UsageCounterResult(UsageOutcome.Accepted, candidate);
        }

        public async ValueTask DisposeAsync()
        {
            await _findKey.DisposeAsync().ConfigureAwait(false);
            await _readCounter.DisposeAsync().ConfigureAwait(false);
            await _hasValue.DisposeAsync().ConfigureAwait(false);
            await _insert.DisposeAsync().ConfigureAwait(false);
            await _writeCounter.DisposeAsync().ConfigureAwait(false);
        }

        private async Task<(long Total, long? LastTicks, string? LastKey)> ReadCounterAsync(UsageCounterKey c, CancellationToken cancellationToken)
        {
            Set(_readCounter, ("@customer", c.CustomerId), ("@meter", c.MeterKey), ("@period", c.PeriodStart.UtcTicks));
            await using var reader = await _readCounter.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                ? (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2))
                : (0, null, null);
        }

        private static void Set(SqliteCommand command, params (string Name, object? Value)[] values)
        {
            foreach (var (name, value) in values)
            {
                var index = command.Parameters.IndexOf(name);
                if (index < 0)
                {
                    command.Parameters.Add(new SqliteParameter(name, value ?? DBNull.Value));
                }
                else
                {
                    command.Parameters[index].Value = value ?? DBNull.Value;
                }
            }
        }
    }
}
