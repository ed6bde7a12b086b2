using Billing.Ports;
using Billing.SampleHost.Composition;

namespace Billing.SampleHost.Workers;

/// <summary>
/// Reads committed billing events from the outbox (<see cref="IOutbox.ReadAsync"/>) after the checkpoint in
/// <c>host_outbox_checkpoints</c>, hands each to the <see cref="IOutboxSink"/> in position order, and moves the
/// checkpoint after each batch, so a restart resumes where it stopped instead of dispatching again.
/// </summary>
/// <remarks>
/// With several instances on one PostgreSQL database, the batch holds the checkpoint row (<c>FOR UPDATE SKIP
/// LOCKED</c>) until its new position commits: one instance dispatches a given position, the others skip that
/// round. A full batch is followed at once by the next; otherwise the worker waits
/// <c>Billing:Workers:Outbox:Interval</c>.
/// </remarks>
internal sealed partial class OutboxDispatcher(
    IBillingStore store,
    OutboxCheckpointStore checkpoints,
    IOutboxSink sink,
    WorkerSettings settings,
    WorkerStatus status,
    TimeProvider time,
    ILogger<OutboxDispatcher> logger)
    : PeriodicWorker(time, logger)
{
    protected override string Name => "outbox";

    protected override TimeSpan Interval => settings.Outbox.Interval;

    protected override async Task<bool> RunBatchAsync(CancellationToken cancellationToken)
    {
        await using var claim = await checkpoints.ClaimAsync(OutboxCheckpointStore.DefaultName, cancellationToken).ConfigureAwait(false);
        status.OutboxChecked(claim is not null);
        if (claim is null)
        {
            return false; // another instance is dispatching
        }

        IReadOnlyList<OutboxEntry> entries;
        await using (var session = await store.BeginAsync(cancellationToken).ConfigureAwait(false))
        {
            entries = await session.Outbox.ReadAsync(claim.Position, settings.Outbox.BatchSize, cancellationToken).ConfigureAwait(false);
        }

        if (entries.Count == 0)
        {
            return false;
        }

        var position = claim.Position;
        var dispatched = 0;
        Exception? failure = null;
        long failedAt = 0;
        foreach (var entry in entries)
        {
            try
            {
                await sink.DispatchAsync(entry, cancellationToken).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // The events before the failing one stay dispatched; the failure is rethrown after the checkpoint moved.
            catch (Exception e)
#pragma warning restore CA1031
            {
                failure = e;
                failedAt = entry.Position;
                LogSinkFailed(logger, e, entry.Position, entry.Event.Id);
                break;
            }

            position = entry.Position;
            dispatched++;
        }

        if (dispatched > 0)
        {
            await claim.CompleteAsync(position, Time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            status.BatchDispatched(dispatched, position);
            LogBatch(logger, dispatched, position);
        }

        if (failure is not null)
        {
            throw new InvalidOperationException($"The outbox sink failed at position {failedAt}; it is retried after the interval.", failure);
        }

        return entries.Count == settings.Outbox.BatchSize;
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Debug, Message = "Dispatched {Count} billing events; checkpoint {Position}")]
    private static partial void LogBatch(ILogger logger, int count, long position);

    [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "The outbox sink failed on event {Position} ({EventId})")]
    private static partial void LogSinkFailed(ILogger logger, Exception exception, long position, string eventId);
}
