using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Tests.Engine;
using Billing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// The usage of a subscription's last stretch on a plan is billed when no renewal bills it (as Stripe Billing does): on
/// the final invoice at an immediate cancellation or a cancellation at period end, on the invoice made at an immediate
/// plan change, and on the renewal after a plan change at period end; late events within the grace are billed by the
/// repricing at finalization. Expected lines are computed by hand.
/// </summary>
/// <remarks>
/// Pro: $10 a month, API calls graduated (first 1,000 free, then 2¢ up to 5,000, then 1¢). Team: $30 a month, API calls
/// at 1¢. Lite: $5 a month, no usage pricing. Grace 24 h, finalization delay 1 h.
/// </remarks>
public sealed class FinalPeriodUsageTests
{
    private static readonly DateTimeOffset Start = Utc(2025, 1, 1);

    private readonly InMemoryUsageEventStore _events;
    private readonly EngineHarness _h;
    private readonly UsageMeteringService _metering;

    public FinalPeriodUsageTests() => (_h, _events, _metering) = MeteringHarness.Create();

    private static MeteredPrice ProCalls => UsagePrices.GraduatedApiCalls;

    private async Task<(string Clock, string Customer, Subscription Subscription, Plan Team, Plan Lite)> SubscribeAsync()
    {
        var pro = await _h.Engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(Usd(1_000)), BillingInterval.Monthly) { MeteredPrices = [ProCalls] });
        var team = await _h.Engine.CreatePlanAsync(new NewPlan("Team", new FlatPrice(Usd(3_000)), BillingInterval.Monthly)
        {
            MeteredPrices = [UsagePrices.PerUnitApiCalls(1, "API calls (Team)")],
        });
        var lite = await _h.Engine.CreatePlanAsync(new NewPlan("Lite", new FlatPrice(Usd(500)), BillingInterval.Monthly));
        var (clock, customer) = await _h.ClockCustomerAsync(Start);
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, pro.Id));
        return (clock.Id, customer.Id, subscription, team, lite);
    }

    private async Task<UsageIngestResult> CallAsync(string customer, string key, long quantity, DateTimeOffset at) =>
        await _metering.RecordAsync(new UsageEventInput { CustomerId = customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key });

    private static void AssertUsageLine(Invoice invoice, string description, long quantity, long cents, BillingPeriod period)
    {
        var line = Assert.Single(invoice.Lines, l => l.Kind == InvoiceLineKind.Usage);
        Assert.Equal((description, quantity, Usd(cents), period), (line.Description, line.Quantity, line.Amount, line.Period!.Value));
    }

    [Fact]
    public async Task An_immediate_cancellation_bills_the_partial_period_usage_on_a_final_invoice_that_takes_late_events()
    {
        var (clock, customer, subscription, _, _) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 1_500, Utc(2025, 1, 5))).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e2", 300, Utc(2025, 1, 9))).Status);

        var canceled = await _h.Engine.CancelSubscriptionAsync(subscription.Id);
        var final = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Id == canceled.LatestInvoiceId);
        Assert.Equal((InvoiceStatus.Draft, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 10))), (final.Status, final.Period!.Value));
        Assert.Equal(Utc(2025, 1, 11, 1), final.NextActionAt); // the usage closes 24 h after the cancellation, then 1 h
        AssertUsageLine(final, "API calls", 1_800, 1_600, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 10))); // 800 × 2¢
        Assert.Equal(Usd(1_600), final.Total);

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10, 12));
        var late = await CallAsync(customer, "late", 200, Utc(2025, 1, 9, 23)); // before the cancellation, within the grace
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 1)), (late.Status, late.Counter!.Value.PeriodStart));
        Assert.Equal("no_subscription_for_meter", (await CallAsync(customer, "after", 5, Utc(2025, 1, 10, 1))).Reason); // after it

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 11, 2));
        final = await _h.Engine.GetInvoiceAsync(final.Id);
        Assert.Equal(InvoiceStatus.Paid, final.Status);
        AssertUsageLine(final, "API calls", 2_000, 2_000, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 10))); // 1,000 × 2¢
        Assert.Equal(Usd(2_000), final.Total);
        Assert.Equal("timestamp_too_old", (await CallAsync(customer, "too-late", 5, Utc(2025, 1, 9))).Reason);
        Assert.Equal(2, (await _h.InvoicesAsync(subscription.Id)).Count); // the first invoice and the final one
    }

    [Fact]
    public async Task A_cancellation_at_period_end_bills_the_last_period_usage_on_a_final_invoice_and_renews_nothing()
    {
        var (clock, customer, subscription, _, _) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 15));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 1_200, Utc(2025, 1, 14))).Status);
        await _h.Engine.CancelSubscriptionAsync(subscription.Id, atPeriodEnd: true);

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 1, 5));
        Assert.Equal(SubscriptionStatus.Canceled, (await _h.Engine.GetSubscriptionAsync(subscription.Id)).Status);
        var invoices = await _h.InvoicesAsync(subscription.Id);
        Assert.Equal(2, invoices.Count);
        var final = Assert.Single(invoices, i => i.Reason == BillingReason.SubscriptionCycle);
        Assert.Equal(InvoiceStatus.Draft, final.Status);
        Assert.DoesNotContain(final.Lines, l => l.Kind == InvoiceLineKind.Plan); // nothing renews
        AssertUsageLine(final, "API calls", 1_200, 400, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 2, 1))); // 200 × 2¢

        var late = await CallAsync(customer, "late", 100, Utc(2025, 1, 31, 23));
        Assert.Equal(UsageIngestStatus.Accepted, late.Status);
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 2, 2));
        final = await _h.Engine.GetInvoiceAsync(final.Id);
        Assert.Equal(InvoiceStatus.Paid, final.Status);
        AssertUsageLine(final, "API calls", 1_300, 600, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 2, 1))); // 300 × 2¢
        Assert.Equal(Usd(600), final.Total);
    }

    [Fact]
    public async Task An_immediate_plan_change_bills_the_old_plans_usage_at_the_change_and_the_new_plans_at_renewal()
    {
        var (clock, customer, subscription, team, _) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 16));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 3_000, Utc(2025, 1, 10))).Status);
        await _h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { PlanId = team.Id, ProrationBehavior = ProrationBehavior.None });

        var change = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Reason == BillingReason.SubscriptionUpdate);
        Assert.Equal(InvoiceStatus.Draft, change.Status);
        AssertUsageLine(change, "API calls", 3_000, 4_000, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 16))); // 2,000 × 2¢ on Pro

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 16, 10));
        var after = await CallAsync(customer, "e2", 500, Utc(2025, 1, 16, 5));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 16), 500L), (after.Status, after.Counter!.Value.PeriodStart, after.Total!.Value)); // a counter of its own
        var late = await CallAsync(customer, "late", 100, Utc(2025, 1, 15, 22)); // the old plan's stretch, within the grace
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 1)), (late.Status, late.Counter!.Value.PeriodStart));

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 17, 2));
        change = await _h.Engine.GetInvoiceAsync(change.Id);
        Assert.Equal(InvoiceStatus.Paid, change.Status);
        AssertUsageLine(change, "API calls", 3_100, 4_200, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 16))); // 2,100 × 2¢

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 2, 2));
        var renewal = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Period?.Start == Utc(2025, 2, 1));
        Assert.Equal(Usd(3_000), Assert.Single(renewal.Lines, l => l.Kind == InvoiceLineKind.Plan).Amount);
        AssertUsageLine(renewal, "API calls (Team)", 500, 500, new BillingPeriod(Utc(2025, 1, 16), Utc(2025, 2, 1))); // 500 × 1¢ on Team
        Assert.Equal(Usd(3_500), renewal.Total);
    }

    [Fact]
    public async Task A_plan_change_at_period_end_bills_the_old_plans_usage_on_the_renewal_with_its_late_events()
    {
        var (clock, customer, subscription, _, lite) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 20));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 2_000, Utc(2025, 1, 19))).Status);
        await _h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { PlanId = lite.Id, AtPeriodEnd = true });

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 1, 5));
        var renewal = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Period?.Start == Utc(2025, 2, 1));
        Assert.Equal(Usd(500), Assert.Single(renewal.Lines, l => l.Kind == InvoiceLineKind.Plan).Amount); // Lite from now on
        AssertUsageLine(renewal, "API calls", 2_000, 2_000, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 2, 1))); // 1,000 × 2¢ on Pro

        // Lite prices no API calls, yet a late event of January is Pro's usage and is billed.
        var late = await CallAsync(customer, "late", 500, Utc(2025, 1, 31, 20));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 1)), (late.Status, late.Counter!.Value.PeriodStart));
        Assert.Equal("no_subscription_for_meter", (await CallAsync(customer, "feb", 5, Utc(2025, 2, 1, 4))).Reason);
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 2, 2));
        renewal = await _h.Engine.GetInvoiceAsync(renewal.Id);
        AssertUsageLine(renewal, "API calls", 2_500, 3_000, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 2, 1))); // 1,500 × 2¢
        Assert.Equal((InvoiceStatus.Paid, Usd(3_500)), (renewal.Status, renewal.Total));
    }

    [Fact]
    public async Task An_immediate_change_to_another_interval_bills_the_old_plans_usage_at_the_change_and_restarts_the_cycle()
    {
        var (clock, customer, subscription, _, _) = await SubscribeAsync();
        var annual = await _h.Engine.CreatePlanAsync(new NewPlan("Annual", new FlatPrice(Usd(10_000)), BillingInterval.Yearly)
        {
            MeteredPrices = [UsagePrices.PerUnitApiCalls(1, "API calls (Annual)")],
        });
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 16));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 3_000, Utc(2025, 1, 10))).Status);
        await _h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { PlanId = annual.Id, ProrationBehavior = ProrationBehavior.None });

        var invoices = await _h.InvoicesAsync(subscription.Id);
        var usage = Assert.Single(invoices, i => i.Reason == BillingReason.SubscriptionUpdate && i.Lines.All(l => l.Kind == InvoiceLineKind.Usage));
        AssertUsageLine(usage, "API calls", 3_000, 4_000, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 16))); // 2,000 × 2¢ on Pro
        var restart = Assert.Single(invoices, i => i.Period?.Start == Utc(2025, 1, 16) && i.Lines.Any(l => l.Kind == InvoiceLineKind.Plan));
        Assert.Equal((Usd(10_000), new BillingPeriod(Utc(2025, 1, 16), Utc(2026, 1, 16))), (restart.Total, restart.Period!.Value));

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 16, 10));
        var after = await CallAsync(customer, "e2", 700, Utc(2025, 1, 16, 5));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 16)), (after.Status, after.Counter!.Value.PeriodStart));
        var late = await CallAsync(customer, "late", 500, Utc(2025, 1, 15, 23));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 1)), (late.Status, late.Counter!.Value.PeriodStart));
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 17, 2));
        usage = await _h.Engine.GetInvoiceAsync(usage.Id);
        Assert.Equal(InvoiceStatus.Paid, usage.Status);
        AssertUsageLine(usage, "API calls", 3_500, 5_000, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 16))); // 2,500 × 2¢
    }
}
