using Billing.Engine;
using Billing.SampleHost.Composition;

namespace Billing.SampleHost.Workers;

/// <summary>
/// Runs the billing run (<see cref="BillingEngine.AdvanceAsync"/>) every <c>Billing:Workers:BillingRun:Interval</c>:
/// renewals, trial ends, cancellations at period end, draft finalization, payment attempts and dunning retries that
/// are due, for customers on real time.
/// </summary>
/// <remarks>
/// Each run does everything due at the instant it starts, then the worker waits the interval. Any number of host
/// instances may run it against one PostgreSQL database: the engine claims due subscriptions and invoices with
/// <c>FOR UPDATE SKIP LOCKED</c> and a lease, and unique keys (one invoice per subscription and period, one payment per
/// invoice attempt) turn a lost race into a skipped step. A stop lets the run in hand finish.
/// </remarks>
internal sealed partial class BillingRunWorker(BillingEngine engine, WorkerSettings settings, WorkerStatus status, TimeProvider time, ILogger<BillingRunWorker> logger)
    : PeriodicWorker(time, logger)
{
    protected override string Name => "billing-run";

    protected override TimeSpan Interval => settings.BillingRun.Interval;

    protected override async Task<bool> RunBatchAsync(CancellationToken cancellationToken)
    {
        var now = Time.GetUtcNow();
        BillingRunResult result;
        try
        {
            result = await engine.AdvanceAsync(now, null, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            status.RunFailed();
            throw;
        }

        status.RunFinished(now, result);
        if (result.SubscriptionsProcessed + result.InvoicesFinalized + result.PaymentsAttempted + result.Skipped > 0)
        {
            LogRun(logger, now, result.SubscriptionsProcessed, result.InvoicesCreated, result.InvoicesFinalized, result.PaymentsAttempted, result.Skipped);
        }

        return false;
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "Billing run at {Now:O}: {Subscriptions} subscription steps, {InvoicesCreated} invoices created, {InvoicesFinalized} finalized, {PaymentsAttempted} payment attempts, {Skipped} steps done by other runs")]
    private static partial void LogRun(ILogger logger, DateTimeOffset now, int subscriptions, int invoicesCreated, int invoicesFinalized, int paymentsAttempted, int skipped);
}
