using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Billing.Usage;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Billing.EntityFrameworkCore.Usage;

/// <summary>
/// This process's state of one SQLite usage database (file): the writer turn and the append-only event log
/// (<c>usage_event_log</c>, migration 9) in front of <c>usage_events</c>, with the map of the events it holds.
/// </summary>
/// <remarks>
/// <para>
/// <b>Why.</b> SQLite's write-ahead log holds whole pages. Inserting an event into <c>usage_events</c> dirties a random
/// page of its primary key (customer, idempotency key) and one of its counter index, so a group commit of a few
/// hundred events wrote about two 4 KiB pages per event, and the checkpoint copied them again. Appending to the log
/// (a rowid table without secondary index) fills a few new pages per commit instead; the rows are then moved into
/// <c>usage_events</c> in large transactions, in key order, where each random index page is written once for many
/// events.
/// </para>
/// <para>
/// <b>The owner.</b> One process at a time uses the log: the one holding an exclusive lock on the file
/// <c>&lt;database&gt;-usagelog</c> next to the database (taken at the first write turn, retried at most once a second
/// by processes that did not get it, and kept until the process ends). The owner's in-memory map holds every row of
/// the log (added when the append commits, removed when the move commits; both under the writer turn), so an append
/// checks a key against the map and a primary-key read of <c>usage_events</c> without reading the log. A process
/// that is not the owner moves the whole log into <c>usage_events</c> at the start of each of its write transactions
/// and before its reads when the log has rows, then works on <c>usage_events</c> directly as before version 9; the
/// owner's map may then name keys that were moved already, which only makes its later moves find fewer rows. A new
/// owner (a restart after a crash, or the next process after the owner ended) moves the rows it finds in the log
/// before anything else: they were committed (and synced) before their appends answered. Keys freed in
/// <c>usage_events</c> by another process (<see cref="EntityFrameworkUsageCounter.RebuildAsync"/> deleting events)
/// can stay taken in the owner's map until its next move. File locks are advisory: with
/// <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING</c> set, several processes writing one file would each take the log.
/// </para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "One per database file for the life of the process: the lock file is held until the process ends.")]
internal sealed class SqliteUsageLog
{
    /// <summary>How many events the owner's log holds before a background task moves them (see <see cref="MoveThreshold"/>).</summary>
    /// <remarks>
    /// A move sorts the log by key and writes it in chunks of <see cref="DefaultMoveChunk"/>: the more events a move
    /// takes, the narrower the range of keys a chunk covers and the fewer index pages it writes per event. In the sample
    /// host's benchmark (embedded, 8 writers × 100 events, quiet 2-core machine) 262,144 took 41.6k–48.0k events/s at
    /// 2.5–2.9 KB written per event, against 33.7k–42.3k and 3.4 KB with 65,536; the host's peak memory was about
    /// 750 MiB with either (the log's map holds each pending event until it is moved).
    /// </remarks>
    public const int DefaultMoveThreshold = 262_144;

    /// <summary>How many events (in key order) one move transaction takes (see <see cref="MoveChunk"/>).</summary>
    /// <remarks>
    /// A larger chunk writes each index page it touches once for more events, and holds the writer turn longer (appends
    /// wait for it). In the sample host's benchmark (embedded, 30 s runs on a quiet 2-core machine, the writer on its own
    /// connection) 2,048 took 41.4k / 42.5k events/s at 4.0–4.1 KB written per event (p99 175 ms), 8,192 45.9k (2.8 KB,
    /// p99 175 ms), 16,384 59.9k (2.2 KB, p99 237 ms) and 32,768 56.2k (2.2 KB, p99 403 ms).
    /// </remarks>
    public const int DefaultMoveChunk = 16_384;

    /// <summary>The columns an append writes, in the log and in usage_events.</summary>
    public const string Columns = "customer_id, idempotency_key, meter_key, period_start, subscription_id, quantity, timestamp, unique_value, properties, received_at, acceptance_token";

    private const string MoveAllSql = $"""
        INSERT INTO usage_events ({Columns})
        SELECT {Columns} FROM usage_event_log WHERE true ORDER BY customer_id, idempotency_key
        ON CONFLICT (customer_id, idempotency_key) DO NOTHING;
        DELETE FROM usage_event_log;
        """;

    private const string MoveChunkSql = $"""
        INSERT INTO usage_events ({Columns})
        SELECT l.customer_id, l.idempotency_key, l.meter_key, l.period_start, l.subscription_id, l.quantity, l.timestamp, l.unique_value, l.properties, l.received_at, l.acceptance_token
        FROM json_each(@seqs) AS j CROSS JOIN usage_event_log AS l WHERE l.seq = j.value
        ON CONFLICT (customer_id, idempotency_key) DO NOTHING;
        DELETE FROM usage_event_log WHERE seq IN (SELECT value FROM json_each(@seqs));
        """;

    private static readonly ConcurrentDictionary<string, SqliteUsageLog> Files = new(StringComparer.Ordinal);

    /// <summary>Guards the maps for readers that do not hold the writer turn (writers change them under both).</summary>
    private readonly object _gate = new();
    private readonly Dictionary<(string CustomerId, string IdempotencyKey), Pending> _pending = [];
    private readonly Dictionary<UsageCounterKey, int> _pendingPerCounter = [];
    private readonly SemaphoreSlim _moveGate = new(1, 1);
    private readonly string? _lockPath;
    private FileStream? _lock;
    private volatile bool _owner;
    private volatile bool _recovered;
    private volatile bool _tableExists;
    private SqliteConnection? _writerConnection;
    private readonly Dictionary<string, sqlite3_stmt> _prepared = new(StringComparer.Ordinal);
    private long _nextLockAttempt;
    private long _maxSeq;
    private int _moving;

    private SqliteUsageLog(string? lockPath)
    {
        _lockPath = lockPath;
        _owner = lockPath is null; // a private in-memory database: no other process can open it
    }

    /// <summary>
    /// The writer's connection to the file, opened by <paramref name="open"/> at the first write and kept (call under the
    /// writer turn). One connection keeps its page cache warm from one write transaction to the next: SQLite drops a
    /// connection's whole cache when another connection has written the file since its last transaction, which a pooled
    /// connection shared with readers and other writers keeps doing.
    /// </summary>
    public async Task<SqliteConnection> WriterConnectionAsync(Func<CancellationToken, Task<SqliteConnection>> open, CancellationToken cancellationToken)
    {
        if (_writerConnection is { State: System.Data.ConnectionState.Open } kept)
        {
            return kept;
        }

        if (_writerConnection is { } broken)
        {
            CloseWriterConnection(broken);
        }

        return _writerConnection = await open(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A statement prepared on the writer connection (call under the writer turn with that connection), kept until the
    /// connection is: the caller binds, steps and resets it through SQLite's API.
    /// </summary>
    public sqlite3_stmt Prepared(SqliteConnection connection, string sql)
    {
        if (!ReferenceEquals(connection, _writerConnection))
        {
            throw new InvalidOperationException("Statements are prepared on the writer connection only.");
        }

        if (_prepared.TryGetValue(sql, out var statement))
        {
            return statement;
        }

        var rc = raw.sqlite3_prepare_v2(connection.Handle, sql, out statement);
        if (rc != raw.SQLITE_OK)
        {
            var error = Error(connection.Handle!, rc);
            statement.Dispose();
            throw error;
        }

        _prepared[sql] = statement;
        return statement;
    }

    /// <summary>The provider's exception for a result code of a call through SQLite's API on <paramref name="db"/>.</summary>
    public static SqliteException Error(sqlite3 db, int rc) =>
        new($"SQLite Error {rc}: '{raw.sqlite3_errmsg(db).utf8_to_string()}'.", rc, raw.sqlite3_extended_errcode(db));

    /// <summary>Finalizes the prepared statements and closes the writer connection.</summary>
    private void CloseWriterConnection(SqliteConnection connection)
    {
        foreach (var statement in _prepared.Values)
        {
            statement.Dispose();
        }

        _prepared.Clear();
        connection.Dispose();
        _writerConnection = null;
    }

    /// <summary>The writer turn of the file: this process's SQLite writers take turns (SQLite has one writer at a time anyway).</summary>
    public SemaphoreSlim Writer { get; } = new(1, 1);

    /// <summary>How many events the log holds before a background task moves them into usage_events.</summary>
    public int MoveThreshold { get; set; } = DefaultMoveThreshold;

    /// <summary>How many events one move transaction takes (the writer turn is given back between transactions).</summary>
    public int MoveChunk { get; set; } = DefaultMoveChunk;

    /// <summary>Whether this process appends to the log: it owns it and has moved the rows a former owner left.</summary>
    public bool IsActive => _owner && _recovered;

    /// <summary>How many events this process's log holds (owner only; 0 otherwise).</summary>
    public int PendingCount
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>The state of the database a SQLite connection string names (one per file in this process).</summary>
    public static SqliteUsageLog For(string connectionString)
    {
        var (key, lockPath) = KeyOf(connectionString);
        return Files.GetOrAdd(key, _ => new SqliteUsageLog(lockPath));
    }

    /// <summary>
    /// Tests: forgets this process's state of a database as if the process ended (waits for a running move, gives the
    /// lock file back, drops the map); the rows of the log stay in the database for the next owner.
    /// </summary>
    public static async Task ForgetAsync(string connectionString)
    {
        if (Files.TryRemove(KeyOf(connectionString).Key, out var log))
        {
            await log._moveGate.WaitAsync().ConfigureAwait(false);
            await log.Writer.WaitAsync().ConfigureAwait(false);
            if (log._writerConnection is { } connection)
            {
                log.CloseWriterConnection(connection);
            }

            if (log._lock is { } file)
            {
                await file.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The path of the lock file of a database file.</summary>
    public static string LockPathOf(string databaseFile) => Path.GetFullPath(databaseFile) + "-usagelog";

    /// <summary>
    /// Starts a write transaction's use of the log (under the writer turn, inside the transaction): takes the log when
    /// it is free, moves what it must (see the class remarks) and says whether appends go to the log. Call
    /// <see cref="LogWrite.Committed"/> after the commit.
    /// </summary>
    /// <param name="connection">The transaction's connection.</param>
    /// <param name="tx">The transaction.</param>
    /// <param name="emptyLog">The caller reads usage_events for keys (the durable counter): the whole log is moved first.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async ValueTask<LogWrite> BeginWriteAsync(SqliteConnection connection, SqliteTransaction tx, bool emptyLog, CancellationToken cancellationToken)
    {
        if (!_tableExists && !(_tableExists = await TableExistsAsync(connection, tx, cancellationToken).ConfigureAwait(false)))
        {
            return new LogWrite(this, false, false, false); // a database before version 9: usage_events only
        }

        TryOwn();
        if (!_owner)
        {
            await MoveAllAsync(connection, tx, cancellationToken).ConfigureAwait(false);
            return new LogWrite(this, false, false, false);
        }

        if (!_recovered || (emptyLog && _pending.Count > 0))
        {
            await MoveAllAsync(connection, tx, cancellationToken).ConfigureAwait(false);
            return new LogWrite(this, !emptyLog, true, true);
        }

        return new LogWrite(this, !emptyLog, false, true);
    }

    /// <summary>Whether the key is in this process's log (call under the writer turn, which is when the map changes).</summary>
    public bool IsPendingUnderTurn(string customerId, string idempotencyKey) => _pending.ContainsKey((customerId, idempotencyKey));

    /// <summary>The event with this key in this process's log, as a read of usage_events would return it; null when none.</summary>
    public StoredUsageEvent? FindPending(string customerId, string idempotencyKey)
    {
        Pending pending;
        lock (_gate)
        {
            if (!_pending.TryGetValue((customerId, idempotencyKey), out pending))
            {
                return null;
            }
        }

        var e = pending.Event;
        return e with
        {
            Counter = new UsageCounterKey(e.Counter.CustomerId, e.Counter.MeterKey, UsageDatabase.FromTicks(e.Counter.PeriodStart.UtcTicks)),
            Timestamp = UsageDatabase.FromTicks(e.Timestamp.UtcTicks),
            ReceivedAt = UsageDatabase.FromTicks(e.ReceivedAt.UtcTicks),
            Properties = UsageDatabase.DeserializeProperties(pending.Properties),
            CountedAsNew = false,
        };
    }

    /// <summary>
    /// Before a read of usage_events that must see every event appended so far: moves the log when it may hold events
    /// the read needs (the owner: events of <paramref name="counter"/>, or of any counter of
    /// <paramref name="periodStart"/>, or any event when both are null; another process: any row of the log).
    /// </summary>
    public async ValueTask BeforeReadAsync(UsageDatabase db, UsageCounterKey? counter, DateTimeOffset? periodStart, CancellationToken cancellationToken)
    {
        if (IsActive)
        {
            long upTo;
            lock (_gate)
            {
                var needed = counter is { } c ? _pendingPerCounter.ContainsKey(c)
                    : periodStart is { } p ? _pendingPerCounter.Keys.Any(k => k.PeriodStart == p)
                    : _pending.Count > 0;
                if (!needed)
                {
                    return;
                }

                upTo = _maxSeq;
            }

            await MoveAsync(db, upTo, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Not (yet) appending here: the log may hold another process's rows, or those a crashed owner left.
        await using (var connection = await db.OpenSqliteAsync(cancellationToken).ConfigureAwait(false))
        {
            if ((!_tableExists && !(_tableExists = await TableExistsAsync(connection, null, cancellationToken).ConfigureAwait(false)))
                || !await HasRowsAsync(connection, null, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }

        await db.WriteSqliteAsync(emptyLog: true, static (_, _, _) => Task.FromResult(true), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Moves the owner's events with a sequence number up to <paramref name="upTo"/> into usage_events: in key order,
    /// <see cref="MoveChunk"/> events per transaction, each transaction in its own writer turn (so appends go on
    /// between them). One move at a time; events moved meanwhile by a whole-log move are skipped.
    /// </summary>
    public async Task MoveAsync(UsageDatabase db, long upTo, CancellationToken cancellationToken)
    {
        await _moveGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            List<((string CustomerId, string IdempotencyKey) Key, long Seq)> moving;
            lock (_gate)
            {
                moving = new(_pending.Count);
                foreach (var (key, pending) in _pending)
                {
                    if (pending.Seq <= upTo)
                    {
                        moving.Add((key, pending.Seq));
                    }
                }
            }

            moving.Sort(static (a, b) =>
            {
                var byCustomer = string.CompareOrdinal(a.Key.CustomerId, b.Key.CustomerId);
                return byCustomer != 0 ? byCustomer : string.CompareOrdinal(a.Key.IdempotencyKey, b.Key.IdempotencyKey);
            });
            var chunk = Math.Max(1, MoveChunk);
            for (var from = 0; from < moving.Count; from += chunk)
            {
                var part = moving.GetRange(from, Math.Min(chunk, moving.Count - from));
                var rest = await db.WriteSqliteAsync(emptyLog: false, (connection, tx, write) => MoveChunkAsync(connection, tx, write, part, cancellationToken), cancellationToken, syncCommit: false).ConfigureAwait(false);
                if (!rest)
                {
                    return;
                }
            }
        }
        finally
        {
            _moveGate.Release();
        }
    }

    /// <summary>
    /// One move transaction: the events <paramref name="part"/> names go from the log into usage_events; the map forgets
    /// them when the transaction commits. False when nothing of the log is left to move (the transaction moved the
    /// whole log, or the log is not this process's any more).
    /// </summary>
    private static async Task<bool> MoveChunkAsync(SqliteConnection connection, SqliteTransaction tx, LogWrite write, List<((string CustomerId, string IdempotencyKey) Key, long Seq)> part, CancellationToken cancellationToken)
    {
        if (write.MovesAll || !write.UsesLog)
        {
            return false;
        }

        var seqs = new StringBuilder(part.Count * 8).Append('[');
        for (var i = 0; i < part.Count; i++)
        {
            seqs.Append(i == 0 ? string.Empty : ",").Append(part[i].Seq.ToString(CultureInfo.InvariantCulture));
        }

        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = MoveChunkSql;
        command.Parameters.Add(new SqliteParameter("@seqs", SqliteType.Text) { Value = seqs.Append(']').ToString() });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        write.Moved(part);
        return true;
    }

    private static (string Key, string? LockPath) KeyOf(string connectionString)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString);
        var file = builder.DataSource;
        return string.IsNullOrEmpty(file) || file.StartsWith(':') || builder.Mode == SqliteOpenMode.Memory
            ? (connectionString, null)
            : (Path.GetFullPath(file), LockPathOf(file));
    }

    private static async Task<bool> TableExistsAsync(SqliteConnection connection, SqliteTransaction? tx, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_event_log')";
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) != 0;
    }

    private static async Task<bool> HasRowsAsync(SqliteConnection connection, SqliteTransaction? tx, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT EXISTS (SELECT 1 FROM usage_event_log)";
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) != 0;
    }

    /// <summary>Moves every row of the log into usage_events, in key order (a key stored already keeps its row).</summary>
    private static async Task MoveAllAsync(SqliteConnection connection, SqliteTransaction tx, CancellationToken cancellationToken)
    {
        if (!await HasRowsAsync(connection, tx, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = MoveAllSql;
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private void TryOwn()
    {
        if (_owner || Environment.TickCount64 < _nextLockAttempt)
        {
            return;
        }

        _nextLockAttempt = Environment.TickCount64 + 1_000;
        try
        {
            _lock = new FileStream(_lockPath!, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            _owner = true;
        }
        catch (IOException)
        {
            // another process owns the log
        }
        catch (UnauthorizedAccessException)
        {
            // no lock file can be made next to the database: this process never owns the log
        }
    }

    /// <summary>
    /// Starts the background move unless it runs: it moves the log while it holds <see cref="MoveThreshold"/> events or
    /// more (appends go on meanwhile). A failed move leaves the events in the log, as durable as before; the next
    /// append past the threshold, or a read that needs them, moves them.
    /// </summary>
    private void StartBackgroundMove(UsageDatabase db)
    {
        if (Interlocked.CompareExchange(ref _moving, 1, 0) != 0)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            var failed = false;
            try
            {
                while (NextMove() is { } upTo)
                {
                    await MoveAsync(db, upTo, CancellationToken.None).ConfigureAwait(false);
                }
            }
#pragma warning disable CA1031 // see the summary: the events stay in the log
            catch (Exception)
#pragma warning restore CA1031
            {
                failed = true;
            }
            finally
            {
                Volatile.Write(ref _moving, 0);
            }

            if (!failed && NextMove() is not null)
            {
                StartBackgroundMove(db); // an append passed the threshold while the last move ended
            }
        });
    }

    /// <summary>The sequence number to move up to when the log holds <see cref="MoveThreshold"/> events or more; otherwise null.</summary>
    private long? NextMove()
    {
        lock (_gate)
        {
            return _pending.Count >= MoveThreshold ? _maxSeq : null;
        }
    }

    /// <summary>Call under <see cref="_gate"/>.</summary>
    private void Remove((string CustomerId, string IdempotencyKey) key, Pending pending)
    {
        _pending.Remove(key);
        var counter = pending.Counter;
        if (_pendingPerCounter[counter] == 1)
        {
            _pendingPerCounter.Remove(counter);
        }
        else
        {
            _pendingPerCounter[counter]--;
        }
    }

    /// <summary>An event in the log: its sequence number, the appended event and its serialized properties.</summary>
    private readonly record struct Pending(long Seq, StoredUsageEvent Event, string Properties)
    {
        public UsageCounterKey Counter => UsageDatabase.Utc(Event.Counter);
    }

    /// <summary>One write transaction's use of the log; <see cref="Committed"/> applies it to the map after the commit.</summary>
    public sealed class LogWrite
    {
        private readonly SqliteUsageLog _log;
        private readonly bool _owns;
        private List<Pending>? _added;
        private List<((string CustomerId, string IdempotencyKey) Key, long Seq)>? _moved;

        internal LogWrite(SqliteUsageLog log, bool usesLog, bool movesAll, bool owns)
        {
            _log = log;
            _owns = owns;
            UsesLog = usesLog;
            MovesAll = movesAll;
        }

        /// <summary>Whether the transaction appends accepted events to the log (otherwise to usage_events).</summary>
        public bool UsesLog { get; }

        /// <summary>Whether the transaction moved the whole log.</summary>
        public bool MovesAll { get; }

        /// <summary>Records the events (key and sequence number) the transaction moved from the log into usage_events.</summary>
        public void Moved(List<((string CustomerId, string IdempotencyKey) Key, long Seq)> moved) => _moved = moved;

        /// <summary>Records an event the transaction appended to the log with this sequence number.</summary>
        public void Added(long seq, StoredUsageEvent e, string properties) => (_added ??= []).Add(new Pending(seq, e, properties));

        /// <summary>
        /// After the commit (still under the writer turn): the map forgets what was moved and learns what was
        /// appended; a background move starts when the log passed <see cref="MoveThreshold"/>.
        /// </summary>
        public void Committed(UsageDatabase db)
        {
            var log = _log;
            bool move;
            lock (log._gate)
            {
                if (MovesAll)
                {
                    log._pending.Clear();
                    log._pendingPerCounter.Clear();
                }

                if (_owns)
                {
                    log._recovered = true; // the rows a former owner left were moved (now or before)
                }

                foreach (var (key, seq) in _moved ?? [])
                {
                    if (log._pending.TryGetValue(key, out var pending) && pending.Seq == seq)
                    {
                        log.Remove(key, pending);
                    }
                }

                foreach (var pending in _added ?? [])
                {
                    log._pending.Add((pending.Event.Counter.CustomerId, pending.Event.IdempotencyKey), pending);
                    var counter = pending.Counter;
                    log._pendingPerCounter[counter] = log._pendingPerCounter.GetValueOrDefault(counter) + 1;
                    log._maxSeq = Math.Max(log._maxSeq, pending.Seq);
                }

                move = _added is not null && log._pending.Count >= log.MoveThreshold;
            }

            if (move)
            {
                log.StartBackgroundMove(db);
            }

        }
    }
}
