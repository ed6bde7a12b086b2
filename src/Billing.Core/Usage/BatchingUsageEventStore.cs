using Billing.InMemory;
using Billing.Ports;

namespace Billing.Usage;

/// <summary>
/// Group commit for a durable <see cref="IUsageEventStore"/>: concurrent <see cref="AppendAsync"/> calls are
/// coalesced into one append of the inner store, so many callers with one event each share one database round trip
/// and one commit. Each caller gets its own per-event answers.
/// </summary>
/// <remarks>
/// <para>
/// <b>No timer.</b> A call never waits for more calls to arrive: when fewer than
/// <see cref="BatchingUsageEventStoreOptions.MaxConcurrentFlushes"/> flushes are running, the caller flushes at once,
/// on its own task, with whatever is queued (often only its own events). Calls arriving while the flushes run wait in
/// the queue; when a flush ends, its caller hands the flush over to the first waiting caller, which takes everything
/// queued (up to <see cref="BatchingUsageEventStoreOptions.MaxBatchSize"/> events, whole calls only, in arrival order)
/// into the next append. So batches grow with the load and an idle store answers with the latency of one append.
/// </para>
/// <para>
/// <b>Answers.</b> A coalesced batch is one call to the inner store, which decides per event; each caller receives
/// the answers of its own events, in order. Keys repeated across the calls of one batch behave as repeated keys in
/// one batch: the first event of the key (the earlier caller's) is stored and reported true, the others false. A call
/// with <see cref="BatchingUsageEventStoreOptions.MaxBatchSize"/> events or more goes to the inner store on its own.
/// </para>
/// <para>
/// <b>Failures.</b> Every event is validated (<see cref="InMemoryUsageEventStore.Validate"/>) before it is queued, so
/// a malformed event fails only its own call, with <see cref="ArgumentException"/>. An exception of the inner store
/// fails exactly the calls of that batch, each with that exception; calls in other batches are not affected. (For the
/// failed calls nothing is known about what was stored; appending the same events again is safe and answers from
/// the store's unique key.) When <see cref="BatchingUsageEventStoreOptions.RetryCallsAloneWhen"/> says so for the
/// exception (say, the database rejected a value of one event), a batch of several calls is instead appended again
/// call by call, in arrival order, so that each call gets its own answers or its own exception: one caller's bad event
/// fails only that caller.
/// </para>
/// <para>
/// <b>Cancellation.</b> A call is cancelled by its token while it waits for room in the queue or in the queue itself:
/// its events are then not written, and it throws <see cref="OperationCanceledException"/>. Once its events are taken
/// into a batch the token is no longer observed: the batch is written to the end and the call returns its answers
/// (an answer is never lost to a cancellation). A flush never uses a caller's token.
/// </para>
/// <para>
/// <b>Bounds.</b> At most <see cref="BatchingUsageEventStoreOptions.MaxQueuedCalls"/> calls wait in the queue; more
/// callers wait (asynchronously) for room, which gives back-pressure under overload.
/// </para>
/// <para>
/// Reads (<see cref="FindAsync"/>, <see cref="ListAsync"/>, <see cref="ListCountersAsync"/>, <see cref="AggregateAsync"/>) go straight to the
/// inner store. All members are thread-safe.
/// </para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The SemaphoreSlim's wait handle is never created (AvailableWaitHandle is not used), so it holds nothing to dispose.")]
public sealed class BatchingUsageEventStore : IUsageEventStore
{
    private readonly IUsageEventStore _inner;
    private readonly int _maxBatchSize;
    private readonly int _maxFlushes;
    private readonly Func<Exception, bool>? _retryAlone;
    private readonly SemaphoreSlim _room;
    private readonly Lock _gate = new();
    private readonly LinkedList<Pending> _queue = new();
    private int _flushing;
    private long _calls;
    private long _flushes;
    private long _events;
    private long _direct;

    /// <summary>Creates the decorator.</summary>
    /// <param name="inner">The store that writes the batches.</param>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range (see <see cref="BatchingUsageEventStoreOptions"/>).</exception>
    public BatchingUsageEventStore(IUsageEventStore inner, BatchingUsageEventStoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        options ??= new BatchingUsageEventStoreOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchSize, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrentFlushes, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxQueuedCalls, 1, nameof(options));
        _inner = inner;
        _maxBatchSize = options.MaxBatchSize;
        _maxFlushes = options.MaxConcurrentFlushes;
        _retryAlone = options.RetryCallsAloneWhen;
        _room = new SemaphoreSlim(options.MaxQueuedCalls, options.MaxQueuedCalls);
    }

    /// <summary>What the decorator has done so far.</summary>
    public BatchingUsageEventStoreStatistics Statistics
    {
        get
        {
            int queued;
            lock (_gate)
            {
                queued = _queue.Count(p => p.State == PendingState.Queued);
            }

            return new(Interlocked.Read(ref _calls), Interlocked.Read(ref _flushes), Interlocked.Read(ref _events), Interlocked.Read(ref _direct), queued);
        }
    }

    /// <inheritdoc />
    /// <remarks>Coalesced with concurrent calls; see the class remarks for answers, failures and cancellation.</remarks>
    /// <exception cref="ArgumentException">An event is malformed; nothing of this call is stored.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled before the events were taken into a batch.</exception>
    public async ValueTask<IReadOnlyList<bool>> AppendAsync(IReadOnlyList<StoredUsageEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return [];
        }

        for (var i = 0; i < events.Count; i++)
        {
            InMemoryUsageEventStore.Validate(events[i]);
        }

        Interlocked.Increment(ref _calls);
        if (events.Count >= _maxBatchSize)
        {
            Interlocked.Increment(ref _direct);
            return await _inner.AppendAsync(events, cancellationToken).ConfigureAwait(false);
        }

        await _room.WaitAsync(cancellationToken).ConfigureAwait(false);
        var pending = new Pending(events, cancellationToken);
        bool lead;
        lock (_gate)
        {
            pending.Node = _queue.AddLast(pending);
            lead = _flushing < _maxFlushes;
            if (lead)
            {
                _flushing++;
                pending.State = PendingState.Leading;
            }
        }

        if (!lead)
        {
            bool finished;
            var registration = cancellationToken.CanBeCanceled ? cancellationToken.Register(() => Cancel(pending)) : default;
            try
            {
                finished = await pending.Task.ConfigureAwait(false);
            }
            finally
            {
                await registration.DisposeAsync().ConfigureAwait(false);
            }

            if (finished)
            {
                return pending.Answers();
            }

            // The flush was handed over to this call.
        }

        return await LeadAsync(pending).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<StoredUsageEvent?> FindAsync(string customerId, string idempotencyKey, CancellationToken cancellationToken = default) =>
        _inner.FindAsync(customerId, idempotencyKey, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StoredUsageEvent>> ListAsync(UsageCounterKey counter, CancellationToken cancellationToken = default) =>
        _inner.ListAsync(counter, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<UsageCounterKey>> ListCountersAsync(DateTimeOffset periodStart, CancellationToken cancellationToken = default) =>
        _inner.ListCountersAsync(periodStart, cancellationToken);

    /// <inheritdoc />
    public ValueTask<long> AggregateAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default) =>
        _inner.AggregateAsync(counter, aggregation, cancellationToken);

    /// <summary>Flushes batches from the head of the queue until <paramref name="own"/> is written, then hands the flush over.</summary>
    private async Task<IReadOnlyList<bool>> LeadAsync(Pending own)
    {
        try
        {
            while (!own.Finished)
            {
                await FlushAsync(Take(own)).ConfigureAwait(false);
            }
        }
        finally
        {
            HandOver();
        }

        return own.Answers();
    }

    /// <summary>Takes queued calls (and <paramref name="own"/>) from the head of the queue, up to the batch size.</summary>
    private List<Pending> Take(Pending own)
    {
        var batch = new List<Pending>();
        var size = 0;
        lock (_gate)
        {
            for (var node = _queue.First; node is not null;)
            {
                var next = node.Next;
                var pending = node.Value;
                if (pending.State == PendingState.Queued || pending == own)
                {
                    if (size + pending.Events.Count > _maxBatchSize)
                    {
                        break;
                    }

                    size += pending.Events.Count;
                    pending.State = PendingState.Sent;
                    _queue.Remove(node);
                    pending.Node = null;
                    batch.Add(pending);
                }

                node = next;
            }
        }

        if (batch.Count > 0)
        {
            _room.Release(batch.Count);
        }

        return batch;
    }

    /// <summary>Gives the flush to the first queued call, or ends it when none is queued.</summary>
    private void HandOver()
    {
        lock (_gate)
        {
            for (var node = _queue.First; node is not null; node = node.Next)
            {
                if (node.Value.State == PendingState.Queued)
                {
                    node.Value.State = PendingState.Leading;
                    node.Value.TrySetResult(false);
                    return;
                }
            }

            _flushing--;
        }
    }

    private void Cancel(Pending pending)
    {
        lock (_gate)
        {
            if (pending.State != PendingState.Queued)
            {
                return; // taken into a batch, or leading: it completes with its answers
            }

            pending.State = PendingState.Cancelled;
            _queue.Remove(pending.Node!);
            pending.Node = null;
        }

        _room.Release();
        pending.TrySetCanceled(pending.Token);
    }

    private async Task FlushAsync(List<Pending> batch)
    {
        var events = new List<StoredUsageEvent>(batch.Sum(p => p.Events.Count));
        foreach (var pending in batch)
        {
            events.AddRange(pending.Events);
        }

        IReadOnlyList<bool> stored;
        try
        {
            stored = await _inner.AppendAsync(events, CancellationToken.None).ConfigureAwait(false);
            if (stored.Count != events.Count)
            {
                throw new InvalidOperationException($"The inner store answered {stored.Count} events of a batch of {events.Count}.");
            }
        }
        catch (Exception e) when (batch.Count > 1 && _retryAlone is { } retryAlone && retryAlone(e))
        {
            foreach (var pending in batch)
            {
                await FlushAsync([pending]).ConfigureAwait(false); // alone: its own answers or its own exception
            }

            return;
        }
        catch (Exception e)
        {
            foreach (var pending in batch)
            {
                pending.Finish(null, e);
            }

            return;
        }

        Interlocked.Increment(ref _flushes);
        Interlocked.Add(ref _events, events.Count);
        var offset = 0;
        foreach (var pending in batch)
        {
            var answers = new bool[pending.Events.Count];
            for (var i = 0; i < answers.Length; i++)
            {
                answers[i] = stored[offset + i];
            }

            offset += answers.Length;
            pending.Finish(answers, null);
        }
    }

    private enum PendingState
    {
        Queued,
        Leading,
        Sent,
        Cancelled,
    }

    /// <summary>
    /// One call in the queue. Its task ends with true when the call's batch was written (see <see cref="Answers"/>),
    /// with false when the call is to flush, or cancelled.
    /// </summary>
    private sealed class Pending(IReadOnlyList<StoredUsageEvent> events, CancellationToken token)
        : TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        private bool[]? _answers;
        private Exception? _error;

        public IReadOnlyList<StoredUsageEvent> Events { get; } = events;

        public CancellationToken Token { get; } = token;

        public PendingState State { get; set; }

        public LinkedListNode<Pending>? Node { get; set; }

        /// <summary>Whether the call's batch was written (or failed).</summary>
        public bool Finished { get; private set; }

        public void Finish(bool[]? answers, Exception? error)
        {
            (_answers, _error, Finished) = (answers, error, true);
            TrySetResult(true); // a call that leads is not waiting on its task, which may be completed already
        }

        /// <summary>The call's answers, or the exception of its batch.</summary>
        public bool[] Answers()
        {
            if (_error is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_error);
            }

            return _answers!;
        }
    }
}

/// <summary>Settings of <see cref="BatchingUsageEventStore"/>.</summary>
public sealed class BatchingUsageEventStoreOptions
{
    /// <summary>The most events in one coalesced append (default 1,000; ≥ 1). Calls with this many events or more are not coalesced.</summary>
    public int MaxBatchSize { get; init; } = 1_000;

    /// <summary>How many coalesced appends may run at once (default 1; ≥ 1).</summary>
    /// <remarks>
    /// One flush at a time makes the largest batches: the callers answered by one append queue up again while the
    /// next runs. More flushes split the callers into smaller batches; on a 2-core machine with PostgreSQL on the
    /// same cores that cost more CPU per event than it saved waiting (64 callers: about 33 events per append with 1,
    /// 20 with 2, 11 with 4, and fewer events per second). Measure before raising it on bigger machines.
    /// </remarks>
    public int MaxConcurrentFlushes { get; init; } = 1;

    /// <summary>The most calls waiting in the queue (default 10,000; ≥ 1); more callers wait for room.</summary>
    public int MaxQueuedCalls { get; init; } = 10_000;

    /// <summary>
    /// Which exceptions of a coalesced append of several calls make the decorator append each of those calls again on
    /// its own (default null: none; every call of a failed batch fails with its exception).
    /// </summary>
    /// <remarks>
    /// For failures caused by the events themselves (a value the database rejects), so that one caller's bad event
    /// does not fail the callers it happened to share a batch with. Not for failures of the store (a lost connection):
    /// trying each call again would only multiply the load on a store in trouble. The calls are appended one after the
    /// other, in arrival order, within the failed flush; each gets its own answers or exception.
    /// </remarks>
    public Func<Exception, bool>? RetryCallsAloneWhen { get; init; }
}

/// <summary>Counts of a <see cref="BatchingUsageEventStore"/> since it was created.</summary>
/// <param name="Calls">Calls of <see cref="BatchingUsageEventStore.AppendAsync"/> with at least one valid event.</param>
/// <param name="Flushes">Coalesced appends written (successfully) to the inner store, counting each call appended alone after its batch failed (<see cref="BatchingUsageEventStoreOptions.RetryCallsAloneWhen"/>) as one.</param>
/// <param name="Events">Events in those appends.</param>
/// <param name="DirectCalls">Calls with <see cref="BatchingUsageEventStoreOptions.MaxBatchSize"/> events or more, passed through on their own.</param>
/// <param name="QueuedCalls">Calls waiting in the queue right now (not yet taken into a batch).</param>
public readonly record struct BatchingUsageEventStoreStatistics(long Calls, long Flushes, long Events, long DirectCalls, int QueuedCalls);
