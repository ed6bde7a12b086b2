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
/// leaves its key free; a duplicate returns the original result. Idempotency keys expire after the event's
/// <see cref="UsageCounterEvent.DedupWindow"/> by the Redis server's clock; counters expire
/// <see cref="UsageCounterEvent.CounterRetention"/> (or <see cref="RedisUsageCounterOptions.DefaultCounterRetention"/>)
/// after their last write. Numbers are exact over the whole <see cref="long"/> range (see the scripts' notes); a sum past
/// <see cref="long.MaxValue"/> throws <see cref="OverflowException"/> and changes nothing for that event.
/// </para>
/// <para>
/// <b>Keys and Redis Cluster.</b> Every key of a customer carries the customer as its hash tag
/// (<c>billing:{cus_123}:…</c>), so they share one slot. A script call may only touch keys of one slot on a cluster, so
/// <see cref="RecordBatchAsync"/> groups a batch by customer and sends one script call per customer (split into calls of
/// at most <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> events, sent one after the other), the groups
/// concurrently; the results are put back in the batch's order. Events of different customers share no key, so the
/// results are those of recording the batch in order. A batch is not atomic as a whole: when one call fails (the
/// connection drops), the calls of other customers may have been applied.
/// </para>
/// <para>
/// <b>Client.</b> StackExchange.Redis, asynchronous calls only, scripts sent with
/// <c>ScriptEvaluateAsync(string, …)</c> (EVALSHA once the script is loaded), and sent again after a <c>NOSCRIPT</c>
/// reply (script cache flushed, server restarted, failover), which the 1.x client does not do by itself for asynchronous
/// calls. Cancellation is checked before a call is sent; a call already sent may still be applied.
/// </para>
/// <para>
/// <b>Not the only copy.</b> Counters live in memory on the server: after a flush, a restart without persistence or an
/// expiry, rebuild them from the durable events with <see cref="RebuildAsync"/>.
/// </para>
/// </remarks>
public sealed class RedisUsageCounter : IUsageCounter, IDisposable, IAsyncDisposable
{
    private readonly RedisKeys _keys;
    private readonly string _defaultRetention;
    private readonly int _maxPerCall;
    private readonly IConnectionMultiplexer? _ownedMultiplexer;
    private readonly RedisUsageCounterConnection? _connection;
    private IDatabase? _database;
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
        _keys = new RedisKeys(options.KeyPrefix);
        _defaultRetention = Milliseconds(options.DefaultCounterRetention);
        _maxPerCall = options.MaxEventsPerScriptCall;
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
    public async ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default)
    {
        UsageCounterEvents.Validate(usageEvent);
        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var customer = _keys.Customer(usageEvent.Counter.CustomerId);
        var counter = RedisKeys.Counter(customer, usageEvent.Counter);
        RedisKey[] keys = [RedisKeys.Idempotency(customer, usageEvent.IdempotencyKey), counter, RedisKeys.UniqueSet(customer, usageEvent.Counter)];
        var values = new RedisValue[1 + UsageScripts.RecordArgumentsPerEvent];
        values[0] = "1";
        WriteRecordArguments(values, 1, 2, usageEvent);
        var reply = await EvaluateAsync(database, UsageScripts.Record, keys, values, cancellationToken).ConfigureAwait(false);
        return TryReadResult(reply, 0, out var result) ? result : throw Overflow(usageEvent);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Every event is validated before anything is sent. The batch is grouped by customer; each group is one script call
    /// (or several of at most <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/> events, in order), and the groups
    /// run concurrently. On an overflow the other events of the batch have been applied up to the overflowing one of its
    /// customer, and <see cref="OverflowException"/> is thrown.
    /// </remarks>
    public async ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return [];
        }

        var sameCustomer = true;
        var firstCustomer = events[0].Counter.CustomerId;
        for (var i = 0; i < events.Count; i++)
        {
            UsageCounterEvents.Validate(events[i]);
            _ = AggregationCode(events[i].Aggregation); // an unknown aggregation fails before anything is sent
            sameCustomer &= string.Equals(events[i].Counter.CustomerId, firstCustomer, StringComparison.Ordinal);
        }

        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var results = new UsageCounterResult[events.Count];
        int? overflow;
        if (sameCustomer)
        {
            overflow = await RecordGroupAsync(database, events, null, results, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
            for (var i = 0; i < events.Count; i++)
            {
                var customerId = events[i].Counter.CustomerId;
                if (!groups.TryGetValue(customerId, out var group))
                {
                    groups.Add(customerId, group = []);
                }

                group.Add(i);
            }

            var tasks = new Task<int?>[groups.Count];
            var n = 0;
            foreach (var group in groups.Values)
            {
                tasks[n++] = RecordGroupAsync(database, events, group, results, cancellationToken);
            }

            overflow = (await Task.WhenAll(tasks).ConfigureAwait(false)).FirstOrDefault(o => o is not null);
        }

        return overflow is { } at ? throw Overflow(events[at]) : results;
    }

    /// <inheritdoc />
    public async ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(counter.CustomerId, nameof(counter));
        ArgumentException.ThrowIfNullOrEmpty(counter.MeterKey, nameof(counter));
        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var call = database.HashGetAsync(RedisKeys.Counter(_keys.Customer(counter.CustomerId), counter), "total");
        var total = await (cancellationToken.CanBeCanceled ? call.WaitAsync(cancellationToken) : call).ConfigureAwait(false);
        return total.IsNull ? 0 : ParseTotal((string?)total);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Events repeating an earlier key of the list are skipped (as in memory). The events are applied in calls of at most
    /// <see cref="RedisUsageCounterOptions.MaxEventsPerScriptCall"/>; the first one deletes the counter (and its set of
    /// unique values), so a rebuild interrupted by a failure leaves a partial counter: run it again. Each key is taken
    /// again with its event's dedup window (a window of zero frees it) and stores the running total, as the in-memory
    /// counter does.
    /// </remarks>
    public async ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(counter.CustomerId, nameof(counter));
        ArgumentException.ThrowIfNullOrEmpty(counter.MeterKey, nameof(counter));
        ArgumentNullException.ThrowIfNull(events);
        var code = AggregationCode(aggregation);
        var customer = _keys.Customer(counter.CustomerId);
        var counterKey = RedisKeys.Counter(customer, counter);
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
                || !string.Equals(RedisKeys.Counter(customer, e.Counter), counterKey, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Event '{e.IdempotencyKey}' belongs to another counter.", nameof(events));
            }

            if (seen.Add(e.IdempotencyKey))
            {
                unique.Add(e);
            }
        }

        var database = await GetDatabaseAsync(cancellationToken).ConfigureAwait(false);
        var uniqueSet = RedisKeys.UniqueSet(customer, counter);
        var start = 0;
        var total = 0L;
        do
        {
            var count = Math.Min(_maxPerCall, unique.Count - start);
            var keys = new RedisKey[2 + count];
            var values = new RedisValue[3 + (count * UsageScripts.RebuildArgumentsPerEvent)];
            keys[0] = counterKey;
            keys[1] = uniqueSet;
            values[0] = start == 0 ? "1" : "0";
            values[1] = code;
            values[2] = count.ToString(CultureInfo.InvariantCulture);
            for (var i = 0; i < count; i++)
            {
                var e = unique[start + i];
                keys[2 + i] = RedisKeys.Idempotency(customer, e.IdempotencyKey);
                var a = 3 + (i * UsageScripts.RebuildArgumentsPerEvent);
                values[a] = Number(e.Quantity);
                values[a + 1] = aggregation == MeterAggregation.Last ? Number(e.Timestamp.UtcTicks) : string.Empty;
                values[a + 2] = aggregation == MeterAggregation.Last ? OrdinalSortKey(e.IdempotencyKey) : string.Empty;
                values[a + 3] = aggregation == MeterAggregation.UniqueCount ? e.UniqueValue : string.Empty;
                values[a + 4] = Milliseconds(e.DedupWindow);
                values[a + 5] = Retention(e);
            }

            var reply = await EvaluateAsync(database, UsageScripts.Rebuild, keys, values, cancellationToken).ConfigureAwait(false);
            if (!TryReadResult(reply, 0, out var result))
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

    /// <summary>Records the events of one customer (all of <paramref name="events"/>, or those at <paramref name="indices"/>).</summary>
    /// <returns>The index of the event that overflowed, or null.</returns>
    private async Task<int?> RecordGroupAsync(IDatabase database, IReadOnlyList<UsageCounterEvent> events, List<int>? indices, UsageCounterResult[] results, CancellationToken cancellationToken)
    {
        var length = indices?.Count ?? events.Count;
        var customer = _keys.Customer(events[indices is null ? 0 : indices[0]].Counter.CustomerId);
        for (var start = 0; start < length; start += _maxPerCall)
        {
            var count = Math.Min(_maxPerCall, length - start);
            var keys = new List<RedisKey>(count + 2);
            var counters = new Dictionary<UsageCounterKey, int>();
            var values = new RedisValue[1 + (count * UsageScripts.RecordArgumentsPerEvent)];
            values[0] = count.ToString(CultureInfo.InvariantCulture);
            for (var i = 0; i < count; i++)
            {
                keys.Add(RedisKeys.Idempotency(customer, events[At(start + i)].IdempotencyKey));
            }

            for (var i = 0; i < count; i++)
            {
                var e = events[At(start + i)];
                if (!counters.TryGetValue(e.Counter, out var counterIndex)) // DateTimeOffset equality compares instants
                {
                    counterIndex = keys.Count + 1; // Lua indexes from 1
                    counters.Add(e.Counter, counterIndex);
                    keys.Add(RedisKeys.Counter(customer, e.Counter));
                    keys.Add(RedisKeys.UniqueSet(customer, e.Counter));
                }

                WriteRecordArguments(values, 1 + (i * UsageScripts.RecordArgumentsPerEvent), counterIndex, e);
            }

            var reply = await EvaluateAsync(database, UsageScripts.Record, [.. keys], values, cancellationToken).ConfigureAwait(false);
            var pairs = reply.Length / 2;
            for (var i = 0; i < pairs; i++)
            {
                if (!TryReadResult(reply, i, out results[At(start + i)]))
                {
                    return At(start + i);
                }
            }
        }

        return null;

        int At(int position) => indices is null ? position : indices[position];
    }

    private void WriteRecordArguments(RedisValue[] values, int at, int counterIndex, in UsageCounterEvent e)
    {
        var aggregation = e.Aggregation;
        values[at] = counterIndex.ToString(CultureInfo.InvariantCulture);
        values[at + 1] = AggregationCode(aggregation);
        values[at + 2] = Number(e.Quantity);
        values[at + 3] = aggregation == MeterAggregation.Last ? Number(e.Timestamp.UtcTicks) : string.Empty;
        values[at + 4] = aggregation == MeterAggregation.Last ? OrdinalSortKey(e.IdempotencyKey) : string.Empty;
        values[at + 5] = aggregation == MeterAggregation.UniqueCount ? e.UniqueValue : string.Empty;
        values[at + 6] = e.HardLimit is { } limit ? Number(limit) : string.Empty;
        values[at + 7] = Milliseconds(e.DedupWindow);
        values[at + 8] = Retention(e);
    }

    /// <summary>
    /// Runs a script with EVALSHA (the client loads it first where it does not know it loaded), and again after a
    /// <c>NOSCRIPT</c> reply.
    /// </summary>
    /// <remarks>
    /// StackExchange.Redis 1.2.6 recovers from <c>NOSCRIPT</c> (script cache flushed, failover to a replica that never saw
    /// the script) only in its synchronous <c>ScriptEvaluate</c>: the asynchronous form forgets the script and fails the
    /// call. Sending it again is safe: a <c>NOSCRIPT</c> reply means the script did not run, and the client now loads it
    /// first. (2.x re-sends by itself; this loop then never repeats.)
    /// </remarks>
    private static async Task<RedisResult[]> EvaluateAsync(IDatabase database, string script, RedisKey[] keys, RedisValue[] values, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var call = database.ScriptEvaluateAsync(script, keys, values);
            try
            {
                var reply = await (cancellationToken.CanBeCanceled ? call.WaitAsync(cancellationToken) : call).ConfigureAwait(false);
                return (RedisResult[])reply!;
            }
            catch (RedisServerException e) when (attempt < MaxScriptAttempts && e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
            {
                // The script did not run; the client has dropped its cached SHA and loads the script with the next call.
            }
        }
    }

    /// <summary>Reads the (outcome, total) pair at <paramref name="pair"/>; false for an overflow.</summary>
    private static bool TryReadResult(RedisResult[] reply, int pair, out UsageCounterResult result)
    {
        var outcome = (int)reply[2 * pair];
        var total = ParseTotal((string?)reply[(2 * pair) + 1]);
        result = outcome switch
        {
            0 => new UsageCounterResult(UsageOutcome.Accepted, total),
            1 => new UsageCounterResult(UsageOutcome.Duplicate, total),
            2 => new UsageCounterResult(UsageOutcome.OverLimit, total),
            OverflowOutcome => default,
            _ => throw new InvalidOperationException($"The usage script returned the unknown outcome {outcome}."),
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

    private string Retention(in UsageCounterEvent e) => e.CounterRetention > TimeSpan.Zero ? Milliseconds(e.CounterRetention) : _defaultRetention;

    private static string AggregationCode(MeterAggregation aggregation) => aggregation switch
    {
        MeterAggregation.Sum => UsageScripts.Sum,
        MeterAggregation.Count => UsageScripts.Count,
        MeterAggregation.Max => UsageScripts.Max,
        MeterAggregation.Last => UsageScripts.Last,
        MeterAggregation.UniqueCount => UsageScripts.UniqueCount,
        _ => throw new ArgumentOutOfRangeException(nameof(aggregation), aggregation, "Unknown aggregation."),
    };

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Whole milliseconds, rounded up (a positive window never becomes 0, which would not take the key).</summary>
    private static string Milliseconds(TimeSpan span)
    {
        var ms = Math.DivRem(span.Ticks, TimeSpan.TicksPerMillisecond, out var rest);
        return Number(rest > 0 ? ms + 1 : ms);
    }

    /// <summary>The key's UTF-16 code units as 4 lowercase hex digits each: byte order = <see cref="string.CompareOrdinal(string, string)"/>.</summary>
    private static string OrdinalSortKey(string key) => string.Create(key.Length * 4, key, static (span, k) =>
    {
        for (var i = 0; i < k.Length; i++)
        {
            ((int)k[i]).TryFormat(span.Slice(i * 4, 4), out _, "x4", CultureInfo.InvariantCulture);
        }
    });
}
