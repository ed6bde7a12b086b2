using Billing.Engine;
using Billing.Invoices;
using Billing.Payments;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

public sealed class SubscriptionScenarioTests
{
    [Fact]
    public async Task A_trial_ends_into_a_first_invoice_and_twelve_renewals_anchored_on_the_trial_end()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(2900, trialDays: 14);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 10, 9));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        Assert.Equal(SubscriptionStatus.Trialing, subscription.Status);
        Assert.Equal(Utc(2025, 1, 24, 9), subscription.TrialEnd);

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2026, 1, 25));

        var invoices = await h.InvoicesAsync(subscription.Id);
        Assert.Equal(13, invoices.Count); // the trial-end invoice + 12 renewals
        for (var i = 0; i < invoices.Count; i++)
        {
            var start = Utc(2025, 1, 24, 9).AddMonths(i);
            Assert.Equal(new Billing.Periods.BillingPeriod(start, start.AddMonths(1)), invoices[i].Period);
            Assert.Equal(start, invoices[i].CreatedAt);
            Assert.Equal(start.AddHours(1), invoices[i].FinalizedAt);           // drafts finalize after an hour
            Assert.Equal($"INV-{i + 1:D6}", invoices[i].Number);
            Assert.Equal(InvoiceStatus.Paid, invoices[i].Status);
            Assert.Equal(Usd(2900), invoices[i].AmountPaid);
        }

        Assert.Equal(13, h.Gateway.Charges.Count);
        var events = await h.EventsAsync();
        Assert.Single(events, e => e.Type == "subscription.trial_will_end" && e.OccurredAt == Utc(2025, 1, 21, 9));
        Assert.Equal(SubscriptionStatus.Active, (await h.Engine.GetSubscriptionAsync(subscription.Id)).Status);
    }

    [Fact]
    public async Task An_anchor_on_the_31st_bills_on_month_ends_for_14_months()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(1000);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 31, 12));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2026, 3, 31, 13));

        var starts = (await h.InvoicesAsync(subscription.Id)).Select(i => i.Period!.Value.Start).ToArray();
        int[] days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28, 31];
        Assert.Equal(days.Select((d, i) => Utc(2025, 1, 1, 12).AddMonths(i).AddDays(d - 1)), starts);
    }

    [Theory]
    [InlineData(ProrationBehavior.CreateProrations)]
    [InlineData(ProrationBehavior.AlwaysInvoice)]
    [InlineData(ProrationBehavior.None)]
    public async Task An_upgrade_on_day_10_of_a_30_day_period_prorates_exactly(ProrationBehavior behavior)
    {
        var h = new EngineHarness();
        var basic = await h.MonthlyPlanAsync(3000, "Basic");
        var pro = await h.MonthlyPlanAsync(6000, "Pro");
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 4, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, basic.Id));
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 4, 11));

        await h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { PlanId = pro.Id, ProrationBehavior = behavior });
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 1, 2));

        // April has 30 days = 2,592,000 s; 20 days = 1,728,000 s remain after 11 April 00:00.
        // credit = −round(30.00 × 1,728,000 / 2,592,000) = −20.00; debit = +round(60.00 × 1,728,000 / 2,592,000) = +40.00
        var invoices = await h.InvoicesAsync(subscription.Id);
        var renewal = invoices.Single(i => i.Period?.Start == Utc(2025, 5, 1));
        var planLine = Assert.Single(renewal.Lines, l => l.Kind == InvoiceLineKind.Plan);
        Assert.Equal(Usd(6000), planLine.Amount);
        Assert.Equal("Pro", planLine.Description);
        var prorations = invoices.SelectMany(i => i.Lines).Where(l => l.Kind is InvoiceLineKind.ProrationCredit or InvoiceLineKind.ProrationDebit).ToArray();
        switch (behavior)
        {
            case ProrationBehavior.CreateProrations:
                Assert.Equal(2, invoices.Count); // the lines wait for the renewal
                Assert.Equal(Usd(6000 - 2000 + 4000), renewal.Total);
                Assert.Equal([Usd(-2000), Usd(4000)], renewal.Lines.Where(l => l.Proration is not null).Select(l => l.Amount));
                Assert.Equal(new ProrationFormula(Usd(3000), 1_728_000, 2_592_000, RoundingMode.HalfEven), renewal.Lines.Single(l => l.Kind == InvoiceLineKind.ProrationCredit).Proration);
                break;
            case ProrationBehavior.AlwaysInvoice:
                Assert.Equal(3, invoices.Count);
                var immediate = Assert.Single(invoices, i => i.Reason == BillingReason.SubscriptionUpdate);
                Assert.Equal([Usd(-2000), Usd(4000)], immediate.Lines.Select(l => l.Amount));
                Assert.Equal(Usd(2000), immediate.AmountPaid);
                Assert.Equal(Utc(2025, 4, 11), immediate.FinalizedAt);
                Assert.Equal(Usd(6000), renewal.Total);
                break;
            default:
                Assert.Equal(2, invoices.Count);
                Assert.Empty(prorations);
                Assert.Equal(Usd(6000), renewal.Total);
                break;
        }
    }

    [Fact]
    public async Task Two_soft_failures_then_success_follow_the_retry_schedule_with_three_keys()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(2500);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        Assert.Equal(SubscriptionStatus.Active, subscription.Status);
        h.Gateway.FailTimes(FakePaymentGateway.Visa, 2);

        // Renewal on 1 Feb, finalized and first charged at 01:00; retries 1 and 3 days after that first failure.
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 2, 1, 1));
        Assert.Equal(SubscriptionStatus.PastDue, (await h.Engine.GetSubscriptionAsync(subscription.Id)).Status);
        var invoice = (await h.InvoicesAsync(subscription.Id))[1];
        Assert.Equal(Utc(2025, 2, 2, 1), invoice.NextActionAt);

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 2, 10));

        invoice = await h.Engine.GetInvoiceAsync(invoice.Id);
        Assert.Equal(InvoiceStatus.Paid, invoice.Status);
        Assert.Equal(Usd(2500), invoice.AmountPaid);
        Assert.Equal(Utc(2025, 2, 4, 1), invoice.ClosedAt);
        Assert.Equal(SubscriptionStatus.Active, (await h.Engine.GetSubscriptionAsync(subscription.Id)).Status);
        var calls = h.Gateway.Calls.Where(c => c.InvoiceId == invoice.Id).ToArray();
        Assert.Equal(3, calls.Length);
        Assert.Equal([$"{invoice.Id}/charge/1", $"{invoice.Id}/charge/2", $"{invoice.Id}/charge/3"], calls.Select(c => c.IdempotencyKey));
        var payments = await h.Engine.ListPaymentsAsync(invoice.Id);
        Assert.Equal([PaymentStatus.Failed, PaymentStatus.Failed, PaymentStatus.Succeeded], payments.Select(p => p.Status));
        Assert.Equal([Utc(2025, 2, 1, 1), Utc(2025, 2, 2, 1), Utc(2025, 2, 4, 1)], payments.Select(p => p.CreatedAt));
        var dunning = (await h.EventsAsync()).Where(e => e.ObjectId == invoice.Id && e.Type.StartsWith("dunning.", StringComparison.Ordinal)).Select(e => e.Type);
        Assert.Equal(["dunning.started", "dunning.retry_scheduled", "dunning.retry_scheduled", "dunning.resolved"], dunning);
    }

    [Fact]
    public async Task A_hard_decline_is_not_retried_and_the_subscription_ends_per_policy()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(2500);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        h.Gateway.FailTimes(FakePaymentGateway.Visa, 1, PaymentResult.Declined(DeclineType.Hard, "fraudulent", "Fraud suspected."));

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 3, 1));

        var invoices = await h.InvoicesAsync(subscription.Id);
        Assert.Equal(2, invoices.Count); // canceled: no March renewal
        Assert.Equal(InvoiceStatus.Uncollectible, invoices[1].Status);
        Assert.Single(h.Gateway.Calls, c => c.InvoiceId == invoices[1].Id);
        var after = await h.Engine.GetSubscriptionAsync(subscription.Id);
        Assert.Equal(SubscriptionStatus.Canceled, after.Status);
        Assert.Equal(Utc(2025, 2, 1, 1), after.CanceledAt);
    }

    [Fact]
    public async Task Credit_balance_pays_first_and_a_full_discount_is_paid_without_the_gateway()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(2900);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        await h.Engine.AdjustCreditBalanceAsync(customer.Id, Usd(1000));

        var withCredit = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        var first = (await h.InvoicesAsync(withCredit.Id))[0];
        Assert.Equal(Usd(1000), first.CreditApplied);
        Assert.Equal(Usd(1900), first.AmountPaid);
        Assert.Equal(Usd(1900), Assert.Single(h.Gateway.Calls).Amount);
        Assert.Equal(Usd(0), (await h.Engine.GetCustomerAsync(customer.Id)).CreditBalance);

        var free = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id) { Coupon = Coupon.PercentOff("WELCOME", 1_000_000, CouponDuration.Once) });
        var zero = (await h.InvoicesAsync(free.Id))[0];
        Assert.Equal(Usd(0), zero.Total);
        Assert.Equal(InvoiceStatus.Paid, zero.Status);
        Assert.Equal(SubscriptionStatus.Active, free.Status);
        Assert.Single(h.Gateway.Calls); // still only the first subscription's charge

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 2, 1, 2));
        var second = (await h.InvoicesAsync(free.Id))[1];
        Assert.Equal(Usd(2900), second.AmountPaid); // the coupon applied once
    }
}
