using System.Globalization;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Engine;

public sealed partial class BillingEngine
{
    private const int MaxAdvanceSteps = 1_000_000;

    /// <summary>
    /// The billing run: does everything due at or before <paramref name="now"/> — trial-end notices and trial ends,
    /// renewals (with scheduled changes), cancellations at period end, draft finalization, payment attempts and
    /// dunning retries — each exactly once, in the order it fell due.
    /// </summary>
    /// <param name="now">The instant to bring billing up to.</param>
    /// <param name="testClockId">Run for the customers of this test clock only; null runs real-time customers only.</param>
    /// <param name="cancellationToken">Cancels between steps (a step in progress completes or rolls back).</param>
    /// <returns>What was done.</returns>
    /// <remarks>
    /// Each step runs in its own unit of work at the time it fell due (a renewal on 31 March happens "at" 31 March
    /// even when the run catches up later). Running again for the same <paramref name="now"/>, or running several
    /// runs at once, does nothing twice: a step another run has done is no longer due, and a race to the same step
    /// ends in a conflict or duplicate key at commit for all but one (counted as <see cref="BillingRunResult.Skipped"/>).
    /// </remarks>
    public async Task<BillingRunResult> AdvanceAsync(DateTimeOffset now, string? testClockId = null, CancellationToken cancellationToken = default)
    {
        var counters = new RunCounters();
        using var activity = Diagnostics.BillingDiagnostics.StartRun(testClockId);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            IReadOnlyList<Subscription> subscriptions;
            IReadOnlyList<Invoice> invoices;
            await using (var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false))
            {
                // Claim the batch so that runs in other processes skip it; the claim ends with the lease or when a
                // step updates the row.
                var leaseStart = _time.GetUtcNow();
                subscriptions = await session.Subscriptions.ClaimDueAsync(now, testClockId, _options.RunBatchSize, leaseStart, _options.RunClaimLease, cancellationToken).ConfigureAwait(false);
                invoices = await session.Invoices.ClaimDueAsync(now, testClockId, _options.RunBatchSize, leaseStart, _options.RunClaimLease, cancellationToken).ConfigureAwait(false);
                await session.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (subscriptions.Count == 0 && invoices.Count == 0)
            {
                return Diagnostics.BillingDiagnostics.RunDone(activity, counters.ToResult());
            }

            // Steps of one customer run in time order, one after another; different customers run in parallel.
            var byCustomer = subscriptions.Select(s => (At: s.NextActionAt!.Value, IsSubscription: true, s.Id, s.CustomerId))
                .Concat(invoices.Select(i => (At: i.NextActionAt!.Value, IsSubscription: false, i.Id, i.CustomerId)))
                .OrderBy(x => x.At).ThenBy(x => x.Id, StringComparer.Ordinal)
                .GroupBy(x => x.CustomerId, StringComparer.Ordinal)
                .ToList();
            var progressed = 0;
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = _options.RunParallelism, CancellationToken = cancellationToken };
            await Parallel.ForEachAsync(byCustomer, parallel, async (steps, ct) =>
            {
                foreach (var (_, isSubscription, id, _) in steps)
                {
                    using var step = Diagnostics.BillingDiagnostics.StartRunStep(isSubscription ? "subscription" : "invoice", id);
                    try
                    {
                        var done = isSubscription
                            ? await ProcessSubscriptionAsync(id, now, counters, ct).ConfigureAwait(false)
                            : await ProcessInvoiceAsync(id, now, counters, ct).ConfigureAwait(false);
                        if (done)
                        {
                            Interlocked.Increment(ref progressed);
                        }
                    }
                    catch (Exception e) when (e is DuplicateKeyException or ConcurrencyConflictException)
                    {
                        Interlocked.Increment(ref counters.Skipped); // another run did (or is doing) this step
                    }
                }
            }).ConfigureAwait(false);

            if (progressed == 0)
            {
                return Diagnostics.BillingDiagnostics.RunDone(activity, counters.ToResult()); // everything due was taken by other runs
            }
        }
    }

    /// <summary>
    /// Moves a test clock forward to <paramref name="to"/>, running every billing step due in between for the
    /// clock's customers, in time order, with the clock showing each step's time.
    /// </summary>
    /// <param name="testClockId">The clock.</param>
    /// <param name="to">The new time; not before the clock's current time.</param>
    /// <param name="cancellationToken">Cancels between steps.</param>
    /// <returns>The clock at its new time.</returns>
    /// <exception cref="BillingValidationException"><paramref name="to"/> is before the clock's time.</exception>
    public async Task<TestClock> AdvanceTestClockAsync(string testClockId, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        var clock = await GetTestClockAsync(testClockId, cancellationToken).ConfigureAwait(false);
        Require(to >= clock.FrozenTime, "frozen_time", $"A test clock only moves forward (it is at {clock.FrozenTime:O}).");
        for (var step = 0; step < MaxAdvanceSteps; step++)
        {
            DateTimeOffset? next;
            await using (var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false))
            {
                var s = await session.Subscriptions.ListDueAsync(to, testClockId, 1, cancellationToken).ConfigureAwait(false);
                var i = await session.Invoices.ListDueAsync(to, testClockId, 1, cancellationToken).ConfigureAwait(false);
                next = new[] { s.Count > 0 ? s[0].NextActionAt : null, i.Count > 0 ? i[0].NextActionAt : null }.Where(x => x is not null).Min();
            }

            if (next is not { } at)
            {
                return await SetClockAsync(testClockId, to, cancellationToken).ConfigureAwait(false);
            }

            await SetClockAsync(testClockId, at, cancellationToken).ConfigureAwait(false);
            await AdvanceAsync(at, testClockId, cancellationToken).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"Test clock '{testClockId}' did not settle after {MaxAdvanceSteps} steps.");
    }

    /// <summary>Reads a test clock.</summary>
    /// <param name="testClockId">The clock.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The clock.</returns>
    /// <exception cref="BillingNotFoundException">No such clock.</exception>
    public async Task<TestClock> GetTestClockAsync(string testClockId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.TestClocks.GetAsync(testClockId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("test_clock", testClockId);
    }

    private Task<TestClock> SetClockAsync(string testClockId, DateTimeOffset time, CancellationToken cancellationToken) =>
        InSessionAsync(async session =>
        {
            var clock = await session.TestClocks.GetAsync(testClockId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("test_clock", testClockId);
            if (time <= clock.FrozenTime)
            {
                return clock;
            }

            var moved = clock with { FrozenTime = time };
            session.TestClocks.Update(moved);
            return moved with { Version = clock.Version + 1 };
        }, cancellationToken);

    /// <summary>Does the one step a subscription is due for; false when it was no longer due.</summary>
    private async Task<bool> ProcessSubscriptionAsync(string subscriptionId, DateTimeOffset now, RunCounters counters, CancellationToken cancellationToken)
    {
        return await InSessionAsync(async (session, committed) =>
        {
            var subscription = await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
            if (subscription?.NextActionAt is not { } at || at > now)
            {
                return false;
            }

            var customer = await session.Customers.GetAsync(subscription.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", subscription.CustomerId);
            var plan = await session.Plans.GetAsync(subscription.PlanId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", subscription.PlanId);
            Interlocked.Increment(ref committed.Subscriptions);

            if (subscription.Status == SubscriptionStatus.Trialing && subscription.TrialEnd is { } trialEnd && at < trialEnd)
            {
                session.Subscriptions.Update(subscription with { NextActionAt = trialEnd });
                session.Outbox.Append(NewEvent("subscription.trial_will_end", at, "subscription", subscription.Id, customer.Id, ("trial_end", trialEnd.ToString("O", CultureInfo.InvariantCulture))));
                return true;
            }

            if (subscription.CancelAtPeriodEnd && at >= subscription.CurrentPeriod.End)
            {
                var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.Cancel);
                // The last period's usage and the pending lines are billed on a final invoice (a draft until the usage closes), as a renewal would.
                var (_, billed) = await AddFinalUsageInvoiceAsync(session, customer, subscription, plan, subscription.CurrentPeriod.End, BillingReason.SubscriptionCycle, at, cancellationToken).ConfigureAwait(false);
                session.Subscriptions.Update(billed with { Status = status, CanceledAt = subscription.CurrentPeriod.End, NextActionAt = null, CancelAtPeriodEnd = false });
                session.Outbox.Append(NewEvent("subscription.canceled", at, "subscription", subscription.Id, customer.Id, ("previous_status", Snake(subscription.Status)), ("reason", "cancel_at_period_end")));
                return true;
            }

            if (subscription.Status == SubscriptionStatus.Trialing)
            {
                // The trial is over: the first paid period starts at the trial end (the billing anchor).
                var schedule = BillingSchedule.FromLocalAnchor(subscription.ScheduleStart, subscription.AnchorLocal, plan.Interval, Zone(customer.TimeZoneId));
                var first = schedule.GetPeriod(0);
                var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.TrialEnded);
                var active = subscription with { Status = status, CurrentPeriod = first, NextActionAt = first.End };
                session.Outbox.Append(NewEvent("subscription.updated", at, "subscription", subscription.Id, customer.Id, ("status", Snake(status)), ("previous_status", "trialing")));
                await CreatePeriodInvoiceAsync(session, customer, active, plan, first, [], BillingReason.SubscriptionCycle, at, at + _options.DraftFinalizationDelay, committed, finalizeNow: false, isNew: false, cancellationToken).ConfigureAwait(false);
                return true;
            }

            if (subscription.Status is SubscriptionStatus.Active or SubscriptionStatus.PastDue or SubscriptionStatus.Unpaid && at >= subscription.CurrentPeriod.End)
            {
                var ended = subscription.CurrentPeriod;
                var usage = await _usage.GetUsageLinesAsync(subscription, plan, UsagePeriodOf(subscription, ended), cancellationToken).ConfigureAwait(false);
                var nextPlan = plan;
                var quantity = subscription.Quantity;
                if (subscription.PendingChange is { } pending)
                {
                    nextPlan = await session.Plans.GetAsync(pending.PlanId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", pending.PlanId);
                    quantity = pending.Quantity;
                }

                var zone = Zone(customer.TimeZoneId);
                var renewed = subscription with { PlanId = nextPlan.Id, Quantity = quantity, PendingChange = null };
                BillingPeriod period;
                if (nextPlan.Interval != plan.Interval)
                {
                    var schedule = BillingSchedule.Anniversary(ended.End, nextPlan.Interval, zone);
                    period = schedule.GetPeriod(0);
                    renewed = renewed with { ScheduleStart = ended.End, AnchorLocal = schedule.AnchorLocal };
                }
                else
                {
                    period = BillingSchedule.FromLocalAnchor(subscription.ScheduleStart, subscription.AnchorLocal, plan.Interval, zone).GetNextPeriod(ended);
                }

                var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.Renew);
                renewed = renewed with { Status = status, CurrentPeriod = period, NextActionAt = period.End };
                session.Outbox.Append(NewEvent("subscription.updated", at, "subscription", subscription.Id, customer.Id, ("current_period_start", period.Start.ToString("O", CultureInfo.InvariantCulture)), ("plan", nextPlan.Id)));
                // A draft that bills usage stays open until its usage closes (late events within the grace), then the delay.
                var usageClosesAt = _usage.UsageClosesAt(plan, ended);
                var finalizeAt = (usageClosesAt > at ? usageClosesAt : at) + _options.DraftFinalizationDelay;
                await CreatePeriodInvoiceAsync(session, customer, renewed, nextPlan, period, usage, BillingReason.SubscriptionCycle, at, finalizeAt, committed, finalizeNow: false, isNew: false, cancellationToken).ConfigureAwait(false);
                return true;
            }

            // Nothing to do in this state (incomplete, paused, canceled): stop looking at it.
            session.Subscriptions.Update(subscription with { NextActionAt = null });
            return true;
        }, counters, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Does the one step an invoice is due for (finalize a draft, or charge); false when it was no longer due.</summary>
    private async Task<bool> ProcessInvoiceAsync(string invoiceId, DateTimeOffset now, RunCounters counters, CancellationToken cancellationToken)
    {
        Invoice? invoice;
        await using (var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false))
        {
            invoice = await session.Invoices.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false);
        }

        if (invoice?.NextActionAt is not { } at || at > now)
        {
            return false;
        }

        if (invoice.Status == InvoiceStatus.Draft)
        {
            await FinalizeAndChargeAsync(invoiceId, at, counters, requireDraft: false, cancellationToken, leaseFrom: now).ConfigureAwait(false);
        }
        else
        {
            await ChargeAsync(invoiceId, at, null, counters, cancellationToken, leaseFrom: now).ConfigureAwait(false);
        }

        return true;
    }
}
