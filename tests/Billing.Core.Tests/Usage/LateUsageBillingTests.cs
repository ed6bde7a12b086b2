using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using Billing.Tests.Engine;
using Billing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// Late events are billed, never lost: the renewal draft stays open until the ended period's usage closes, its usage
/// lines are priced again from the durable events at finalization (discount and tax computed again), and an event
/// for a period whose invoice is finalized is rejected without touching a counter.
/// </summary>
public sealed class LateUsageBillingTests
{
    private static readonly DateTimeOffset Start = Utc(2025, 1, 1);
    private static readonly BillingPeriod January = new(Utc(2025, 1, 1), Utc(2025, 2, 1));

    private static MeteredPrice ApiCalls => UsagePrices.GraduatedApiCalls;

    [Fact]
    public async Task An_event_accepted_after_the_renewal_draft_was_created_is_on_the_finalized_invoice_with_discount_and_tax_computed_again()
    {
        var t = await Setup.CreateAsync(coupon: Coupon.PercentOff("TENOFF", 100_000, CouponDuration.Forever), taxRates: [new TaxRate("NY", 88_750)]);
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 1, 25));
        Assert.Equal(UsageIngestStatus.Accepted, (await t.Metering.RecordAsync(t.Call("e1", 3_000, Utc(2025, 1, 5)))).Status);

        // The renewal at 1 February creates the draft; it stays a draft until the usage closes (+24 h) plus the delay (1 h).
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 2, 1, 5));
        var draft = await t.RenewalAsync();
        Assert.Equal((InvoiceStatus.Draft, Utc(2025, 2, 2, 1)), (draft.Status, draft.NextActionAt!.Value));
        // plan 10.00 + usage 2,000 × 0.02 = 50.00; −10 % = 45.00; tax 8.875 % = 3.99375 → 3.99; total 48.99
        Assert.Equal(Usd(4_899), draft.Total);

        var late = await t.Metering.RecordAsync(t.Call("e2", 2_500, Utc(2025, 1, 31, 23)));
        Assert.Equal((UsageIngestStatus.Accepted, January.Start), (late.Status, late.Counter!.Value.PeriodStart));

        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 2, 2, 2));
        var invoice = await t.RenewalAsync();
        Assert.Equal(InvoiceStatus.Paid, invoice.Status);
        var usage = Assert.Single(invoice.Lines, l => l.Kind == InvoiceLineKind.Usage);
        // 5,500 calls: 1,000 free + 4,000 × 0.02 + 500 × 0.01 = 85.00
        Assert.Equal((5_500L, Usd(8_500), January, t.PlanId), (usage.Quantity, usage.Amount, usage.Period!.Value, usage.PlanId));
        Assert.Equal(
            [
                (PriceComponentKind.Units, 0, 1L, (long?)1_000L, 1_000L, 0L, 0L),
                (PriceComponentKind.Units, 1, 1_001L, 5_000L, 4_000L, 2L, 8_000L),
                (PriceComponentKind.Units, 2, 5_001L, null, 500L, 1L, 500L),
            ],
            usage.Breakdown!.Components.Select(c => (c.Kind, c.TierIndex, c.TierFrom!.Value, c.TierUpTo, c.Quantity, c.UnitAmount, c.Amount.MinorUnits)));
        // subtotal 10.00 + 85.00 = 95.00; discount 9.50; taxable 85.50; tax 8.875 % = 7.588125 → 7.59; total 93.09
        Assert.Equal((Usd(9_500), Usd(-950), Usd(759), Usd(9_309)), (invoice.Subtotal, invoice.Discount, invoice.Tax, invoice.Total));
        Assert.Equal(invoice.Total, new Money(invoice.Lines.Sum(l => l.Amount.MinorUnits), Currency.USD));
        Assert.Equal([Usd(1_000), Usd(8_500), Usd(-950), Usd(759)], invoice.Lines.Select(l => l.Amount));
        Assert.Equal(Usd(9_309), invoice.AmountPaid);
        Assert.Equal(Usd(9_309), Assert.Single(await t.H.Engine.ListPaymentsAsync(invoice.Id)).Amount);

        var updated = Assert.Single(await t.H.EventsAsync(), e => e.Type == "invoice.updated");
        Assert.Equal((invoice.Id, "usage_repriced", "4899", "9309"), (updated.ObjectId, updated.Data["reason"], updated.Data["previous_total"], updated.Data["total"]));
        var finalized = Assert.Single(await t.H.EventsAsync(), e => e.Type == "invoice.finalized" && e.ObjectId == invoice.Id);
        Assert.Equal("9309", finalized.Data["amount_due"]);
        Assert.Equal(5_500, await t.Metering.GetDurableTotalAsync(t.Key(January), MeterAggregation.Sum));
    }

    [Fact]
    public async Task An_event_for_a_period_whose_invoice_is_finalized_is_rejected_and_changes_no_counter()
    {
        var t = await Setup.CreateAsync();
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 1, 20));
        await t.Metering.RecordAsync(t.Call("e1", 1_200, Utc(2025, 1, 20)));
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 2, 1, 3));
        var draft = await t.RenewalAsync();
        var invoice = await t.H.Engine.FinalizeInvoiceAsync(draft.Id); // by hand, before the usage closes
        Assert.Equal(Usd(1_000 + 400), invoice.Total);

        var late = await t.Metering.RecordAsync(t.Call("e2", 50, Utc(2025, 1, 31)));
        Assert.Equal((UsageIngestStatus.Rejected, "period_closed", "timestamp"), (late.Status, late.Reason, late.Field));
        Assert.Equal(1_200, await t.Metering.GetTotalAsync(t.Key(January)));
        Assert.Equal(1_200, await t.Metering.GetDurableTotalAsync(t.Key(January), MeterAggregation.Sum));
        var retried = await t.Metering.RecordBatchAsync([t.Call("e2", 50, Utc(2025, 1, 31)), t.Call("e3", 7, Utc(2025, 2, 1, 1))]);
        Assert.Equal(["period_closed", null], retried.Select(r => r.Reason));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 2, 1)), (retried[1].Status, retried[1].Counter!.Value.PeriodStart));
        Assert.Equal(1_200, await t.Metering.GetTotalAsync(t.Key(January)));

        // Past the grace window the rejection is the older one, and the counter still does not move.
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 2, 2, 2));
        Assert.Equal("timestamp_too_old", (await t.Metering.RecordAsync(t.Call("e4", 50, Utc(2025, 1, 31)))).Reason);
        Assert.Equal(1_200, await t.Metering.GetTotalAsync(t.Key(January)));
        Assert.Equal(1_200, await t.Metering.GetDurableTotalAsync(t.Key(January), MeterAggregation.Sum));
        var after = await t.RenewalAsync();
        Assert.Equal((invoice.Total, invoice.Lines.Count), (after.Total, after.Lines.Count));
        Assert.DoesNotContain(await t.H.EventsAsync(), e => e.Type == "invoice.updated");
    }

    /// <summary>
    /// Whatever the grace and the draft delay, an event sent at the last instant the grace allows is either accepted
    /// and on the finalized invoice, or rejected as <c>period_closed</c> without being counted: never accepted but
    /// unbilled. A delay above zero leaves the draft open at that instant, so the event is accepted.
    /// </summary>
    [Theory]
    [InlineData(0, 0)]
    [InlineData(0, 1)]
    [InlineData(24, 0)]
    [InlineData(24, 1)]
    [InlineData(1, 24)]
    [InlineData(72, 2)]
    public async Task An_event_at_the_end_of_the_grace_is_billed_or_rejected_for_any_grace_and_draft_delay(int graceHours, int delayHours)
    {
        var t = await Setup.CreateAsync(grace: TimeSpan.FromHours(graceHours), delay: TimeSpan.FromHours(delayHours));
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 1, 15));
        await t.Metering.RecordAsync(t.Call("e1", 1_500, Utc(2025, 1, 10)));

        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, January.End.AddHours(graceHours));
        var last = await t.Metering.RecordAsync(t.Call("e2", 700, Utc(2025, 1, 31, 23, 59)));
        await t.H.Engine.AdvanceTestClockAsync(t.ClockId, Utc(2025, 3, 15));

        var invoice = await t.RenewalAsync();
        Assert.Equal(InvoiceStatus.Paid, invoice.Status);
        var usage = Assert.Single(invoice.Lines, l => l.Kind == InvoiceLineKind.Usage);
        if (delayHours > 0)
        {
            Assert.Equal(UsageIngestStatus.Accepted, last.Status);
        }
        else
        {
            Assert.Equal((UsageIngestStatus.Rejected, "period_closed"), (last.Status, last.Reason));
        }

        var expected = 1_500 + (last.Status == UsageIngestStatus.Accepted ? 700 : 0);
        Assert.Equal(expected, usage.Quantity);
        Assert.Equal(expected, await t.Metering.GetTotalAsync(t.Key(January)));
        Assert.Equal(expected, await t.Metering.GetDurableTotalAsync(t.Key(January), MeterAggregation.Sum));
        Assert.Equal(January.End.AddHours(graceHours + delayHours), invoice.FinalizedAt);
    }

    [Fact]
    public async Task A_plan_without_metered_prices_keeps_the_plain_draft_delay()
    {
        var events = new InMemoryUsageEventStore();
        var h = new EngineHarness(usage: new MeteredUsageCharges(events, new MeteringOptions { LateEventGrace = TimeSpan.FromDays(3) }));
        var plan = await h.MonthlyPlanAsync(1_000);
        var (clock, customer) = await h.ClockCustomerAsync(Start);
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 2, 1, 0, 30));
        var renewal = (await h.InvoicesAsync(subscription.Id))[1];
        Assert.Equal((InvoiceStatus.Draft, Utc(2025, 2, 1, 1)), (renewal.Status, renewal.NextActionAt!.Value));
    }

    [Fact]
    public void A_source_gives_the_instant_a_periods_usage_closes()
    {
        var plan = new Plan { Id = "plan_x", Name = "X", Price = new FlatPrice(Usd(1)), Interval = BillingInterval.Monthly, MeteredPrices = [ApiCalls] };
        var charges = new MeteredUsageCharges(new InMemoryUsageEventStore(), new MeteringOptions { LateEventGrace = TimeSpan.FromHours(6) });
        Assert.Equal(January.End.AddHours(6), charges.UsageClosesAt(plan, January));
        Assert.Equal(January.End, charges.UsageClosesAt(plan with { MeteredPrices = [] }, January));
        Assert.Equal(January.End.AddHours(24), new MeteredUsageCharges(new InMemoryUsageEventStore()).UsageClosesAt(plan, January));
        Billing.Ports.IUsageChargeSource none = new Billing.Ports.NoUsageCharges();
        Assert.Equal(January.End, none.UsageClosesAt(plan, January));
        Assert.Throws<BillingValidationException>(() => new MeteredUsageCharges(new InMemoryUsageEventStore(), new MeteringOptions { LateEventGrace = TimeSpan.FromDays(-1) }));
    }

    /// <summary>One customer on a test clock, subscribed on 1 January to a plan with a metered graduated price.</summary>
    private sealed class Setup
    {
        private Setup(EngineHarness h, UsageMeteringService metering, string clockId, string customerId, string planId, Subscription subscription)
        {
            (H, Metering, ClockId, CustomerId, PlanId, Subscription) = (h, metering, clockId, customerId, planId, subscription);
        }

        public EngineHarness H { get; }

        public UsageMeteringService Metering { get; }

        public string ClockId { get; }

        public string CustomerId { get; }

        public string PlanId { get; }

        public Subscription Subscription { get; }

        public static async Task<Setup> CreateAsync(Coupon? coupon = null, TaxRate[]? taxRates = null, TimeSpan? grace = null, TimeSpan? delay = null)
        {
            var events = new InMemoryUsageEventStore();
            var options = new MeteringOptions { LateEventGrace = grace ?? TimeSpan.FromHours(24) };
            var h = new EngineHarness(o => o.DraftFinalizationDelay = delay ?? TimeSpan.FromHours(1), new MeteredUsageCharges(events, options));
            var metering = new UsageMeteringService(h.Store, new InMemoryUsageCounter(), events, h.Time, options);
            var plan = await h.Engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(Usd(1_000)), BillingInterval.Monthly) { MeteredPrices = [ApiCalls] });
            var clock = await h.Engine.CreateTestClockAsync(Start);
            var customer = await h.Engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id, TaxRates = taxRates });
            var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id) { Coupon = coupon });
            return new Setup(h, metering, clock.Id, customer.Id, plan.Id, subscription);
        }

        public UsageEventInput Call(string key, long quantity, DateTimeOffset at) =>
            new() { CustomerId = CustomerId, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key };

        public UsageCounterKey Key(BillingPeriod period) => new(CustomerId, "api_calls", period.Start);

        /// <summary>The invoice of February, which bills January's usage.</summary>
        public async Task<Invoice> RenewalAsync() =>
            (await H.InvoicesAsync(Subscription.Id)).Single(i => i.Period!.Value.Start == January.End);
    }
}
