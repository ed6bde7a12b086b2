using System.Diagnostics;
using System.Diagnostics.Metrics;
using Billing.Events;
using Billing.Payments;
using Billing.Ports;
using Billing.Usage;
using MetricsMeter = System.Diagnostics.Metrics.Meter;

namespace Billing.Diagnostics;

/// <summary>
/// The library's metrics (<see cref="System.Diagnostics.Metrics"/>) and traces (<see cref="ActivitySource"/>), both
/// named <c>Billing</c>, so any OpenTelemetry setup (<c>AddMeter("Billing")</c>, <c>AddSource("Billing")</c>) or a
/// <see cref="MeterListener"/> / <see cref="ActivityListener"/> picks them up. Nothing is recorded or allocated for
/// traces when nobody listens.
/// </summary>
/// <remarks>
/// <para>Counters (all <see cref="Counter{T}"/> of <see cref="long"/>):</para>
/// <list type="bullet">
/// <item><description><c>billing.invoices.created</c> — invoices created (a subscription's first invoice, renewals,
/// invoices of immediate changes), counted from committed <c>invoice.created</c> events.</description></item>
/// <item><description><c>billing.payments</c> — payment attempts whose outcome was recorded, tag <c>outcome</c>:
/// <c>succeeded</c>, <c>requires_action</c>, <c>declined</c> or <c>failed_retryable</c>; declines also carry
/// <c>decline_type</c> (<c>hard</c> or <c>soft</c>).</description></item>
/// <item><description><c>billing.usage.events</c> — usage events ingested, tag <c>status</c>: <c>accepted</c>,
/// <c>duplicate</c> or <c>rejected</c>; rejections also carry <c>reason</c> (the
/// <see cref="UsageIngestResult.Reason"/> code, for example <c>over_limit</c> or <c>timestamp_too_old</c>).</description></item>
/// <item><description><c>billing.dunning.transitions</c> — dunning state changes of an invoice, tag <c>transition</c>:
/// <c>started</c>, <c>retry_scheduled</c>, <c>exhausted</c> or <c>resolved</c>, counted from committed
/// <c>dunning.*</c> events.</description></item>
/// </list>
/// <para>Counts come from committed work only: an attempt rolled back (a conflict retried, a duplicate key lost to
/// another worker) counts nothing, so the numbers match what the database holds. Each process counts what it did;
/// several host instances each report their own share.</para>
/// <para>Spans: <c>billing.run</c> (one <c>AdvanceAsync</c> call; tags <c>billing.test_clock</c> and, at the end,
/// <c>billing.subscriptions_processed</c>, <c>billing.invoices_created</c>, <c>billing.invoices_finalized</c>,
/// <c>billing.payments_attempted</c>, <c>billing.skipped</c>), <c>billing.run.step</c> (one step of a run on a
/// subscription or an invoice; tags <c>billing.object</c>, <c>billing.object_id</c>), <c>billing.payment.attempt</c>
/// (one charge: tags <c>billing.invoice_id</c>, and <c>billing.payment.outcome</c> once known) and
/// <c>billing.usage.ingest</c> (one ingested batch; tags <c>billing.usage.events</c>, <c>billing.usage.accepted</c>,
/// <c>billing.usage.duplicate</c>, <c>billing.usage.rejected</c>).</para>
/// </remarks>
public static class BillingDiagnostics
{
    /// <summary>The name of the <see cref="MetricsMeter"/>: <c>Billing</c>.</summary>
    public const string MeterName = "Billing";

    /// <summary>The name of the <see cref="ActivitySource"/>: <c>Billing</c>.</summary>
    public const string ActivitySourceName = "Billing";

    /// <summary>The counter of invoices created: <c>billing.invoices.created</c>.</summary>
    public const string InvoicesCreated = "billing.invoices.created";

    /// <summary>The counter of recorded payment outcomes: <c>billing.payments</c> (tag <c>outcome</c>).</summary>
    public const string Payments = "billing.payments";

    /// <summary>The counter of ingested usage events: <c>billing.usage.events</c> (tags <c>status</c>, <c>reason</c>).</summary>
    public const string UsageEvents = "billing.usage.events";

    /// <summary>The counter of dunning transitions: <c>billing.dunning.transitions</c> (tag <c>transition</c>).</summary>
    public const string DunningTransitions = "billing.dunning.transitions";

    /// <summary>The span of one billing run: <c>billing.run</c>.</summary>
    public const string RunActivity = "billing.run";

    /// <summary>The span of one step of a billing run: <c>billing.run.step</c>.</summary>
    public const string RunStepActivity = "billing.run.step";

    /// <summary>The span of one payment attempt: <c>billing.payment.attempt</c>.</summary>
    public const string PaymentAttemptActivity = "billing.payment.attempt";

    /// <summary>The span of one usage ingestion call: <c>billing.usage.ingest</c>.</summary>
    public const string UsageIngestActivity = "billing.usage.ingest";

    private static readonly string? Version = typeof(BillingDiagnostics).Assembly.GetName().Version?.ToString();
    private static readonly MetricsMeter BillingMeter = new(MeterName, Version);
    private static readonly ActivitySource Source = new(ActivitySourceName, Version);
    private static readonly Counter<long> InvoicesCreatedCounter = BillingMeter.CreateCounter<long>(InvoicesCreated, "{invoice}", "Invoices created.");
    private static readonly Counter<long> PaymentsCounter = BillingMeter.CreateCounter<long>(Payments, "{payment}", "Payment attempts with a recorded outcome, by outcome.");
    private static readonly Counter<long> UsageEventsCounter = BillingMeter.CreateCounter<long>(UsageEvents, "{event}", "Usage events ingested, by status (and rejection reason).");
    private static readonly Counter<long> DunningTransitionsCounter = BillingMeter.CreateCounter<long>(DunningTransitions, "{transition}", "Dunning transitions of invoices.");

    /// <summary>Wraps a store so that what its sessions commit is counted (invoices created, dunning transitions).</summary>
    internal static IBillingStore Observe(IBillingStore store) => store is ObservedBillingStore ? store : new ObservedBillingStore(store);

    internal static Activity? StartRun(string? testClockId) =>
        Source.StartActivity(RunActivity)?.SetTag("billing.test_clock", testClockId);

    internal static Activity? StartRunStep(string objectType, string id) =>
        Source.StartActivity(RunStepActivity)?.SetTag("billing.object", objectType).SetTag("billing.object_id", id);

    internal static Activity? StartPaymentAttempt(string invoiceId) =>
        Source.StartActivity(PaymentAttemptActivity)?.SetTag("billing.invoice_id", invoiceId);

    internal static Activity? StartUsageIngest(int events) =>
        Source.StartActivity(UsageIngestActivity)?.SetTag("billing.usage.events", events);

    /// <summary>Tags a finished run's span with what it did; returns <paramref name="result"/>.</summary>
    internal static Engine.BillingRunResult RunDone(Activity? activity, Engine.BillingRunResult result)
    {
        activity?.SetTag("billing.subscriptions_processed", result.SubscriptionsProcessed)
            .SetTag("billing.invoices_created", result.InvoicesCreated)
            .SetTag("billing.invoices_finalized", result.InvoicesFinalized)
            .SetTag("billing.payments_attempted", result.PaymentsAttempted)
            .SetTag("billing.skipped", result.Skipped);
        return result;
    }

    /// <summary>Counts a payment outcome that was recorded (committed).</summary>
    internal static void PaymentRecorded(Activity? activity, PaymentResult result)
    {
        var outcome = Naming.SnakeCase(result.Outcome.ToString());
        activity?.SetTag("billing.payment.outcome", outcome);
        if (!PaymentsCounter.Enabled)
        {
            return;
        }

        if (result.Outcome == PaymentOutcome.Declined)
        {
            PaymentsCounter.Add(1, new KeyValuePair<string, object?>("outcome", outcome), new KeyValuePair<string, object?>("decline_type", result.DeclineType is { } type ? Naming.SnakeCase(type.ToString()) : null));
        }
        else
        {
            PaymentsCounter.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    /// <summary>Counts a batch's ingestion results; returns <paramref name="results"/>.</summary>
    internal static IReadOnlyList<UsageIngestResult> UsageIngested(Activity? activity, IReadOnlyList<UsageIngestResult> results)
    {
        if (activity is null && !UsageEventsCounter.Enabled)
        {
            return results;
        }

        int accepted = 0, duplicate = 0, rejected = 0;
        foreach (var result in results)
        {
            switch (result.Status)
            {
                case UsageIngestStatus.Accepted:
                    accepted++;
                    break;
                case UsageIngestStatus.Duplicate:
                    duplicate++;
                    break;
                default:
                    rejected++;
                    UsageEventsCounter.Add(1, new KeyValuePair<string, object?>("status", "rejected"), new KeyValuePair<string, object?>("reason", result.Reason));
                    break;
            }
        }

        if (accepted > 0)
        {
            UsageEventsCounter.Add(accepted, new KeyValuePair<string, object?>("status", "accepted"));
        }

        if (duplicate > 0)
        {
            UsageEventsCounter.Add(duplicate, new KeyValuePair<string, object?>("status", "duplicate"));
        }

        activity?.SetTag("billing.usage.accepted", accepted).SetTag("billing.usage.duplicate", duplicate).SetTag("billing.usage.rejected", rejected);
        return results;
    }

    /// <summary>Counts what a committed unit of work's events say happened.</summary>
    internal static void Committed(List<BillingEvent> events)
    {
        foreach (var e in events)
        {
            if (string.Equals(e.Type, "invoice.created", StringComparison.Ordinal))
            {
                InvoicesCreatedCounter.Add(1);
            }
            else if (e.Type.StartsWith("dunning.", StringComparison.Ordinal))
            {
                DunningTransitionsCounter.Add(1, new KeyValuePair<string, object?>("transition", e.Type["dunning.".Length..]));
            }
        }
    }

    /// <summary>A store whose sessions report their events once they committed.</summary>
    private sealed class ObservedBillingStore(IBillingStore inner) : IBillingStore
    {
        public async ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default) =>
            new ObservedSession(await inner.BeginAsync(cancellationToken).ConfigureAwait(false));
    }

    private sealed class ObservedSession(IBillingSession inner) : IBillingSession, IOutbox
    {
        private readonly List<BillingEvent> _events = [];

        public ICustomerStore Customers => inner.Customers;

        public IPlanStore Plans => inner.Plans;

        public ISubscriptionStore Subscriptions => inner.Subscriptions;

        public IInvoiceStore Invoices => inner.Invoices;

        public IPaymentStore Payments => inner.Payments;

        public ITestClockStore TestClocks => inner.TestClocks;

        public IOutbox Outbox => this;

        public IIdempotencyStore Idempotency => inner.Idempotency;

        public void Append(BillingEvent billingEvent)
        {
            inner.Outbox.Append(billingEvent);
            _events.Add(billingEvent);
        }

        public ValueTask<IReadOnlyList<OutboxEntry>> ReadAsync(long afterPosition, int limit, CancellationToken cancellationToken = default) =>
            inner.Outbox.ReadAsync(afterPosition, limit, cancellationToken);

        public async ValueTask CommitAsync(CancellationToken cancellationToken = default)
        {
            await inner.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (_events.Count > 0)
            {
                Committed(_events);
                _events.Clear();
            }
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
