using System.Globalization;
using Billing.Ports;
using Billing.Usage;
using StackExchange.Redis;

namespace Billing.Redis;

/// <summary>
/// Usage counters on Redis or Redis Cluster: the idempotency check, the hard-limit check and the increment of an event
/// run in one Lua script, so they are atomic across every process sharing the server.
/// </summary>
/// <remarks>
/// <para>
/// <b>Semantics.</b> Exactly those of <see cref="UsageCounterState"/> and the in-memory counter: sums, counts, maxima,
/// the latest value (ties broken by ordinal idempotency key) and distinct values; an over-limit event changes nothing and
/// leaves its key free; a duplicate returns the original result and the original acceptance's
/// <see cref="UsageCounterEvent.AcceptanceToken"/> (kept as the key's hash field value with the total and expiry).
/// Idempotency keys expire after the event's
/// <see cref="UsageCounterEvent.DedupWindow"/> by the Redis server's clock; counters expire
/// <see cref="UsageCounterEvent.CounterRetention"/> (or <see cref="RedisUsageCounterOptions.DefaultCounterRetention"/>)
/// after their last write, by the server's clock (each counter records its own expiry; an expired counter reads as 0 and
/// the next write starts it afresh). Numbers are exact over the whole <see cref="long"/> range (see the scripts' notes); a sum past
/// <see cref="long.MaxValue"/> throws <see cref="OverflowException"/> and changes nothing for that event.
/// </para>
/// <para>
/// <b>Keys and Redis Cluster.</b> Every customer belongs to one of
/// <see cref="RedisUsageCounterOptions.CustomerGroups"/> groups (a stable hash of its id), and every key of a group carries
/// the group as its hash tag (<c>billing:{g7}:…</c>), so a group's keys share one slot; a customer's idempotency keys and
/// counters are fields of its group's hashes (see <see cref="RedisKeys"/>). On a standalone server
/// <see cref="RecordBatchAsync"/> sends the whole batch as one script call (consecutive calls of at most
/// <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> events); a script call may only touch keys of one slot on
/// a cluster, so there the batch is grouped by hash slot, one call per slot, the calls concurrently, the results put back
/// in the batch's order. Events of different customers share no key field, so the results are those of recording the batch
/// in order. <see cref="RedisUsageCounterOptions.BatchMode"/> says how the server is recognized. A batch is atomic per
/// script call, not as a whole. Keys of the layout before customer groups (hash-tagged by customer) are not read.
/// </para>
/// <para>
/// <b>Client.</b> StackExchange.Redis, asynchronous calls only. Scripts are sent with EVALSHA by their SHA1 (no lookup of
/// the script text per call) and sent again by their text after a <c>NOSCRIPT</c> reply (script cache flushed, server
/// restarted, failover), which the 1.x client does not do by itself for asynchronous calls. Concurrent
/// <see cref="RecordAsync"/> and <see cref="RecordBatchAsync"/> calls share script calls (<see cref="RedisUsageCounterOptions.CoalesceRecords"/>).
/// Cancellation is checked before a call is sent; a call already sent may still be applied.
/// </para>
/// <para>
/// <b>Cost.</b> Idempotency keys are fields of a hash per customer group and generation
/// (<see cref="RedisUsageCounterOptions.IdempotencyGeneration"/>), counters fields of a hash per group and UTC day of
/// their period start (periods of different subscriptions start at different instants, so a hash per exact start would
/// hold about one counter; the exact start is in the field), so per group and script call about four Redis calls look
/// up and take all its keys and read and write all its counters of periods starting the same day, however many of its
/// customers and events the call holds (not a few per customer or per event). A day hash is freed when its latest
/// counter expires, so a counter with a long retention keeps the day's shorter, expired ones (read as 0) in memory
/// until then. Expiries are set only
/// when they must move, up to a minute later than needed, so mostly not per call (see <see cref="UsageScripts"/>).
/// </para>
/// <para>
/// <b>Not the only copy.</b> Counters live in memory on the server: after a flush, a restart without persistence or an
/// expiry, rebuild them from the durable events with <see cref="RebuildAsync"/>.
/// </para>
/// </remarks>
public sealed class RedisUsageCounter : IUsageCounter, IDisposable, IAsyncDisposable
{
    private const int Unknown = 0, Standalone = 1, Sharded = 2;

    private readonly RedisKeys _keys;
    private readonly long _defaultRetentionMs;
    private readonly long _generationMs;
    private readonly int _maxPerCall;
    private readonly RedisBatchMode _batchMode;
    private readonly bool _coalesce;
    private readonly Lock _queueGate = new();
    private readonly Queue<IPending> _queue = new();
    private int _coalescedCalls;
    private readonly IConnectionMultiplexer? _ownedMultiplexer;
    private readonly RedisUsageCounterConnection? _connection;
    private IDatabase? _database;
    private int _topology;
    private int _disposed;

    /// <summary>Creates counters on a multiplexer the caller owns (and disposes).</summary>
    /// <param name="multiplexer">The connection; set <c>PreserveAsyncOrder = false</c> on it for throughput.</param>
    /// <param name="options">Key prefix and retention (the connection string is not used).</param>
    /// <exception cref="ArgumentException">The options are invalid (the message names each option).</exception>
    public RedisUsageCounter(IConnectionMultiplexer multiplexer, RedisUsageCounterOptions options)
        : this(options, multiplexer ?? throw new ArgumentNullException(nameof(multiplexer)), ownsMultiplexer: false, connection: null)
    {
    }

    /// <summary>Creates counters that connect through <paramref name="connection"/> on first use (the DI registration).</summary>
    internal RedisUsageCounter(RedisUsageCounterConnection connection, RedisUsageCounterOptions options)
        : this(options, multiplexer: null, ownsMultiplexer: false, connection ?? throw new ArgumentNullException(nameof(connection)))
    {
    }

    private RedisUsageCounter(RedisUsageCounterOptions options, IConnectionMultiplexer? multiplexer, bool ownsMultiplexer, RedisUsageCounterConnection? connection)
    {
        RedisUsageCounterOptionsValidator.ThrowIfInvalid(options, requireConnection: false);
        _keys = new RedisKeys(options.KeyPrefix, options.CustomerGroups);
        _defaultRetentionMs = RecordCommand.Milliseconds(options.DefaultCounterRetention);
        _generationMs = RecordCommand.Milliseconds(options.IdempotencyGeneration);
        _maxPerCall = options.MaxEventsPerScriptCall;
        _batchMode = options.BatchMode;
        _coalesce = options.CoalesceRecords;
        _database = multiplexer?.GetDatabase();
        _ownedMultiplexer = ownsMultiplexer ? multiplexer : null;
        _connection = connection;
    }

    /// <summary>The key prefix in use.</summary>
    public string KeyPrefix => _keys.Prefix;

    /// <summary>
    /// Connects to Redis with <see cref="RedisUsageCounterOptions.ConfigurationString"/> and returns counters that own the
    /// connection (disposing the counters closes it).
    /// </summary>
    /// <param name="options">The options.</param>
    /// <param name="cancellationToken">Stops waiting for the connection (the attempt is abandoned and closed).</param>
    /// <returns>The counters.</returns>
    /// <exception cref="ArgumentException">The options are invalid (the message names each option).</exception>
    /// <exception cref="RedisConnectionException">Redis could not be reached and the configuration says
    /// <c>abortConnect=true</c> (the default).</exception>
    public static async Task<RedisUsageCounter> ConnectAsync(RedisUsageCounterOptions options, CancellationToken cancellationToken = default)
    {
        RedisUsageCounterOptionsValidator.ThrowIfInvalid(options, requireConnection: true);
        var multiplexer = await RedisUsageCounterConnection.ConnectAsync(ConfigurationOptions.Parse(options.ConfigurationString!), cancellationToken).ConfigureAwait(false);
        try
        {
            return new RedisUsageCounter(options, multiplexer, ownsMultiplexer: true, connection: null);
        }
        catch
        {
            multiplexer.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// With <see cref="RedisUsageCounterOptions.CoalesceRecords"/> (the default) on a standalone server, concurrent calls
    /// share script calls: at most two such calls are in flight per counter instance, and events recorded meanwhile wait
    /// and go together, in arrival order, in the next one (at most
    /// <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/>). Each event is still checked and applied atomically
    /// on its own and gets the result a call of its own would give; a call that finds nothing in flight is sent at once.
    /// Cancellation removes an event that is still waiting; once sent it may be counted.
    /// </remarks>
    public ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default)
    {
        UsageCounterEvents.Validate(usageEvent);
        if (CoalescesOn() is { } database)
        {
            var pending = new PendingRecord(this, usageEvent);
            Coalesce(database, pending, cancellationToken);
            return new ValueTask<UsageCounterResult>(pending.Task);
        }

        return RecordOneAsync(usageEvent, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// <para>Every event is validated before anything is sent. On a standalone server (see
    /// <see cref="RedisUsageCounterOptions.BatchMode"/>) the whole batch is one script call, whatever its customers (several
    /// consecutive calls when it has more than <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> events). On
    /// Redis Cluster it is grouped by hash slot: one call per slot (split the same way), the calls concurrently, the results
    /// put back in the batch's order. Events of different customers share no key field, so the results are those of recording the
    /// batch in order either way.</para>
    /// <para>With <see cref="RedisUsageCounterOptions.CoalesceRecords"/> (the default) on a standalone server, concurrent batches
    /// of at most <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> events share script calls as
    /// <see cref="RecordAsync"/> calls do: a batch waits while two calls are in flight and then goes whole, after the entries
    /// that came before it, in one call with them. Its results are those of a call of its own at that point. When an entry
    /// before it overflows, the call stops there and the batch is sent again on its own. Cancellation removes a batch that is
    /// still waiting; once sent it may be counted.</para>
    /// <para>A batch is atomic per script call, not as a whole: when a call fails (the connection drops), earlier calls (other
    /// slots, earlier chunks) may have been applied. On an overflow the events before the overflowing one in its call (for
    /// a standalone server: in the batch) have been applied, those after it in that call have not, and
    /// <see cref="OverflowException"/> is thrown.</para>
    /// </remarks>
    public async ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return [];
        }

        for (var i = 0; i < events.Count; i++)
        {
            UsageCounterEvents.Validate(events[i]);
            _ = RecordCommand.Code(events[i].Aggregation); // an unknown aggregation fails before anything is sent
        }

        if (events.Count <= _maxPerCall && CoalescesOn() is { } connected)
        {
            var pending = new PendingBatch(this, events);
            Coalesce(connected, pending, cancellationToken);
            return await pending.Task.ConfigureAwait(false);
        }

        return await RecordBatchDirectAsync(events, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Records a validated batch in calls of its own (not coalesced with other callers').</summary>
    private async Task<IReadOnlyList<UsageCounterResult>> RecordBatchDirectAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var results = new UsageCounterResult[events.Count];
        int? overflow = null;
        var done = 0;
        if (OneCallPerBatch(database))
        {
            try
            {
                for (; done < events.Count && overflow is null; done += _maxPerCall)
                {
                    overflow = await RecordCallAsync(database, events, null, done, Math.Min(_maxPerCall, events.Count - done), results, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (IsCrossSlot(e))
            {
                // The server is a cluster after all: the call did not run. Send the rest split by slot.
                Volatile.Write(ref _topology, Sharded);
            }
        }

        if (done < events.Count && overflow is null)
        {
            overflow = await RecordBySlotAsync(database, events, done, results, cancellationToken).ConfigureAwait(false);
        }

        return overflow is { } at ? throw Overflow(events[at]) : results;
    }

    /// <inheritdoc />
    /// <remarks>A small script reads the counter's field and compares its recorded expiry with the server's clock: a
    /// counter whose retention has passed since its last write reads as 0, as one never written.</remarks>
    public async ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(counter.CustomerId, nameof(counter));
        ArgumentException.ThrowIfNullOrEmpty(counter.MeterKey, nameof(counter));
        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var group = _keys.Group(counter.CustomerId);
        var total = await EvaluateAsync(database, Script.Total, [_keys.CounterHash(group, counter.PeriodStart)], [RedisKeys.CounterField(counter)], cancellationToken).ConfigureAwait(false);
        return ParseTotal((string?)total);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Events repeating an earlier key of the list are skipped (as in memory). The events are applied in calls of at most
    /// <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/>; the first one deletes the counter (and its set of
    /// unique values), so a rebuild interrupted by a failure leaves a partial counter: run it again. Each key is taken
    /// again with its event's dedup window (a window of zero frees it) and stores the running total and the event's
    /// acceptance token, as the in-memory counter does.
    /// </remarks>
    public async ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(counter.CustomerId, nameof(counter));
        ArgumentException.ThrowIfNullOrEmpty(counter.MeterKey, nameof(counter));
        ArgumentNullException.ThrowIfNull(events);
        var code = RecordCommand.Code(aggregation);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var unique = new List<UsageCounterEvent>(events.Count);
        foreach (var e in events)
        {
            UsageCounterEvents.Validate(e);
            if (aggregation == MeterAggregation.UniqueCount && e.UniqueValue is null)
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' has no unique value.", nameof(events));
            }

            if (!string.Equals(e.Counter.CustomerId, counter.CustomerId, StringComparison.Ordinal)
                || !string.Equals(e.Counter.MeterKey, counter.MeterKey, StringComparison.Ordinal)
                || e.Counter.PeriodStart.UtcTicks != counter.PeriodStart.UtcTicks)
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' belongs to another counter.", nameof(events));
            }

            if (seen.Add(e.IdempotencyKey))
            {
                unique.Add(e);
            }
        }

        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var group = _keys.Group(counter.CustomerId);
        var tag = RedisKeys.CustomerTag(counter.CustomerId);
        var keys = new RedisKey[] { _keys.CounterHash(group, counter.PeriodStart), _keys.UniqueSet(group, counter), _keys.IdempotencyHashes(group) };
        RedisValue field = RedisKeys.CounterField(tag, counter);
        var start = 0;
        var total = 0L;
        do
        {
            var count = Math.Min(_maxPerCall, unique.Count - start);
            var values = new RedisValue[5 + (count * UsageScripts.RebuildArgumentsPerEvent)];
            values[0] = start == 0 ? 1 : 0;
            values[1] = code;
            values[2] = count;
            values[3] = _generationMs;
            values[4] = field;
            for (var i = 0; i < count; i++)
            {
                var e = unique[start + i];
                var a = 5 + (i * UsageScripts.RebuildArgumentsPerEvent);
                values[a] = e.Quantity;
                values[a + 1] = aggregation == MeterAggregation.Last ? e.Timestamp.UtcTicks : RedisValue.EmptyString;
                values[a + 2] = aggregation == MeterAggregation.Last ? RecordCommand.OrdinalSortKey(e.IdempotencyKey) : RedisValue.EmptyString;
                values[a + 3] = aggregation == MeterAggregation.UniqueCount ? e.UniqueValue : RedisValue.EmptyString;
                values[a + 4] = RecordCommand.Milliseconds(e.DedupWindow);
                values[a + 5] = RecordCommand.Retention(e, _defaultRetentionMs);
                values[a + 6] = RedisKeys.IdempotencyField(tag, e.IdempotencyKey);
                values[a + 7] = e.AcceptanceToken;
            }

            var reply = (RedisResult[])(await EvaluateAsync(database, Script.Rebuild, keys, values, cancellationToken).ConfigureAwait(false))!;
            if (reply.Length != 1 || !TryDecode(reply[0], out var result))
            {
                throw new OverflowException($"Rebuilding the counter '{counter.MeterKey}' of '{counter.CustomerId}' passed {long.MaxValue}.");
            }

            total = result.Total;
            start += count;
        }
        while (start < unique.Count);

        return total;
    }

    /// <summary>Closes the connection when these counters opened it (<see cref="ConnectAsync"/>); otherwise does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _ownedMultiplexer?.Dispose();
        }
    }

    /// <summary>Closes the connection when these counters opened it (<see cref="ConnectAsync"/>), letting sent commands finish.</summary>
    /// <returns>A task that completes when the connection is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _ownedMultiplexer is not null)
        {
            await _ownedMultiplexer.CloseAsync(allowCommandsToComplete: true).ConfigureAwait(false);
            _ownedMultiplexer.Dispose();
        }
    }

    private const int OverflowOutcome = 3;
    private const int MaxScriptAttempts = 3;

    /// <summary>Coalesced script calls in flight at once per counter instance.</summary>
    private const int MaxCoalescedCalls = 2;

    private enum Script
    {
        Record,
        Rebuild,
        Total,
    }

    /// <summary>
    /// An event (<see cref="RecordAsync"/>) or a batch (<see cref="RecordBatchAsync"/>) waiting for a coalesced call. A call
    /// carries whole entries, in arrival order; the reply's elements from an entry's offset are its results.
    /// </summary>
    private interface IPending
    {
        /// <summary>How many events the entry puts in a call.</summary>
        int Count { get; }

        /// <summary>Canceled while waiting (under the owner's queue lock).</summary>
        bool Canceled { get; }

        /// <summary>Taken for a call (under the owner's queue lock): cancellation no longer applies.</summary>
        bool Taken { get; set; }

        CancellationTokenRegistration Registration { get; }

        /// <summary>Copies the entry's events into a call's events from <paramref name="at"/>.</summary>
        void CopyTo(UsageCounterEvent[] events, int at);

        /// <summary>
        /// Completes the caller from the call's reply, the entry's results starting at <paramref name="offset"/>. The reply
        /// stops after an overflow: an entry it ends inside gets the overflow (its events before it applied, those after it
        /// not); an entry it ends before was not applied and is sent again on its own.
        /// </summary>
        void Complete(RedisResult[] reply, int offset);

        void Fail(Exception error);
    }

    /// <summary>A waiting entry and its caller's task.</summary>
    private abstract class Pending<TResult>(RedisUsageCounter owner, TaskCreationOptions options) : TaskCompletionSource<TResult>(options), IPending
    {
        public abstract int Count { get; }

        public bool Canceled { get; private set; }

        public bool Taken { get; set; }

        public CancellationTokenRegistration Registration { get; private set; }

        protected RedisUsageCounter Owner => owner;

        public abstract void CopyTo(UsageCounterEvent[] events, int at);

        public abstract void Complete(RedisResult[] reply, int offset);

        public void Fail(Exception error) => TrySetException(error);

        /// <summary>Removes the entry from the queue's calls when <paramref name="cancellationToken"/> fires while it waits.</summary>
        public void CancelWhileWaiting(CancellationToken cancellationToken)
        {
            if (cancellationToken.CanBeCanceled)
            {
                Registration = cancellationToken.Register(static p => ((Pending<TResult>)p!).CancelIfWaiting(), this);
            }
        }

        /// <summary>Sends the entry again on its own (it was not applied) and completes the caller with that.</summary>
        protected async Task ForwardAsync(Func<Task<TResult>> send)
        {
            try
            {
                TrySetResult(await send().ConfigureAwait(false));
            }
            catch (Exception e)
            {
                TrySetException(e);
            }
        }

        private void CancelIfWaiting()
        {
            lock (owner._queueGate)
            {
                if (Taken)
                {
                    return;
                }

                Canceled = true;
            }

            TrySetCanceled();
        }
    }

    /// <summary>An event of <see cref="RecordAsync"/>; its caller continues on the thread that completes the call.</summary>
    private sealed class PendingRecord(RedisUsageCounter owner, UsageCounterEvent usageEvent) : Pending<UsageCounterResult>(owner, TaskCreationOptions.None)
    {
        public override int Count => 1;

        public override void CopyTo(UsageCounterEvent[] events, int at) => events[at] = usageEvent;

        public override void Complete(RedisResult[] reply, int offset)
        {
            if (offset >= reply.Length)
            {
                _ = ForwardAsync(() => Owner.RecordOneAsync(usageEvent).AsTask()); // after an overflow: not applied
            }
            else if (TryDecode(reply[offset], out var result))
            {
                TrySetResult(result);
            }
            else
            {
                TrySetException(Overflow(usageEvent));
            }
        }
    }

    /// <summary>A batch of <see cref="RecordBatchAsync"/>; its caller continues on the thread pool (a batch's caller has
    /// more to do than an event's, and the other callers of the call need not wait for it).</summary>
    private sealed class PendingBatch(RedisUsageCounter owner, IReadOnlyList<UsageCounterEvent> events) : Pending<IReadOnlyList<UsageCounterResult>>(owner, TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public override int Count => events.Count;

        public override void CopyTo(UsageCounterEvent[] into, int at)
        {
            for (var i = 0; i < events.Count; i++)
            {
                into[at + i] = events[i];
            }
        }

        public override void Complete(RedisResult[] reply, int offset)
        {
            if (offset >= reply.Length)
            {
                _ = ForwardAsync(() => Owner.RecordBatchDirectAsync(events)); // after an overflow in an earlier entry: not applied
                return;
            }

            var results = new UsageCounterResult[events.Count];
            for (var i = 0; i < events.Count; i++)
            {
                if (offset + i >= reply.Length)
                {
                    TrySetException(new InvalidOperationException($"The usage script returned {reply.Length} results for a call without an overflow."));
                    return;
                }

                if (!TryDecode(reply[offset + i], out results[i]))
                {
                    TrySetException(Overflow(events[i])); // the events before it are applied, those after it not
                    return;
                }
            }

            TrySetResult(results);
        }
    }

    /// <summary>The script call <see cref="RecordAsync"/> sends for <paramref name="usageEvent"/> (for the benchmark that
    /// replays it with <c>redis-benchmark</c>).</summary>
    internal (string Script, RedisKey[] Keys, RedisValue[] Values) RecordCommandFor(in UsageCounterEvent usageEvent)
    {
        var call = RecordCommand.Single(_keys, usageEvent, _defaultRetentionMs, _generationMs);
        return (UsageScripts.Record, call.Keys, call.Values);
    }

    /// <summary>The script call <see cref="RecordBatchAsync"/> sends for <paramref name="events"/> on a standalone server
    /// (at most <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> events; for the benchmark).</summary>
    internal (string Script, RedisKey[] Keys, RedisValue[] Values) RecordBatchCommandFor(IReadOnlyList<UsageCounterEvent> events)
    {
        var call = RecordCommand.Batch(_keys, events, null, 0, events.Count, _defaultRetentionMs, _generationMs);
        return (UsageScripts.Record, call.Keys, call.Values);
    }

    /// <summary>Overrides what the server is taken to be (tests): true one call per batch, false per slot.</summary>
    internal void AssumeStandalone(bool standalone) => Volatile.Write(ref _topology, standalone ? Standalone : Sharded);

    /// <summary>The connection when calls are coalesced: the option is on, the counter is connected and not disposed, and
    /// the server is standalone; otherwise null.</summary>
    private IDatabase? CoalescesOn() =>
        _coalesce && _database is { } database && Volatile.Read(ref _disposed) == 0 && OneCallPerBatch(database) ? database : null;

    /// <summary>One event in a script call of its own.</summary>
    private async ValueTask<UsageCounterResult> RecordOneAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default)
    {
        var call = RecordCommand.Single(_keys, usageEvent, _defaultRetentionMs, _generationMs);
        var (keys, values) = (call.Keys, call.Values);
        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        RedisResult[] reply;
        if (cancellationToken.CanBeCanceled)
        {
            reply = (RedisResult[])(await EvaluateAsync(database, Script.Record, keys, values, cancellationToken).ConfigureAwait(false))!;
        }
        else
        {
            // EVALSHA awaited here rather than through EvaluateAsync: one continuation less per event.
            RedisResult? result = null;
            try
            {
                result = await database.ScriptEvaluateAsync(UsageScripts.RecordSha1, keys, values).ConfigureAwait(false);
            }
            catch (RedisServerException e) when (IsNoScript(e))
            {
                // The script did not run.
            }

            reply = (RedisResult[])(result ?? await EvaluateTextAsync(database, Script.Record, keys, values, cancellationToken).ConfigureAwait(false))!;
        }

        return reply.Length == 1 && TryDecode(reply[0], out var decoded) ? decoded : throw Overflow(usageEvent);
    }

    /// <summary>
    /// Queues an entry for the next coalesced call, or sends it at once when fewer than two are in flight; the entry's task
    /// completes with its results.
    /// </summary>
    private void Coalesce<TResult>(IDatabase database, Pending<TResult> pending, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        pending.CancelWhileWaiting(cancellationToken);
        List<IPending>? batch = null;
        Task<RedisResult[]>? call = null;
        lock (_queueGate)
        {
            _queue.Enqueue(pending);
            if (_coalescedCalls < MaxCoalescedCalls)
            {
                batch = TakeQueuedLocked(out var events);
                if (batch.Count > 0)
                {
                    _coalescedCalls++;
                    call = StartCoalesced(database, batch, events); // under the lock: calls reach the connection in arrival order
                }
            }
        }

        if (call is not null)
        {
            _ = RunCoalescedAsync(database, batch!, call);
        }
    }

    /// <summary>
    /// Takes the waiting entries for one call, skipping canceled ones: whole entries, in arrival order, as long as their
    /// events fit in <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> (the first one always does: a larger
    /// batch is never queued); under <see cref="_queueGate"/>.
    /// </summary>
    private List<IPending> TakeQueuedLocked(out int events)
    {
        var batch = new List<IPending>(Math.Min(_queue.Count, _maxPerCall));
        events = 0;
        while (_queue.TryPeek(out var next) && events + next.Count <= _maxPerCall)
        {
            _queue.Dequeue();
            if (!next.Canceled)
            {
                next.Taken = true;
                batch.Add(next);
                events += next.Count;
            }
        }

        return batch;
    }

    /// <summary>
    /// Sends coalesced calls until nothing waits: when a reply arrives the next call (the entries that arrived meanwhile) is
    /// sent before the callers of this one are completed, so the server always has work.
    /// </summary>
    private async Task RunCoalescedAsync(IDatabase database, List<IPending> batch, Task<RedisResult[]> call)
    {
        while (true)
        {
            RedisResult[]? reply = null;
            Exception? error = null;
            try
            {
                reply = await call.ConfigureAwait(false);
            }
            catch (Exception e)
            {
                error = e;
            }

            List<IPending> next;
            Task<RedisResult[]>? nextCall = null;
            lock (_queueGate)
            {
                next = TakeQueuedLocked(out var events);
                if (next.Count == 0)
                {
                    _coalescedCalls--;
                }
                else
                {
                    nextCall = StartCoalesced(database, next, events);
                }
            }

            CompleteCoalesced(batch, reply, error);
            if (nextCall is null)
            {
                return;
            }

            batch = next;
            call = nextCall;
        }
    }

    private Task<RedisResult[]> StartCoalesced(IDatabase database, List<IPending> batch, int count)
    {
        try
        {
            var events = new UsageCounterEvent[count];
            var at = 0;
            foreach (var pending in batch)
            {
                pending.CopyTo(events, at);
                at += pending.Count;
            }

            return EvaluateRecordAsync(database, events, null, 0, events.Length, CancellationToken.None);
        }
        catch (Exception e)
        {
            return Task.FromException<RedisResult[]>(e);
        }
    }

    /// <summary>Completes each caller of a coalesced call; entries the call did not apply are sent again on their own.</summary>
    private void CompleteCoalesced(List<IPending> batch, RedisResult[]? reply, Exception? error)
    {
        if (error is not null && IsCrossSlot(error))
        {
            // The server is a cluster after all: nothing ran. Send each entry on its own.
            Volatile.Write(ref _topology, Sharded);
            reply = [];
            error = null;
        }

        var offset = 0;
        foreach (var pending in batch)
        {
            pending.Registration.Dispose();
            if (error is not null)
            {
                pending.Fail(error);
            }
            else
            {
                pending.Complete(reply!, offset);
            }

            offset += pending.Count;
        }
    }

    /// <summary>Whether a batch goes in one call: the option allows it and the server is known to be standalone.</summary>
    private bool OneCallPerBatch(IDatabase database)
    {
        if (_batchMode == RedisBatchMode.PerSlot)
        {
            return false;
        }

        var topology = Volatile.Read(ref _topology);
        if (topology == Unknown)
        {
            topology = DetectTopology(database.Multiplexer);
            if (topology != Unknown)
            {
                Interlocked.CompareExchange(ref _topology, topology, Unknown);
            }
        }

        return topology == Standalone;
    }

    /// <summary>Standalone when every connected data server says so; sharded when one is a cluster node or a proxy;
    /// unknown while none is connected.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1859", Justification = "The interface is what 2.x returns too.")]
    private static int DetectTopology(IConnectionMultiplexer multiplexer)
    {
        var connected = false;
        foreach (var endPoint in multiplexer.GetEndPoints())
        {
            var server = multiplexer.GetServer(endPoint);
            if (!server.IsConnected || server.ServerType == ServerType.Sentinel)
            {
                continue;
            }

            if (server.ServerType != ServerType.Standalone)
            {
                return Sharded;
            }

            connected = true;
        }

        return connected ? Standalone : Unknown;
    }

    /// <summary>The server (<c>CROSSSLOT</c>) or the client (it knows the cluster's slots) refused a call across slots; it did not run.</summary>
    private static bool IsCrossSlot(Exception e) =>
        (e is RedisServerException && e.Message.StartsWith("CROSSSLOT", StringComparison.Ordinal))
        || (e is RedisCommandException && e.Message.Contains("must involve a single slot", StringComparison.Ordinal));

    /// <summary>Records the events from <paramref name="from"/> on grouped by hash slot, the groups concurrently.</summary>
    private async Task<int?> RecordBySlotAsync(IDatabase database, IReadOnlyList<UsageCounterEvent> events, int from, UsageCounterResult[] results, CancellationToken cancellationToken)
    {
        var multiplexer = database.Multiplexer;
        var slots = new Dictionary<int, int>(); // customer group -> hash slot
        var bySlot = new Dictionary<int, List<int>>();
        for (var i = from; i < events.Count; i++)
        {
            var group = _keys.Group(events[i].Counter.CustomerId);
            if (!slots.TryGetValue(group, out var slot))
            {
                slot = multiplexer.HashSlot(_keys.GroupKey(group));
                slots.Add(group, slot);
            }

            if (!bySlot.TryGetValue(slot, out var indices))
            {
                bySlot.Add(slot, indices = []);
            }

            indices.Add(i);
        }

        var tasks = new Task<int?>[bySlot.Count];
        var n = 0;
        foreach (var indices in bySlot.Values)
        {
            tasks[n++] = RecordSlotAsync(database, events, indices, results, cancellationToken);
        }

        int? overflow = null;
        foreach (var at in await Task.WhenAll(tasks).ConfigureAwait(false))
        {
            if (at is { } i && (overflow is null || i < overflow))
            {
                overflow = i;
            }
        }

        return overflow;
    }

    /// <summary>Records the events at <paramref name="indices"/> (one slot) in calls of at most the configured size.</summary>
    private async Task<int?> RecordSlotAsync(IDatabase database, IReadOnlyList<UsageCounterEvent> events, List<int> indices, UsageCounterResult[] results, CancellationToken cancellationToken)
    {
        for (var start = 0; start < indices.Count; start += _maxPerCall)
        {
            if (await RecordCallAsync(database, events, indices, start, Math.Min(_maxPerCall, indices.Count - start), results, cancellationToken).ConfigureAwait(false) is { } overflow)
            {
                return overflow;
            }
        }

        return null;
    }

    /// <summary>One script call; returns the batch index of the event that overflowed, or null.</summary>
    private async Task<int?> RecordCallAsync(IDatabase database, IReadOnlyList<UsageCounterEvent> events, List<int>? indices, int start, int count, UsageCounterResult[] results, CancellationToken cancellationToken)
    {
        var reply = await EvaluateRecordAsync(database, events, indices, start, count, cancellationToken).ConfigureAwait(false);
        if (reply.Length > count)
        {
            throw new InvalidOperationException($"The usage script returned {reply.Length} results for {count} events.");
        }

        for (var i = 0; i < reply.Length; i++)
        {
            var at = indices is null ? start + i : indices[start + i];
            if (!TryDecode(reply[i], out results[at]))
            {
                return at;
            }
        }

        return reply.Length == count
            ? null
            : throw new InvalidOperationException($"The usage script returned {reply.Length} results for {count} events without an overflow.");
    }

    /// <summary>
    /// Records <paramref name="count"/> events (from <paramref name="start"/>, positions in <paramref name="indices"/> when
    /// given) in one script call and returns their results in their order: one per event, or up to and including the
    /// first that overflowed (the events before it applied, those after it not).
    /// </summary>
    /// <remarks>The events go grouped by customer group (each group's in their order: events of different customers share no
    /// key field, so the results are those of their order). Grouped out of their order, the script writes nothing when an event
    /// overflows; the events are then sent again in their order (a rare path: a total past <see cref="long.MaxValue"/>).</remarks>
    private async Task<RedisResult[]> EvaluateRecordAsync(IDatabase database, IReadOnlyList<UsageCounterEvent> events, List<int>? indices, int start, int count, CancellationToken cancellationToken)
    {
        var call = count == 1
            ? RecordCommand.Single(_keys, events[indices is null ? start : indices[start]], _defaultRetentionMs, _generationMs)
            : RecordCommand.Batch(_keys, events, indices, start, count, _defaultRetentionMs, _generationMs);
        var reply = (RedisResult[])(await EvaluateAsync(database, Script.Record, call.Keys, call.Values, cancellationToken).ConfigureAwait(false))!;
        if (call.Order is not { } order || reply.Length > count)
        {
            return reply;
        }

        if (reply.Length == count && !IsOverflow(reply[^1]))
        {
            var results = new RedisResult[count];
            for (var i = 0; i < count; i++)
            {
                results[order[i]] = reply[i];
            }

            return results;
        }

        // An event overflowed and nothing was written: send the events again in their order.
        call = RecordCommand.Batch(_keys, events, indices, start, count, _defaultRetentionMs, _generationMs, byGroup: false);
        return (RedisResult[])(await EvaluateAsync(database, Script.Record, call.Keys, call.Values, cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Whether an event's result is an overflow (outcome 3).</summary>
    private static bool IsOverflow(RedisResult element)
    {
        var value = (RedisValue)element;
        if (value.IsInteger)
        {
            return ((long)value & 3) == OverflowOutcome;
        }

        var text = (string?)value;
        return text is { Length: > 0 } && text[0] - '0' == OverflowOutcome;
    }

    /// <summary>
    /// Runs a script with EVALSHA by its SHA1, and after a <c>NOSCRIPT</c> reply (script cache flushed, server restarted,
    /// failover) sends it again by its text, which loads it.
    /// </summary>
    /// <remarks>
    /// The SHA1 overload sends EVALSHA without looking the script text up in the client's script cache (the text overload
    /// hashes the whole script on every call). StackExchange.Redis 1.2.6 recovers from <c>NOSCRIPT</c> by itself only in its
    /// synchronous text overload; here the call is sent again with the text overload, which loads the script first (or
    /// forgets its cached SHA after another <c>NOSCRIPT</c>, so the next attempt loads it). Sending again is safe: a
    /// <c>NOSCRIPT</c> reply means the script did not run.
    /// </remarks>
    private static async Task<RedisResult> EvaluateAsync(IDatabase database, Script script, RedisKey[] keys, RedisValue[] values, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var sha = script switch
        {
            Script.Record => UsageScripts.RecordSha1,
            Script.Rebuild => UsageScripts.RebuildSha1,
            _ => UsageScripts.TotalSha1,
        };
        var call = database.ScriptEvaluateAsync(sha, keys, values);
        try
        {
            return await (cancellationToken.CanBeCanceled ? call.WaitAsync(cancellationToken) : call).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (IsNoScript(e))
        {
            // The script did not run.
        }

        return await EvaluateTextAsync(database, script, keys, values, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a script by its text (after a <c>NOSCRIPT</c> reply to its SHA1), which loads it.</summary>
    private static async Task<RedisResult> EvaluateTextAsync(IDatabase database, Script script, RedisKey[] keys, RedisValue[] values, CancellationToken cancellationToken)
    {
        var text = script switch
        {
            Script.Record => UsageScripts.Record,
            Script.Rebuild => UsageScripts.Rebuild,
            _ => UsageScripts.Total,
        };
        for (var attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var call = database.ScriptEvaluateAsync(text, keys, values);
            try
            {
                return await (cancellationToken.CanBeCanceled ? call.WaitAsync(cancellationToken) : call).ConfigureAwait(false);
            }
            catch (RedisServerException e) when (attempt < MaxScriptAttempts && IsNoScript(e))
            {
                // The client has dropped its cached SHA and loads the script with the next call.
            }
        }
    }

    private static bool IsNoScript(RedisServerException e) => e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal);

    /// <summary>Reads one event's result (see <see cref="UsageScripts"/>); false for an overflow.</summary>
    private static bool TryDecode(RedisResult element, out UsageCounterResult result)
    {
        var value = (RedisValue)element;
        int outcome;
        long total;
        long token = 0;
        if (value.IsInteger)
        {
            var code = (long)value;
            outcome = (int)(code & 3);
            total = code >> 2;
        }
        else
        {
            var text = (string?)value;
            if (string.IsNullOrEmpty(text) || text[0] is < '0' or > '3')
            {
                throw new InvalidOperationException($"The usage script returned '{text}' where an event result was expected.");
            }

            outcome = text[0] - '0';
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                total = ParseTotal(text[1..]);
            }
            else
            {
                // A duplicate: the original total and acceptance token.
                total = ParseTotal(text[1..colon]);
                token = long.TryParse(text.AsSpan(colon + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var t)
                    ? t
                    : throw new InvalidOperationException($"Redis holds '{text[(colon + 1)..]}' where an acceptance token was expected.");
            }
        }

        result = outcome switch
        {
            0 => new UsageCounterResult(UsageOutcome.Accepted, total),
            1 => new UsageCounterResult(UsageOutcome.Duplicate, total, token),
            2 => new UsageCounterResult(UsageOutcome.OverLimit, total),
            _ => default,
        };
        return outcome != OverflowOutcome;
    }

    private static long ParseTotal(string? text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var total)
            ? total
            : throw new InvalidOperationException($"Redis holds '{text}' where a counter total was expected.");

    private static OverflowException Overflow(in UsageCounterEvent e) =>
        new($"Event '{e.IdempotencyKey}' would take the counter '{e.Counter.MeterKey}' of '{e.Counter.CustomerId}' past {long.MaxValue}; nothing was changed for it.");

    private ValueTask<IDatabase> GetDatabaseAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _database is { } database ? new ValueTask<IDatabase>(database) : ConnectAsync(cancellationToken);

        async ValueTask<IDatabase> ConnectAsync(CancellationToken ct)
        {
            var multiplexer = await _connection!.GetMultiplexerAsync(ct).ConfigureAwait(false);
            return _database = multiplexer.GetDatabase();
        }
    }
}
