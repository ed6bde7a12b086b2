using Billing.Engine;

namespace Billing.SampleHost.Workers;

/// <summary>What this instance's workers have done since start (for logs, diagnostics and tests).</summary>
internal sealed class WorkerStatus
{
    private readonly Lock _gate = new();
    private BillingRunTotals _run = new(0, 0, 0, 0, 0, 0, 0, null, null);
    private OutboxTotals _outbox = new(0, 0, 0, 0, 0);

    /// <summary>Totals of the billing runs of this instance.</summary>
    public BillingRunTotals BillingRun
    {
        get
        {
            lock (_gate)
            {
                return _run;
            }
        }
    }

    /// <summary>Totals of the outbox dispatcher of this instance.</summary>
    public OutboxTotals Outbox
    {
        get
        {
            lock (_gate)
            {
                return _outbox;
            }
        }
    }

    public void RunFinished(DateTimeOffset now, BillingRunResult result)
    {
        lock (_gate)
        {
            _run = new BillingRunTotals(
                _run.Runs + 1,
                _run.SubscriptionsProcessed + result.SubscriptionsProcessed,
                _run.InvoicesCreated + result.InvoicesCreated,
                _run.InvoicesFinalized + result.InvoicesFinalized,
                _run.PaymentsAttempted + result.PaymentsAttempted,
                _run.Skipped + result.Skipped,
                _run.Failures,
                now,
                result);
        }
    }

    public void RunFailed()
    {
        lock (_gate)
        {
            _run = _run with { Failures = _run.Failures + 1 };
        }
    }

    public void BatchDispatched(int events, long position)
    {
        lock (_gate)
        {
            _outbox = _outbox with { Batches = _outbox.Batches + 1, Dispatched = _outbox.Dispatched + events, Position = position };
        }
    }

    public void OutboxChecked(bool claimed)
    {
        lock (_gate)
        {
            _outbox = claimed ? _outbox with { Checks = _outbox.Checks + 1 } : _outbox with { Checks = _outbox.Checks + 1, Skipped = _outbox.Skipped + 1 };
        }
    }
}

/// <summary>Billing-run totals; <see cref="LastNow"/> and <see cref="Last"/> are the latest finished run.</summary>
internal sealed record BillingRunTotals(long Runs, long SubscriptionsProcessed, long InvoicesCreated, long InvoicesFinalized, long PaymentsAttempted, long Skipped, long Failures, DateTimeOffset? LastNow, BillingRunResult? Last);

/// <summary>Outbox totals: checks (batches tried), skipped (checkpoint held by another instance), batches
/// dispatched, events dispatched, the checkpoint after the latest batch.</summary>
internal sealed record OutboxTotals(long Checks, long Skipped, long Batches, long Dispatched, long Position);
