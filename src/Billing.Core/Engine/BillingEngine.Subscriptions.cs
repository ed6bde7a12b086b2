using System.Globalization;
using Billing.Catalog;
using Billing.Customers;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Proration;
using Billing.Subscriptions;

namespace Billing.Engine;

public sealed partial class BillingEngine
{
    /// <summary>
    /// Creates a subscription. With a trial it starts <c>trialing</c> and is first invoiced when the trial ends
    /// (the billing anchor is the trial end). Without one it starts <c>incomplete</c>; its first invoice is created,
    /// finalized and charged at once, and a successful payment (or a zero invoice) makes it <c>active</c>.
    /// </summary>
    /// <param name="request">The subscription's content.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription after its first invoice, if any, was charged.</returns>
    /// <exception cref="BillingValidationException">Bad quantity or trial, an archived plan, or a currency mismatch.</exception>
    /// <exception cref="BillingNotFoundException">Unknown customer or plan.</exception>
    public async Task<Subscription> CreateSubscriptionAsync(NewSubscription request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        Require(request.Quantity is >= 1 and <= 1_000_000_000, "quantity", "Quantity must be 1 to 1,000,000,000.");
        Require(request.TrialDays is null or (>= 0 and <= 730), "trial_days", "Trial days must be 0 to 730.");
        var counters = new RunCounters();
        var (subscriptionId, invoiceToCharge, at) = await InSessionAsync(async session =>
        {
            var customer = await session.Customers.GetAsync(request.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", request.CustomerId);
            var plan = await session.Plans.GetAsync(request.PlanId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", request.PlanId);
            Require(!plan.Archived, "plan", $"The plan '{plan.Id}' is archived and takes no new subscriptions.");
            Require(ReferenceEquals(plan.Currency, customer.Currency), "plan", $"The plan is in {plan.Currency.Code} but the customer pays in {customer.Currency.Code}.");
            if (request.Coupon?.AmountOff is { } off)
            {
                Require(ReferenceEquals(off.Currency, customer.Currency), "coupon", $"The coupon is in {off.Currency.Code} but the customer pays in {customer.Currency.Code}.");
            }

            var now = await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            var zone = Zone(customer.TimeZoneId);
            var trialDays = request.TrialDays ?? plan.TrialDays;
            var discount = request.Coupon is { } coupon
                ? new AppliedDiscount(coupon, coupon.Duration switch { CouponDuration.Once => 1, CouponDuration.Repeating => coupon.DurationInPeriods, _ => null })
                : null;
            var id = _ids.NewId("sub");
            if (trialDays > 0)
            {
                var trialEnd = now.AddDays(trialDays);
                var trialing = new Subscription
                {
                    Id = id,
                    CustomerId = customer.Id,
                    PlanId = plan.Id,
                    Quantity = request.Quantity,
                    Status = SubscriptionStatus.Trialing,
                    ScheduleStart = trialEnd,
                    AnchorLocal = BillingSchedule.Anniversary(trialEnd, plan.Interval, zone).AnchorLocal,
                    CurrentPeriod = new BillingPeriod(now, trialEnd),
                    TrialEnd = trialEnd,
                    Discount = discount,
                    PaymentMethod = request.PaymentMethod,
                    NextActionAt = trialEnd - _options.TrialWillEndNotice > now ? trialEnd - _options.TrialWillEndNotice : trialEnd,
                    TestClockId = customer.TestClockId,
                    CreatedAt = now,
                };
                session.Subscriptions.Add(trialing);
                session.Outbox.Append(NewEvent("subscription.created", now, "subscription", id, customer.Id, ("status", "trialing"), ("trial_end", trialEnd.ToString("O", CultureInfo.InvariantCulture))));
                return (id, (string?)null, now);
            }

            var schedule = BillingSchedule.Anniversary(now, plan.Interval, zone);
            var period = schedule.GetPeriod(0);
            var subscription = new Subscription
            {
                Id = id,
                CustomerId = customer.Id,
                PlanId = plan.Id,
                Quantity = request.Quantity,
                Status = SubscriptionStatus.Incomplete,
                ScheduleStart = now,
                AnchorLocal = schedule.AnchorLocal,
                CurrentPeriod = period,
                Discount = discount,
                PaymentMethod = request.PaymentMethod,
                NextActionAt = period.End,
                TestClockId = customer.TestClockId,
                CreatedAt = now,
            };
            session.Outbox.Append(NewEvent("subscription.created", now, "subscription", id, customer.Id, ("status", "incomplete")));
            var invoiceId = await CreatePeriodInvoiceAsync(session, customer, subscription, plan, period, [], BillingReason.SubscriptionCreate, now, now, counters, finalizeNow: true, isNew: true, cancellationToken).ConfigureAwait(false);
            return (id, invoiceId, now);
        }, cancellationToken).ConfigureAwait(false);

        if (invoiceToCharge is not null)
        {
            await ChargeAsync(invoiceToCharge, at, null, counters, cancellationToken).ConfigureAwait(false);
        }

        return await GetSubscriptionAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a subscription.</summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription.</returns>
    /// <exception cref="BillingNotFoundException">No such subscription.</exception>
    public async Task<Subscription> GetSubscriptionAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("subscription", subscriptionId);
    }

    /// <summary>
    /// Creates (and adds to the session) the invoice for a subscription period: the plan charge, pending proration
    /// lines, usage of the period that just ended, the coupon and tax. Updates the subscription (latest invoice,
    /// discount left, pending lines cleared) and, when <paramref name="finalizeNow"/>, finalizes the invoice.
    /// Returns the invoice id when it must be charged after commit.
    /// </summary>
    private async Task<string?> CreatePeriodInvoiceAsync(
        IBillingSession session, Customer customer, Subscription subscription, Plan plan, BillingPeriod period, IReadOnlyList<InvoiceLine> usage,
        BillingReason reason, DateTimeOffset at, DateTimeOffset finalizeAt, RunCounters counters, bool finalizeNow, bool isNew, CancellationToken cancellationToken, bool newCycle = false)
    {
        // A new cycle (restart, resume, new interval) may start where a canceled cycle's period started: key it by version.
        var key = newCycle ? UpdateKey(subscription) : PeriodKey(subscription.Id, period);
        Invoice invoice;
        (invoice, subscription) = NewSubscriptionDraft(customer, subscription, key, reason, period, PlanLine(plan, subscription.Quantity, period), usage, at, finalizeAt);
        session.Outbox.Append(NewEvent("invoice.created", at, "invoice", invoice.Id, customer.Id, ("subscription", subscription.Id), ("total", invoice.Total.MinorUnits)));
        Interlocked.Increment(ref counters.Created);

        string? charge = null;
        if (finalizeNow)
        {
            var (finalized, updatedCustomer) = await FinalizeAsync(session, invoice, customer, at, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref counters.Finalized);
            if (!ReferenceEquals(updatedCustomer, customer))
            {
                session.Customers.Update(updatedCustomer);
            }

            if (finalized.Status == InvoiceStatus.Paid)
            {
                subscription = Activate(session, subscription, at);
            }

            invoice = LeasedForCharge(finalized, at);
            charge = finalized.NextActionAt is not null ? finalized.Id : null;
        }

        session.Invoices.Add(invoice);
        if (isNew)
        {
            session.Subscriptions.Add(subscription);
        }
        else
        {
            session.Subscriptions.Update(subscription);
        }

        return charge;
    }

    /// <summary>
    /// Cancels a subscription now, or at the end of its current period. Canceling now can credit the unused
    /// part of the period to the customer's balance (<paramref name="prorate"/>); emits <c>subscription.canceled</c>
    /// (now) or <c>subscription.updated</c> (at period end).
    /// </summary>
    /// <remarks>
    /// What no renewal will bill now is billed on a final invoice (the subscription's latest invoice): now, the usage
    /// of the period so far; at period end, the last period's usage, when the period ends (no renewal). Like a renewal
    /// without the plan charge, it also bills the pending lines (prorations of earlier changes that were waiting for the
    /// next renewal; cleared once billed) and applies the coupon and tax as a renewal would (a once coupon already used
    /// does not apply again; a once coupon used here is used up; a repeating one keeps its count of periods). It stays a
    /// draft until the usage closes (late events within the grace are accepted) plus
    /// <see cref="BillingOptions.DraftFinalizationDelay"/>, and its usage is priced again from the durable usage when it
    /// is finalized; then it is charged. No final invoice when there is nothing to bill (no usage pricing and no pending
    /// line), or when the subscription was trialing, incomplete or paused. A cancellation by dunning
    /// (<see cref="Billing.Dunning.DunningFinalAction.Cancel"/>) makes the same final invoice as canceling now.
    /// </remarks>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="atPeriodEnd">Cancel when the current period ends instead of now.</param>
    /// <param name="prorate">When canceling now: credit the unused time of the paid period to the customer's balance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription.</returns>
    /// <exception cref="InvalidStateTransitionException">The subscription is already canceled.</exception>
    public Task<Subscription> CancelSubscriptionAsync(string subscriptionId, bool atPeriodEnd = false, bool prorate = false, CancellationToken cancellationToken = default) =>
        InSessionAsync(async session =>
        {
            var (subscription, customer, plan, now) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
            if (atPeriodEnd)
            {
                _ = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.ScheduleCancellation);
                var scheduled = subscription with { CancelAtPeriodEnd = true };
                session.Subscriptions.Update(scheduled);
                session.Outbox.Append(NewEvent("subscription.updated", now, "subscription", subscription.Id, customer.Id, ("cancel_at_period_end", "true")));
                return scheduled with { Version = subscription.Version + 1 };
            }

            var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.Cancel);
            if (prorate && subscription.Status is SubscriptionStatus.Active or SubscriptionStatus.PastDue && subscription.CurrentPeriod.Contains(now))
            {
                var full = plan.Price.CalculateTotal(subscription.Quantity);
                var (unused, _) = ProrationCalculator.ProrateSpan(full, subscription.CurrentPeriod, now, subscription.CurrentPeriod.End, _options.ProrationRounding);
                if (unused.IsPositive)
                {
                    session.Customers.Update(customer with { CreditBalance = customer.CreditBalance + unused });
                    session.Outbox.Append(NewEvent("customer.updated", now, "customer", customer.Id, customer.Id, ("credit_balance", (customer.CreditBalance + unused).MinorUnits), ("reason", "cancellation_proration")));
                }
            }

            // The usage of the period so far and the pending lines are billed on a final invoice (a draft until the usage closes).
            var (_, billed) = await AddFinalUsageInvoiceAsync(session, customer, subscription, plan, now, BillingReason.SubscriptionUpdate, now, cancellationToken).ConfigureAwait(false);
            var canceled = billed with { Status = status, CanceledAt = now, NextActionAt = null, CancelAtPeriodEnd = false, PendingChange = null };
            session.Subscriptions.Update(canceled);
            session.Outbox.Append(NewEvent("subscription.canceled", now, "subscription", subscription.Id, customer.Id, ("previous_status", Snake(subscription.Status))));
            return canceled with { Version = subscription.Version + 1 };
        }, cancellationToken);

    /// <summary>
    /// Reactivates a subscription: undoes a pending cancel-at-period-end, or restarts a canceled subscription with a
    /// new period starting now (a new first invoice, charged at once; <c>incomplete</c> until paid).
    /// </summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription.</returns>
    /// <exception cref="InvalidStateTransitionException">Nothing to reactivate.</exception>
    public async Task<Subscription> ReactivateSubscriptionAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        var counters = new RunCounters();
        var (charge, at) = await InSessionAsync(async session =>
        {
            var (subscription, customer, plan, now) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
            if (subscription.Status != SubscriptionStatus.Canceled)
            {
                if (!subscription.CancelAtPeriodEnd)
                {
                    throw new InvalidStateTransitionException("subscription", Snake(subscription.Status), "reactivate", ["cancel (a canceled subscription, or one set to cancel at period end, can be reactivated)"]);
                }

                _ = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.ScheduleCancellation);
                session.Subscriptions.Update(subscription with { CancelAtPeriodEnd = false });
                session.Outbox.Append(NewEvent("subscription.updated", now, "subscription", subscription.Id, customer.Id, ("cancel_at_period_end", "false")));
                return ((string?)null, now);
            }

            Require(!plan.Archived, "plan", $"The plan '{plan.Id}' is archived; restart on another plan.");
            var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.Restart);
            var schedule = BillingSchedule.Anniversary(now, plan.Interval, Zone(customer.TimeZoneId));
            var period = schedule.GetPeriod(0);
            var restarted = subscription with
            {
                Status = status,
                ScheduleStart = now,
                AnchorLocal = schedule.AnchorLocal,
                CurrentPeriod = period,
                CanceledAt = null,
                TrialEnd = null,
                NextActionAt = period.End,
            };
            session.Outbox.Append(NewEvent("subscription.updated", now, "subscription", subscription.Id, customer.Id, ("status", Snake(status)), ("previous_status", "canceled")));
            var invoiceId = await CreatePeriodInvoiceAsync(session, customer, restarted, plan, period, [], BillingReason.SubscriptionCreate, now, now, counters, finalizeNow: true, isNew: false, cancellationToken, newCycle: true).ConfigureAwait(false);
            return (invoiceId, now);
        }, cancellationToken).ConfigureAwait(false);

        if (charge is not null)
        {
            await ChargeAsync(charge, at, null, counters, cancellationToken).ConfigureAwait(false);
        }

        return await GetSubscriptionAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Pauses billing: no invoices while paused; emits <c>subscription.paused</c>.</summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription.</returns>
    /// <exception cref="InvalidStateTransitionException">The subscription cannot be paused in its state.</exception>
    public Task<Subscription> PauseSubscriptionAsync(string subscriptionId, CancellationToken cancellationToken = default) =>
        InSessionAsync(async session =>
        {
            var (subscription, customer, _, now) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
            var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.Pause);
            var paused = subscription with { Status = status, PausedAt = now, NextActionAt = null };
            session.Subscriptions.Update(paused);
            session.Outbox.Append(NewEvent("subscription.paused", now, "subscription", subscription.Id, customer.Id, ("previous_status", Snake(subscription.Status))));
            return paused with { Version = subscription.Version + 1 };
        }, cancellationToken);

    /// <summary>
    /// Resumes a paused subscription: it becomes <c>active</c> with a new period starting now, invoiced and charged
    /// at once (the billing anchor moves to the resume time); emits <c>subscription.resumed</c>.
    /// </summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription.</returns>
    /// <exception cref="InvalidStateTransitionException">The subscription is not paused.</exception>
    public async Task<Subscription> ResumeSubscriptionAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        var counters = new RunCounters();
        var (charge, at) = await InSessionAsync(async session =>
        {
            var (subscription, customer, plan, now) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
            var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.Resume);
            var schedule = BillingSchedule.Anniversary(now, plan.Interval, Zone(customer.TimeZoneId));
            var period = schedule.GetPeriod(0);
            var resumed = subscription with
            {
                Status = status,
                PausedAt = null,
                ScheduleStart = now,
                AnchorLocal = schedule.AnchorLocal,
                CurrentPeriod = period,
                NextActionAt = period.End,
                TrialEnd = subscription.TrialEnd > now ? null : subscription.TrialEnd,
            };
            session.Outbox.Append(NewEvent("subscription.resumed", now, "subscription", subscription.Id, customer.Id));
            var invoiceId = await CreatePeriodInvoiceAsync(session, customer, resumed, plan, period, [], BillingReason.SubscriptionCycle, now, now, counters, finalizeNow: true, isNew: false, cancellationToken, newCycle: true).ConfigureAwait(false);
            return (invoiceId, now);
        }, cancellationToken).ConfigureAwait(false);

        if (charge is not null)
        {
            await ChargeAsync(charge, at, null, counters, cancellationToken).ConfigureAwait(false);
        }

        return await GetSubscriptionAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Previews the proration of an immediate plan or quantity change without changing anything (pin
    /// <see cref="SubscriptionChange.ProrationDate"/> to get the same numbers when applying it).
    /// </summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="change">The change.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The proration lines and net amount.</returns>
    /// <exception cref="BillingValidationException">Nothing changes, a bad quantity, an archived plan, another currency, or
    /// a proration date outside the current period.</exception>
    /// <exception cref="InvalidStateTransitionException">The subscription's state does not allow changes (a preview refuses
    /// what <see cref="ChangeSubscriptionAsync"/> would refuse).</exception>
    public async Task<ProrationResult> PreviewChangeAsync(string subscriptionId, SubscriptionChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var (subscription, _, plan, now) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
        _ = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.ChangePlan);
        var (newPlan, quantity) = await ResolveChangeAsync(session, subscription, plan, change, cancellationToken).ConfigureAwait(false);
        var at = change.ProrationDate ?? now;
        Require(subscription.CurrentPeriod.Contains(at) || at == subscription.CurrentPeriod.End, "proration_date", "The proration date must be inside the current period.");
        return ProrationCalculator.Prorate(subscription.CurrentPeriod, at, plan.Price, subscription.Quantity, newPlan.Price, quantity, change.ProrationBehavior, _options.ProrationRounding);
    }

    /// <summary>
    /// Changes the plan and/or quantity, now (prorated per <see cref="SubscriptionChange.ProrationBehavior"/>) or
    /// at the end of the period (applied at renewal). Emits <c>subscription.updated</c>.
    /// </summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="change">The change.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription after the change (and after any immediate invoice was charged).</returns>
    /// <remarks>
    /// An immediate change to a plan with another interval restarts the billing cycle now: the unused time of the
    /// current period is credited and the new plan's first period is invoiced at once. During a trial the change
    /// applies without proration.
    /// <para>
    /// Usage: an immediate change bills the old plan's usage of the period so far on a final invoice of its own (reason
    /// <see cref="BillingReason.SubscriptionUpdate"/>, a draft until the usage closes, priced again when finalized), and
    /// the new plan's usage starts a span of its own at the change (<see cref="Subscription.ScheduleStart"/> moves to
    /// it; the period boundaries stay), billed at the renewal. That invoice also bills the lines pending before the
    /// change (prorations of earlier changes) with the coupon and tax, as a final invoice at a cancellation does (see
    /// <see cref="CancelSubscriptionAsync"/>); the prorations of this change are then pending (or invoiced at once, per
    /// <see cref="SubscriptionChange.ProrationBehavior"/>). It is made when there is usage pricing or a pending line. A
    /// change to another interval leaves the pending lines to the new cycle's first invoice, made and charged at once.
    /// Each change in a period closes its own span: late events of each span go to the invoice that bills it. A change at
    /// period end bills the ended period's usage with the old plan on the renewal.
    /// </para>
    /// </remarks>
    /// <exception cref="BillingValidationException">Nothing changes, a bad quantity, an archived plan, or another currency.</exception>
    /// <exception cref="InvalidStateTransitionException">The subscription's state does not allow changes.</exception>
    public async Task<Subscription> ChangeSubscriptionAsync(string subscriptionId, SubscriptionChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        Require(Enum.IsDefined(change.ProrationBehavior), "proration_behavior", "Unknown proration behaviour.");
        var counters = new RunCounters();
        var (charge, chargeAt) = await InSessionAsync(async session =>
        {
            var (subscription, customer, plan, now) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
            var (newPlan, quantity) = await ResolveChangeAsync(session, subscription, plan, change, cancellationToken).ConfigureAwait(false);
            var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.ChangePlan);
            var changedEvent = NewEvent("subscription.updated", now, "subscription", subscription.Id, customer.Id, ("plan", newPlan.Id), ("quantity", quantity), ("at_period_end", change.AtPeriodEnd ? "true" : "false"));
            if (change.AtPeriodEnd)
            {
                session.Subscriptions.Update(subscription with { PendingChange = new ScheduledChange(newPlan.Id, quantity) });
                session.Outbox.Append(changedEvent);
                return ((string?)null, now);
            }

            if (subscription.Status == SubscriptionStatus.Trialing)
            {
                session.Subscriptions.Update(subscription with { Status = status, PlanId = newPlan.Id, Quantity = quantity, PendingChange = null });
                session.Outbox.Append(changedEvent);
                return (null, now);
            }

            var at = change.ProrationDate ?? now;
            Require(subscription.CurrentPeriod.Contains(at), "proration_date", "The proration date must be inside the current period.");
            // The old plan's usage up to the change is billed now (a draft until it closes), with the pending lines
            // (a new interval bills those at once on the new cycle's first invoice); the new plan's usage from here.
            (_, subscription) = await AddFinalUsageInvoiceAsync(session, customer, subscription, plan, at, BillingReason.SubscriptionUpdate, at, cancellationToken, billPending: newPlan.Interval == plan.Interval).ConfigureAwait(false);
            var usageMoves = plan.MeteredPrices.Count > 0 || newPlan.MeteredPrices.Count > 0;
            if (newPlan.Interval != plan.Interval)
            {
                // A new interval restarts the cycle now: credit the unused time, bill the new plan's first period.
                var zone = Zone(customer.TimeZoneId);
                var schedule = BillingSchedule.Anniversary(at, newPlan.Interval, zone);
                var period = schedule.GetPeriod(0);
                var (unused, formula) = ProrationCalculator.ProrateSpan(plan.Price.CalculateTotal(subscription.Quantity), subscription.CurrentPeriod, at, subscription.CurrentPeriod.End, _options.ProrationRounding);
                var credit = new InvoiceLine(InvoiceLineKind.ProrationCredit, $"Unused time on {plan.Name}", -unused) { Quantity = subscription.Quantity, Period = new BillingPeriod(subscription.CurrentPeriod.Start, subscription.CurrentPeriod.End), Proration = formula };
                var restarted = subscription with
                {
                    Status = status,
                    PlanId = newPlan.Id,
                    Quantity = quantity,
                    ScheduleStart = at,
                    AnchorLocal = schedule.AnchorLocal,
                    CurrentPeriod = period,
                    NextActionAt = period.End,
                    PendingChange = null,
                    PendingLines = change.ProrationBehavior == ProrationBehavior.None ? subscription.PendingLines : [.. subscription.PendingLines, credit],
                };
                session.Outbox.Append(changedEvent);
                var id = await CreatePeriodInvoiceAsync(session, customer, restarted, newPlan, period, [], BillingReason.SubscriptionUpdate, at, at, counters, finalizeNow: true, isNew: false, cancellationToken, newCycle: true).ConfigureAwait(false);
                return (id, at);
            }

            var proration = ProrationCalculator.Prorate(subscription.CurrentPeriod, at, plan.Price, subscription.Quantity, newPlan.Price, quantity, change.ProrationBehavior, _options.ProrationRounding);
            var lines = new List<InvoiceLine>();
            if (proration is { Credit: { } c, Debit: { } d })
            {
                var span = new BillingPeriod(at, subscription.CurrentPeriod.End);
                if (!c.Amount.IsZero)
                {
                    lines.Add(new InvoiceLine(InvoiceLineKind.ProrationCredit, $"Unused time on {plan.Name}{QuantitySuffix(subscription.Quantity)}", c.Amount) { Quantity = subscription.Quantity, Period = span, Proration = c.Formula });
                }

                if (!d.Amount.IsZero)
                {
                    lines.Add(new InvoiceLine(InvoiceLineKind.ProrationDebit, $"Remaining time on {newPlan.Name}{QuantitySuffix(quantity)}", d.Amount) { Quantity = quantity, Period = span, Proration = d.Formula });
                }
            }

            var updated = subscription with { Status = status, PlanId = newPlan.Id, Quantity = quantity, PendingChange = null, ScheduleStart = usageMoves && at > subscription.ScheduleStart ? at : subscription.ScheduleStart };
            session.Outbox.Append(changedEvent);
            if (proration.InvoiceImmediately && lines.Count > 0)
            {
                var invoice = NewDraft(customer, updated, UpdateKey(subscription), BillingReason.SubscriptionUpdate, null, lines, null, at, at);
                session.Outbox.Append(NewEvent("invoice.created", at, "invoice", invoice.Id, customer.Id, ("subscription", subscription.Id), ("total", invoice.Total.MinorUnits)));
                var (finalized, updatedCustomer) = await FinalizeAsync(session, invoice, customer, at, cancellationToken).ConfigureAwait(false);
                if (!ReferenceEquals(updatedCustomer, customer))
                {
                    session.Customers.Update(updatedCustomer);
                }

                session.Invoices.Add(LeasedForCharge(finalized, at));
                session.Subscriptions.Update(updated with { LatestInvoiceId = finalized.Id });
                return (finalized.NextActionAt is not null ? finalized.Id : null, at);
            }

            session.Subscriptions.Update(updated with { PendingLines = [.. subscription.PendingLines, .. lines] });
            return (null, at);
        }, cancellationToken).ConfigureAwait(false);

        if (charge is not null)
        {
            await ChargeAsync(charge, chargeAt, null, counters, cancellationToken).ConfigureAwait(false);
        }

        return await GetSubscriptionAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Previews the next renewal invoice (pending changes, prorations, coupon, tax, credit) without storing anything.
    /// </summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice content, or null when the subscription will not renew (canceled, paused, or canceling at period end).</returns>
    public async Task<InvoiceCalculation?> PreviewUpcomingInvoiceAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var (subscription, customer, plan, _) = await LoadAsync(session, subscriptionId, cancellationToken).ConfigureAwait(false);
        if (subscription.Status is SubscriptionStatus.Canceled or SubscriptionStatus.Paused || subscription.CancelAtPeriodEnd)
        {
            return null;
        }

        var (nextPlan, quantity) = subscription.PendingChange is { } pending
            ? (await session.Plans.GetAsync(pending.PlanId, cancellationToken).ConfigureAwait(false) ?? plan, pending.Quantity)
            : (plan, subscription.Quantity);
        var period = NextPeriodOf(subscription, plan, nextPlan, customer);
        var usage = subscription.Status == SubscriptionStatus.Trialing
            ? []
            : await _usage.GetUsageLinesAsync(subscription, plan, UsagePeriodOf(subscription, subscription.CurrentPeriod), cancellationToken).ConfigureAwait(false);
        var items = new List<InvoiceLine> { PlanLine(nextPlan, quantity, period) };
        items.AddRange(subscription.PendingLines);
        items.AddRange(usage);
        var (coupon, _) = ConsumeDiscount(subscription.Discount);
        return InvoiceCalculator.Calculate(customer.Currency, items, coupon, customer.TaxRates, customer.CreditBalance, _options.InvoiceRounding);
    }

    /// <summary>The period the next invoice bills: the first period after a trial, or the one after the current period.</summary>
    private static BillingPeriod NextPeriodOf(Subscription subscription, Plan plan, Plan nextPlan, Customer customer)
    {
        var zone = Zone(customer.TimeZoneId);
        if (subscription.Status == SubscriptionStatus.Trialing)
        {
            return BillingSchedule.FromLocalAnchor(subscription.ScheduleStart, subscription.AnchorLocal, nextPlan.Interval, zone).GetPeriod(0);
        }

        if (nextPlan.Interval != plan.Interval)
        {
            return BillingSchedule.Anniversary(subscription.CurrentPeriod.End, nextPlan.Interval, zone).GetPeriod(0);
        }

        return BillingSchedule.FromLocalAnchor(subscription.ScheduleStart, subscription.AnchorLocal, plan.Interval, zone).GetNextPeriod(subscription.CurrentPeriod);
    }

    private static string QuantitySuffix(long quantity) => quantity == 1 ? string.Empty : string.Create(CultureInfo.InvariantCulture, $" × {quantity}");

    private static async Task<(Plan Plan, long Quantity)> ResolveChangeAsync(IBillingSession session, Subscription subscription, Plan plan, SubscriptionChange change, CancellationToken cancellationToken)
    {
        var quantity = change.Quantity ?? subscription.Quantity;
        Require(quantity is >= 1 and <= 1_000_000_000, "quantity", "Quantity must be 1 to 1,000,000,000.");
        var newPlan = plan;
        if (change.PlanId is { } planId && planId != plan.Id)
        {
            newPlan = await session.Plans.GetAsync(planId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", planId);
            Require(!newPlan.Archived, "plan", $"The plan '{newPlan.Id}' is archived and takes no new subscriptions.");
            Require(ReferenceEquals(newPlan.Currency, plan.Currency), "plan", $"The new plan is in {newPlan.Currency.Code} but the subscription bills in {plan.Currency.Code}.");
        }

        Require(newPlan.Id != plan.Id || quantity != subscription.Quantity, "plan", "The change changes nothing: give another plan or quantity.");
        return (newPlan, quantity);
    }

    private async Task<(Subscription Subscription, Customer Customer, Plan Plan, DateTimeOffset Now)> LoadAsync(IBillingSession session, string subscriptionId, CancellationToken cancellationToken)
    {
        var subscription = await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("subscription", subscriptionId);
        var customer = await session.Customers.GetAsync(subscription.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", subscription.CustomerId);
        var plan = await session.Plans.GetAsync(subscription.PlanId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", subscription.PlanId);
        var now = await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
        return (subscription, customer, plan, now);
    }
}
