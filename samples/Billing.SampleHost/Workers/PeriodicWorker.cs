namespace Billing.SampleHost.Workers;

/// <summary>
/// A background loop of batches: runs <see cref="RunBatchAsync"/>, and when it reports nothing more to do waits
/// <see cref="Interval"/> (on the host's <see cref="TimeProvider"/>) before the next one. An exception is logged and
/// the loop goes on after the interval.
/// </summary>
/// <remarks>
/// Graceful shutdown finishes the batch in hand: the stopping token ends the loop between batches (and the wait), and
/// a batch gets a token that fires only when the host's shutdown timeout (<c>HostOptions.ShutdownTimeout</c>) runs
/// out. Work cut off then is safe to redo: claims expire, payments are keyed by invoice and attempt, and the outbox
/// checkpoint only moves past dispatched events.
/// </remarks>
internal abstract partial class PeriodicWorker(TimeProvider time, ILogger logger) : BackgroundService
{
    private readonly CancellationTokenSource _abort = new();

    /// <summary>The worker's name in logs and in <see cref="WorkerStatus"/>.</summary>
    protected abstract string Name { get; }

    /// <summary>The pause after a batch that left nothing to do (or failed).</summary>
    protected abstract TimeSpan Interval { get; }

    protected TimeProvider Time => time;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // The host's shutdown timeout: only then is a batch in progress cancelled.
        await using var abort = cancellationToken.Register(() => _abort.Cancel());
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    public override void Dispose()
    {
        _abort.Dispose();
        base.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>One batch; true when more work is waiting (the next batch starts at once).</summary>
    protected abstract Task<bool> RunBatchAsync(CancellationToken cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LogStarted(logger, Name, Interval);
        while (!stoppingToken.IsCancellationRequested)
        {
            var more = false;
            try
            {
                more = await RunBatchAsync(_abort.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_abort.IsCancellationRequested)
            {
                LogAborted(logger, Name);
                return;
            }
#pragma warning disable CA1031 // A worker outlives the failure of one batch: logged, retried after the interval.
            catch (Exception e)
#pragma warning restore CA1031
            {
                LogFailed(logger, e, Name);
            }

            if (more)
            {
                continue;
            }

            try
            {
                await Task.Delay(Interval, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        LogStopped(logger, Name);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Worker {Worker} started (interval {Interval})")]
    private static partial void LogStarted(ILogger logger, string worker, TimeSpan interval);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Worker {Worker} stopped")]
    private static partial void LogStopped(ILogger logger, string worker);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "Worker {Worker}: a batch failed; retrying after the interval")]
    private static partial void LogFailed(ILogger logger, Exception exception, string worker);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Worker {Worker}: the shutdown timeout cut a batch off; it is redone by the next run")]
    private static partial void LogAborted(ILogger logger, string worker);
}
