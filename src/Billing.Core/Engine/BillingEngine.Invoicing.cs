using System.Globalization;
using Billing.Catalog;
using Billing.Customers;
using Billing.Dunning;
using Billing.Invoices;
using Billing.Payments;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Engine;

public sealed partial class BillingEngine
{
    /// <summary>Reads an invoice.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice.</returns>
    /// <exception cref="BillingNotFoundException">No such invoice.</exception>
    public async Task<Invoice> GetInvoiceAsync(string invoiceId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.Invoices.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("invoice", invoiceId);
    }

    /// <summary>Lists a subscription's invoices, oldest first.</summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoices.</returns>
    public async Task<IReadOnlyList<Invoice>> ListInvoicesAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.Invoices.ListBySubscriptionAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lists an invoice's payment attempts.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The payments by attempt.</returns>
    public async Task<IReadOnlyList<Payment>> ListPaymentsAsync(string invoiceId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.Payments.ListByInvoiceAsync(invoiceId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Finalizes a draft now: numbers it, applies credit, and charges what is due.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice after finalization (and payment, if it was charged).</returns>
    /// <exception cref="InvalidStateTransitionException">The invoice is not a draft.</exception>
    public async Task<Invoice> FinalizeInvoiceAsync(string invoiceId, CancellationToken cancellationToken = default)
    {
        var counters = new RunCounters();
        await FinalizeAndChargeAsync(invoiceId, null, counters, requireDraft: true, cancellationToken).ConfigureAwait(false);
        return await GetInvoiceAsync(invoiceId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Attempts payment of an open (or uncollectible) invoice now; a success resolves dunning.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="paymentMethod">A payment method for this attempt, or null for the subscription's or customer's.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice after the attempt.</returns>
    /// <exception cref="InvalidStateTransitionException">The invoice is a draft, paid or void.</exception>
    public async Task<Invoice> PayInvoiceAsync(string invoiceId, string? paymentMethod = null, CancellationToken cancellationToken = default)
    {
        var invoice = await GetInvoiceAsync(invoiceId, cancellationToken).ConfigureAwait(false);
        _ = InvoiceStateMachine.Next(invoice.Status, InvoiceTrigger.Pay);
        await ChargeAsync(invoiceId, null, paymentMethod, new RunCounters(), cancellationToken).ConfigureAwait(false);
        return await GetInvoiceAsync(invoiceId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Voids an open or uncollectible invoice (nothing is owed); emits <c>invoice.voided</c>.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The voided invoice.</returns>
    /// <exception cref="InvalidStateTransitionException">The invoice is a draft, paid or already void.</exception>
    public Task<Invoice> VoidInvoiceAsync(string invoiceId, CancellationToken cancellationToken = default) =>
        CloseInvoiceAsync(invoiceId, InvoiceTrigger.Void, "invoice.voided", cancellationToken);

    /// <summary>Marks an open invoice uncollectible; emits <c>invoice.marked_uncollectible</c>.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice.</returns>
    /// <exception cref="InvalidStateTransitionException">The invoice is not open.</exception>
    public Task<Invoice> MarkInvoiceUncollectibleAsync(string invoiceId, CancellationToken cancellationToken = default) =>
        CloseInvoiceAsync(invoiceId, InvoiceTrigger.MarkUncollectible, "invoice.marked_uncollectible", cancellationToken);

    private Task<Invoice> CloseInvoiceAsync(string invoiceId, InvoiceTrigger trigger, string eventType, CancellationToken cancellationToken) =>
        InSessionAsync(async session =>
        {
            var invoice = await session.Invoices.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("invoice", invoiceId);
            var status = InvoiceStateMachine.Next(invoice.Status, trigger);
            var now = await NowForAsync(session, invoice.TestClockId, cancellationToken).ConfigureAwait(false);
            var closed = invoice with { Status = status, NextActionAt = null, ClosedAt = now, Dunning = invoice.Dunning with { NextAttemptAt = null } };
            session.Invoices.Update(closed);
            session.Outbox.Append(NewEvent(eventType, now, "invoice", invoice.Id, invoice.CustomerId, ("status", Snake(status))));
            return closed with { Version = invoice.Version + 1 };
        }, cancellationToken);

    /// <summary>The line charging a plan for a period.</summary>
    private static InvoiceLine PlanLine(Plan plan, long quantity, BillingPeriod period) =>
        new(InvoiceLineKind.Plan, quantity == 1 ? plan.Name : string.Create(CultureInfo.InvariantCulture, $"{plan.Name} × {quantity}"), plan.Price.CalculateTotal(quantity))
        {
            Quantity = quantity,
            Period = period,
        };

    /// <summary>The coupon for this invoice and what is left of the discount afterwards.</summary>
    private static (Coupon? Coupon, AppliedDiscount? Remaining) ConsumeDiscount(AppliedDiscount? discount) => discount switch
    {
        null => (null, null),
        { PeriodsRemaining: null } => (discount.Coupon, discount),
        { PeriodsRemaining: > 1 } => (discount.Coupon, discount with { PeriodsRemaining = discount.PeriodsRemaining - 1 }),
        _ => (discount.Coupon, null),
    };

    /// <summary>
    /// What is left of a discount after a final invoice (one that bills no new period: the usage and pending lines of a
    /// stretch that ends at a cancellation or an immediate plan change): the coupon applies to it as it would to a
    /// renewal; a <see cref="CouponDuration.Once"/> coupon is used up by it, a repeating or forever one keeps its count
    /// of periods (it counts billed periods, and a final invoice bills none).
    /// </summary>
    private static (Coupon? Coupon, AppliedDiscount? Remaining) ConsumeFinalDiscount(AppliedDiscount? discount) => discount switch
    {
        null => (null, null),
        { Coupon.Duration: CouponDuration.Once } => (discount.Coupon, null),
        _ => (discount.Coupon, discount),
    };

    /// <summary>
    /// The draft of an invoice that bills a subscription's period or stretch, the one path renewals and final invoices
    /// share: <paramref name="planLine"/> (a renewal's plan charge; null on a final invoice), the pending lines (prorations
    /// waiting for the next invoice), <paramref name="usage"/>, the coupon (consumed as by a renewal, or as by a final
    /// invoice when there is no plan line: <see cref="ConsumeFinalDiscount"/>) and tax. Returns it with the subscription
    /// as billed by it (latest invoice, discount left, pending lines cleared); the caller adds and stores both.
    /// </summary>
    private (Invoice Invoice, Subscription Subscription) NewSubscriptionDraft(
        Customer customer, Subscription subscription, string dedupKey, BillingReason reason, BillingPeriod? period, InvoiceLine? planLine, IReadOnlyList<InvoiceLine> usage, DateTimeOffset at, DateTimeOffset finalizeAt)
    {
        var items = new List<InvoiceLine>(subscription.PendingLines.Count + usage.Count + 1);
        if (planLine is not null)
        {
            items.Add(planLine);
        }

        items.AddRange(subscription.PendingLines);
        items.AddRange(usage);
        var (coupon, remaining) = planLine is null ? ConsumeFinalDiscount(subscription.Discount) : ConsumeDiscount(subscription.Discount);
        var invoice = NewDraft(customer, subscription, dedupKey, reason, period, items, coupon, at, finalizeAt);
        return (invoice, subscription with { LatestInvoiceId = invoice.Id, Discount = remaining, PendingLines = [] });
    }

    /// <summary>A draft invoice with computed lines and totals (credit is applied at finalization).</summary>
    private Invoice NewDraft(Customer customer, Subscription subscription, string dedupKey, BillingReason reason, BillingPeriod? period, IReadOnlyList<InvoiceLine> items, Coupon? coupon, DateTimeOffset at, DateTimeOffset finalizeAt)
    {
        var zero = Money.Zero(customer.Currency);
        var calculation = InvoiceCalculator.Calculate(customer.Currency, items, coupon, customer.TaxRates, zero, _options.InvoiceRounding);
        return new Invoice
        {
            Id = _ids.NewId("in"),
            CustomerId = customer.Id,
            SubscriptionId = subscription.Id,
            DedupKey = dedupKey,
            Reason = reason,
            Status = InvoiceStatus.Draft,
            Currency = customer.Currency,
            Period = period,
            Lines = calculation.Lines,
            Coupon = coupon,
            Subtotal = calculation.Subtotal,
            Discount = calculation.Discount,
            Tax = calculation.Tax,
            Total = calculation.Total,
            CreditApplied = zero,
            AmountDue = calculation.AmountDue,
            AmountPaid = zero,
            Dunning = DunningState.Initial(Policy.Version),
            NextActionAt = finalizeAt,
            TestClockId = customer.TestClockId,
            CreatedAt = at,
        };
    }

    /// <summary>The key of a cycle's invoice for the period starting at <paramref name="periodStart"/> (the invoice that also bills the usage of the period ending there).</summary>
    internal static string PeriodKey(string subscriptionId, DateTimeOffset periodStart) =>
        string.Create(CultureInfo.InvariantCulture, $"{subscriptionId}/period/{periodStart.UtcTicks}");

    private static string PeriodKey(string subscriptionId, BillingPeriod period) => PeriodKey(subscriptionId, period.Start);

    /// <summary>The key of an invoice made by a change: one per subscription version, so each change has its own.</summary>
    private static string UpdateKey(Subscription subscription) =>
        string.Create(CultureInfo.InvariantCulture, $"{subscription.Id}/update/v{subscription.Version}");

    /// <summary>
    /// Finalizes a draft (number, credit balance, freeze). A zero amount due is paid at once without a gateway
    /// call. Returns the finalized invoice and the customer (changed when credit moved).
    /// </summary>
    private async ValueTask<(Invoice Invoice, Customer Customer)> FinalizeAsync(IBillingSession session, Invoice draft, Customer customer, DateTimeOffset at, CancellationToken cancellationToken)
    {
        draft = await RepriceUsageAsync(session, draft, at, cancellationToken).ConfigureAwait(false);
        var status = InvoiceStateMachine.Next(draft.Status, InvoiceTrigger.Finalize);
        var number = await session.Invoices.NextNumberAsync(_options.InvoiceNumberPrefix, cancellationToken).ConfigureAwait(false);
        var zero = Money.Zero(customer.Currency);
        Money applied;
        Money due;
        var balance = customer.CreditBalance;
        if (draft.Total.IsPositive)
        {
            applied = balance < draft.Total ? balance : draft.Total;
            due = draft.Total - applied;
            balance -= applied;
        }
        else
        {
            applied = zero;
            due = zero;
            balance -= draft.Total;
        }

        var invoice = draft with
        {
            Status = status,
            Number = string.Create(CultureInfo.InvariantCulture, $"{_options.InvoiceNumberPrefix}-{number:D6}"),
            CreditApplied = applied,
            AmountDue = due,
            FinalizedAt = at,
            NextActionAt = due.IsPositive ? at : null,
        };
        session.Outbox.Append(NewEvent("invoice.finalized", at, "invoice", invoice.Id, invoice.CustomerId, ("number", invoice.Number), ("amount_due", due.MinorUnits)));
        if (!due.IsPositive)
        {
            invoice = invoice with { Status = InvoiceStateMachine.Next(invoice.Status, InvoiceTrigger.Pay), ClosedAt = at };
            session.Outbox.Append(NewEvent("invoice.paid", at, "invoice", invoice.Id, invoice.CustomerId, ("amount_paid", 0)));
        }

        return (invoice, balance == customer.CreditBalance ? customer : customer with { CreditBalance = balance });
    }

    /// <summary>
    /// Prices a draft's usage lines again from the usage source (for metering: the durable aggregate), so that usage
    /// accepted while the invoice was a draft is billed; the discount (the draft's coupon) and tax (the draft's rates)
    /// are computed again through <see cref="InvoiceCalculator"/>. Lines without a plan (a source that does not name
    /// one) and a draft with a discount but no recorded coupon (made by an older version) are left as they are.
    /// Returns the same draft when no usage line changed; otherwise emits <c>invoice.updated</c>.
    /// </summary>
    private async ValueTask<Invoice> RepriceUsageAsync(IBillingSession session, Invoice draft, DateTimeOffset at, CancellationToken cancellationToken)
    {
        static bool Repriceable(InvoiceLine line) => line is { Kind: InvoiceLineKind.Usage, PlanId: not null, Period: not null };
        if (draft.SubscriptionId is not { } subscriptionId || !draft.Lines.Any(Repriceable)
            || (draft.Coupon is null && draft.Lines.Any(l => l.Kind == InvoiceLineKind.Discount)))
        {
            return draft;
        }

        var subscription = await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
        if (subscription is null)
        {
            return draft;
        }

        var fresh = new Dictionary<(string PlanId, BillingPeriod Period), IReadOnlyList<InvoiceLine>>();
        foreach (var source in draft.Lines.Where(Repriceable).Select(l => (l.PlanId!, l.Period!.Value)).Distinct())
        {
            if (await session.Plans.GetAsync(source.Item1, cancellationToken).ConfigureAwait(false) is { } plan)
            {
                fresh[source] = await _usage.GetUsageLinesAsync(subscription, plan, source.Item2, cancellationToken).ConfigureAwait(false);
            }
        }

        var items = new List<InvoiceLine>(draft.Lines.Count);
        var changed = false;
        var done = new HashSet<(string, BillingPeriod)>();
        foreach (var line in draft.Lines)
        {
            if (line.Kind is InvoiceLineKind.Discount or InvoiceLineKind.Tax)
            {
                continue;
            }

            if (!Repriceable(line) || !fresh.TryGetValue((line.PlanId!, line.Period!.Value), out var lines))
            {
                items.Add(line);
                continue;
            }

            var source = (line.PlanId!, line.Period!.Value);
            if (done.Add(source))
            {
                items.AddRange(lines);
                var before = draft.Lines.Where(l => Repriceable(l) && (l.PlanId!, l.Period!.Value) == source).Select(Priced);
                changed |= !before.SequenceEqual(lines.Select(Priced));
            }
        }

        if (!changed)
        {
            return draft;
        }

        var rates = draft.Lines.Where(l => l is { Kind: InvoiceLineKind.Tax, TaxRate: not null }).Select(l => l.TaxRate!).ToList();
        var calculation = InvoiceCalculator.Calculate(draft.Currency, items, draft.Coupon, rates, Money.Zero(draft.Currency), _options.InvoiceRounding);
        session.Outbox.Append(NewEvent("invoice.updated", at, "invoice", draft.Id, draft.CustomerId, ("reason", "usage_repriced"), ("total", calculation.Total.MinorUnits), ("previous_total", draft.Total.MinorUnits)));
        return draft with
        {
            Lines = calculation.Lines,
            Subtotal = calculation.Subtotal,
            Discount = calculation.Discount,
            Tax = calculation.Tax,
            Total = calculation.Total,
            AmountDue = calculation.AmountDue,
        };

        static (string Description, string? Meter, long Quantity, Money Amount) Priced(InvoiceLine l) => (l.Description, l.MeterKey, l.Quantity, l.Amount);
    }

    /// <summary>Finalizes a draft in its own unit of work, then charges it when something is due.</summary>
    /// <summary>
    /// A finalized invoice that the calling request charges right after its commit, leased for
    /// <see cref="BillingOptions.PaymentAttemptLease"/>: a billing run elsewhere does not send the same charge meanwhile, and
    /// takes the invoice over once the lease ends if this process stops before charging.
    /// </summary>
    private Invoice LeasedForCharge(Invoice finalized, DateTimeOffset at) =>
        finalized.NextActionAt is null ? finalized : finalized with { NextActionAt = at + _options.PaymentAttemptLease };

    private async Task FinalizeAndChargeAsync(string invoiceId, DateTimeOffset? runAt, RunCounters counters, bool requireDraft, CancellationToken cancellationToken, DateTimeOffset? leaseFrom = null)
    {
        var charge = await InSessionAsync(async (session, committed) =>
        {
            var draft = await session.Invoices.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("invoice", invoiceId);
            if (draft.Status != InvoiceStatus.Draft)
            {
                return requireDraft ? throw new InvalidStateTransitionException("invoice", Snake(draft.Status), "finalize", [.. InvoiceStateMachine.AllowedTriggers(draft.Status).Select(Snake)]) : (DateTimeOffset?)null;
            }

            var customer = await session.Customers.GetAsync(draft.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", draft.CustomerId);
            var at = runAt ?? await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            var (invoice, updatedCustomer) = await FinalizeAsync(session, draft, customer, at, cancellationToken).ConfigureAwait(false);
            if (!ReferenceEquals(updatedCustomer, customer))
            {
                session.Customers.Update(updatedCustomer);
            }

            Subscription? subscription = null;
            if (invoice.SubscriptionId is { } subscriptionId)
            {
                subscription = await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
            }

            if (invoice.Status == InvoiceStatus.Paid && subscription is not null)
            {
                UpdateActivated(session, subscription, at);
            }
            else if (subscription?.Status == SubscriptionStatus.Unpaid)
            {
                // Unpaid subscriptions keep invoicing, but nothing is charged automatically.
                invoice = invoice with { NextActionAt = null };
            }
            else if (leaseFrom is null)
            {
                invoice = LeasedForCharge(invoice, at);
            }

            session.Invoices.Update(invoice);
            Interlocked.Increment(ref committed.Finalized);
            return invoice.NextActionAt is not null ? at : (DateTimeOffset?)null;
        }, counters, cancellationToken).ConfigureAwait(false);

        if (charge is { } chargeAt)
        {
            await ChargeAsync(invoiceId, chargeAt, null, counters, cancellationToken, leaseFrom).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Subscription effect of a paid invoice: an incomplete, past-due or unpaid subscription becomes active (with its
    /// <c>subscription.updated</c> event). Returns the subscription as it should be stored; the caller writes it.
    /// </summary>
    private Subscription Activate(IBillingSession session, Subscription subscription, DateTimeOffset at)
    {
        if (subscription.Status is not (SubscriptionStatus.Incomplete or SubscriptionStatus.PastDue or SubscriptionStatus.Unpaid))
        {
            return subscription;
        }

        var status = SubscriptionStateMachine.Next(subscription.Status, SubscriptionTrigger.PaymentSucceeded);
        session.Outbox.Append(NewEvent("subscription.updated", at, "subscription", subscription.Id, subscription.CustomerId, ("status", Snake(status)), ("previous_status", Snake(subscription.Status))));
        return subscription with { Status = status };
    }

    private void UpdateActivated(IBillingSession session, Subscription subscription, DateTimeOffset at)
    {
        var activated = Activate(session, subscription, at);
        if (!ReferenceEquals(activated, subscription))
        {
            session.Subscriptions.Update(activated);
        }
    }

    /// <summary>
    /// Charges an invoice in three steps, so a crash can never charge twice: (1) record a pending attempt with an
    /// idempotency key derived from the invoice and attempt number, and lease the invoice; (2) call the gateway
    /// with that key; (3) record the outcome, the dunning decision and its effects. A crash after (1) leaves a
    /// pending attempt whose lease expires; the next run repeats (2) with the same key and the gateway answers
    /// with the first result.
    /// </summary>
    private async Task ChargeAsync(string invoiceId, DateTimeOffset? runAt, string? paymentMethodOverride, RunCounters counters, CancellationToken cancellationToken, DateTimeOffset? leaseFrom = null)
    {
        var prepared = await InSessionAsync<(ChargeRequest Request, string PaymentId, DateTimeOffset At)?>(async session =>
        {
            var invoice = await session.Invoices.GetAsync(invoiceId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("invoice", invoiceId);
            if (invoice.Status is not (InvoiceStatus.Open or InvoiceStatus.Uncollectible) || !invoice.AmountDue.IsPositive)
            {
                return null;
            }

            if (leaseFrom is { } runNow && (invoice.NextActionAt is not { } due || due > runNow))
            {
                return null; // a run's step: another run leased or finished it since this run listed it
            }

            var customer = await session.Customers.GetAsync(invoice.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", invoice.CustomerId);
            var at = runAt ?? await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            Payment? payment = null;
            if (invoice.PaymentAttempts > 0)
            {
                var last = await session.Payments.GetByIdempotencyKeyAsync(PaymentKeys.Charge(invoice.Id, invoice.PaymentAttempts), cancellationToken).ConfigureAwait(false);
                payment = last is { Status: PaymentStatus.Pending } ? last : null; // an attempt whose outcome was never recorded
            }

            if (payment is null)
            {
                var subscription = invoice.SubscriptionId is { } sid ? await session.Subscriptions.GetAsync(sid, cancellationToken).ConfigureAwait(false) : null;
                var method = paymentMethodOverride ?? subscription?.PaymentMethod ?? customer.DefaultPaymentMethod ?? string.Empty;
                var attempt = invoice.PaymentAttempts + 1;
                payment = new Payment
                {
                    Id = _ids.NewId("pay"),
                    InvoiceId = invoice.Id,
                    CustomerId = invoice.CustomerId,
                    Attempt = attempt,
                    IdempotencyKey = PaymentKeys.Charge(invoice.Id, attempt),
                    Amount = invoice.AmountDue,
                    PaymentMethod = method,
                    Status = PaymentStatus.Pending,
                    AmountRefunded = Money.Zero(invoice.Currency),
                    CreatedAt = at,
                };
                session.Payments.Add(payment);
                invoice = invoice with { PaymentAttempts = attempt };
            }

            // The lease counts from the run's "now" (a catch-up run works on steps due long before it).
            var leaseStart = leaseFrom is { } from && from > at ? from : at;
            session.Invoices.Update(invoice with { NextActionAt = leaseStart + _options.PaymentAttemptLease });
            var request = new ChargeRequest(invoice.Id, invoice.CustomerId, payment.PaymentMethod, payment.Amount, payment.IdempotencyKey);
            return (request, payment.Id, at);
        }, cancellationToken).ConfigureAwait(false);

        if (prepared is not { } p)
        {
            return;
        }

        using var activity = Diagnostics.BillingDiagnostics.StartPaymentAttempt(invoiceId);
        var result = string.IsNullOrEmpty(p.Request.PaymentMethod)
            ? PaymentResult.Declined(DeclineType.Soft, "payment_method_missing", "The customer has no payment method.")
            : await _gateway.ChargeAsync(p.Request, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref counters.PaymentsAttempted);

        var recorded = await InSessionAsync(async session =>
        {
            var payment = await session.Payments.GetAsync(p.PaymentId, cancellationToken).ConfigureAwait(false);
            var invoice = await session.Invoices.GetAsync(p.Request.InvoiceId, cancellationToken).ConfigureAwait(false);
            if (payment is not { Status: PaymentStatus.Pending } || invoice is null || invoice.Status is not (InvoiceStatus.Open or InvoiceStatus.Uncollectible))
            {
                return 0; // another worker recorded this attempt already (a stale read here fails at commit anyway)
            }

            await RecordOutcomeAsync(session, payment, invoice, result, p.At, await SubscriptionOfAsync(session, invoice, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
            return 1;
        }, cancellationToken).ConfigureAwait(false);
        if (recorded == 1)
        {
            Diagnostics.BillingDiagnostics.PaymentRecorded(activity, result);
        }
    }

    private static async ValueTask<Subscription?> SubscriptionOfAsync(IBillingSession session, Invoice invoice, CancellationToken cancellationToken) =>
        invoice.SubscriptionId is { } id ? await session.Subscriptions.GetAsync(id, cancellationToken).ConfigureAwait(false) : null;

    /// <summary>
    /// Records a payment attempt's outcome: the payment, the invoice (paid, or its dunning decision) and the subscription
    /// (activated, past due, unpaid, or canceled when dunning runs out with <see cref="DunningFinalAction.Cancel"/>). A
    /// cancellation by dunning bills the stretch up to it on a final invoice, as an immediate cancellation by hand does
    /// (<see cref="AddFinalUsageInvoiceAsync"/>: usage and pending lines, a draft until the usage closes, then finalized and
    /// charged by the run).
    /// </summary>
    private async Task RecordOutcomeAsync(IBillingSession session, Payment payment, Invoice invoice, PaymentResult result, DateTimeOffset at, Subscription? subscription, CancellationToken cancellationToken)
    {
        var status = result.Outcome switch
        {
            PaymentOutcome.Succeeded => PaymentStatus.Succeeded,
            PaymentOutcome.RequiresAction => PaymentStatus.RequiresAction,
            _ => PaymentStatus.Failed,
        };
        session.Payments.Update(payment with { Status = status, GatewayPaymentId = result.GatewayPaymentId, Result = result });
        var paymentEvent = status switch
        {
            PaymentStatus.Succeeded => "payment.succeeded",
            PaymentStatus.RequiresAction => "payment.requires_action",
            _ => "payment.failed",
        };
        session.Outbox.Append(NewEvent(paymentEvent, at, "payment", payment.Id, payment.CustomerId, ("invoice", invoice.Id), ("amount", payment.Amount.MinorUnits), ("attempt", payment.Attempt), ("decline_code", result.DeclineCode)));

        // The policy in force decides; the version that started an invoice's dunning stays recorded on the invoice.
        if (result.IsSuccess)
        {
            var resolved = Policy.Decide(invoice.Dunning, result, at);
            var paid = invoice with
            {
                Status = InvoiceStateMachine.Next(invoice.Status, InvoiceTrigger.Pay),
                AmountPaid = invoice.AmountPaid + payment.Amount,
                AmountDue = Money.Zero(invoice.Currency),
                Dunning = resolved.State,
                NextActionAt = null,
                ClosedAt = at,
            };
            session.Invoices.Update(paid);
            session.Outbox.Append(NewEvent("invoice.paid", at, "invoice", invoice.Id, invoice.CustomerId, ("amount_paid", payment.Amount.MinorUnits)));
            AppendDunningEvents(session, resolved, invoice, at);
            if (subscription is not null)
            {
                UpdateActivated(session, subscription, at);
            }

            return;
        }

        session.Outbox.Append(NewEvent("invoice.payment_failed", at, "invoice", invoice.Id, invoice.CustomerId, ("attempt", payment.Attempt), ("decline_code", result.DeclineCode)));
        if (subscription is { Status: SubscriptionStatus.Incomplete } && invoice.Reason == BillingReason.SubscriptionCreate)
        {
            // The first invoice of a subscription is not dunned: it waits for the customer (a new payment method, authentication).
            session.Invoices.Update(invoice with { NextActionAt = null });
            return;
        }

        if (invoice.Dunning.Exhausted || invoice.Dunning.Resolved)
        {
            // A manual attempt on an invoice whose dunning is over: record the failure, change nothing else.
            session.Invoices.Update(invoice with { NextActionAt = null });
            return;
        }

        var decision = Policy.Decide(invoice.Dunning, result, at);
        var next = invoice with { Dunning = decision.State, NextActionAt = decision.NextAttemptAt };
        if (decision is { Kind: DunningDecisionKind.Exhausted, MarkInvoiceUncollectible: true } && InvoiceStateMachine.CanFire(next.Status, InvoiceTrigger.MarkUncollectible))
        {
            next = next with { Status = InvoiceStatus.Uncollectible };
            session.Outbox.Append(NewEvent("invoice.marked_uncollectible", at, "invoice", invoice.Id, invoice.CustomerId));
        }

        session.Invoices.Update(next);
        AppendDunningEvents(session, decision, invoice, at);
        if (subscription is null)
        {
            return;
        }

        var updated = subscription;
        if (SubscriptionStateMachine.CanFire(updated.Status, SubscriptionTrigger.PaymentFailed))
        {
            updated = updated with { Status = SubscriptionStateMachine.Next(updated.Status, SubscriptionTrigger.PaymentFailed) };
        }

        if (decision.Kind == DunningDecisionKind.Exhausted)
        {
            var trigger = decision.FinalAction == DunningFinalAction.MarkUnpaid ? SubscriptionTrigger.MarkUnpaid : SubscriptionTrigger.Cancel;
            if (SubscriptionStateMachine.CanFire(updated.Status, trigger))
            {
                var final = SubscriptionStateMachine.Next(updated.Status, trigger);
                if (final == SubscriptionStatus.Canceled)
                {
                    // As an immediate cancellation by hand: the stretch up to now is billed on a final invoice.
                    var customer = await session.Customers.GetAsync(updated.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", updated.CustomerId);
                    var plan = await session.Plans.GetAsync(updated.PlanId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", updated.PlanId);
                    (_, updated) = await AddFinalUsageInvoiceAsync(session, customer, updated, plan, at, BillingReason.SubscriptionUpdate, at, cancellationToken).ConfigureAwait(false);
                    updated = updated with { Status = final, CanceledAt = at, NextActionAt = null, CancelAtPeriodEnd = false };
                }
                else
                {
                    updated = updated with { Status = final };
                }
            }
        }

        if (updated.Status != subscription.Status)
        {
            session.Subscriptions.Update(updated);
            session.Outbox.Append(NewEvent(updated.Status == SubscriptionStatus.Canceled ? "subscription.canceled" : "subscription.updated", at, "subscription", subscription.Id, subscription.CustomerId, ("status", Snake(updated.Status)), ("previous_status", Snake(subscription.Status))));
        }
    }

    private void AppendDunningEvents(IBillingSession session, DunningDecision decision, Invoice invoice, DateTimeOffset at)
    {
        foreach (var type in decision.Events)
        {
            session.Outbox.Append(NewEvent(type, at, "invoice", invoice.Id, invoice.CustomerId, ("attempts", decision.State.FailedAttempts), ("next_attempt", decision.NextAttemptAt?.ToString("O", CultureInfo.InvariantCulture))));
        }
    }

    /// <summary>Counts what a run did.</summary>
    private sealed class RunCounters
    {
        public int Subscriptions;
        public int Created;
        public int Finalized;
        public int PaymentsAttempted;
        public int Skipped;

        public BillingRunResult ToResult() => new(Subscriptions, Created, Finalized, PaymentsAttempted, Skipped);

        public void Add(RunCounters other)
        {
            Interlocked.Add(ref Subscriptions, other.Subscriptions);
            Interlocked.Add(ref Created, other.Created);
            Interlocked.Add(ref Finalized, other.Finalized);
            Interlocked.Add(ref PaymentsAttempted, other.PaymentsAttempted);
            Interlocked.Add(ref Skipped, other.Skipped);
        }
    }
}
