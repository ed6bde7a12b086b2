using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Tests.Engine;
using Billing.Tests.Support;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// Several immediate plan changes in one period: each stretch on a plan is billed by its own invoice (the final invoice
/// made at the change that ends it, or the renewal for the last one), and a late event resolves to the invoice whose
/// stretch holds its timestamp, priced with that stretch's plan when that invoice finalizes. Expected amounts are
/// computed by hand.
/// </summary>
/// <remarks>
/// A: $10 a month, API calls at 1¢. B: $20, 2¢. C: $30, 3¢. Lite: $5, no usage pricing. Changes are made without
/// proration, so the invoices hold only usage (and the renewal's plan charge).
/// </remarks>
public sealed class PlanChangeLateUsageTests
{
    private static readonly BillingPeriod January = new(Utc(2025, 1, 1), Utc(2025, 2, 1));

    private static MeteredPrice Calls(long cents) => UsagePrices.PerUnitApiCalls(cents, $"API calls at {cents}¢");

    [Fact]
    public async Task Late_events_of_each_of_three_stretches_land_on_the_invoice_that_bills_that_stretch_at_its_plans_price()
    {
        var t = await Fixture.CreateAsync(TimeSpan.FromDays(3));
        await t.AdvanceAsync(Utc(2025, 1, 10));
        Assert.Equal(Utc(2025, 1, 1), (await t.CallAsync("a1", 100, Utc(2025, 1, 5))).Counter!.Value.PeriodStart);
        await t.ChangeAsync(t.B);
        await t.AdvanceAsync(Utc(2025, 1, 12));
        Assert.Equal(Utc(2025, 1, 10), (await t.CallAsync("b1", 200, Utc(2025, 1, 11))).Counter!.Value.PeriodStart);
        await t.ChangeAsync(t.C);

        // After the second change, late events of the first and second stretches, and an event of the third.
        await t.AdvanceAsync(Utc(2025, 1, 12, 12));
        var a = await t.CallAsync("a-late", 10, Utc(2025, 1, 9));
        var b = await t.CallAsync("b-late", 20, Utc(2025, 1, 11, 12));
        var c = await t.CallAsync("c1", 300, Utc(2025, 1, 12, 6));
        Assert.Equal(
            [(UsageIngestStatus.Accepted, Utc(2025, 1, 1)), (UsageIngestStatus.Accepted, Utc(2025, 1, 10)), (UsageIngestStatus.Accepted, Utc(2025, 1, 12))],
            new[] { a, b, c }.Select(r => (r.Status, r.Counter!.Value.PeriodStart)));

        await t.AdvanceAsync(Utc(2025, 1, 31));
        await t.CallAsync("c2", 400, Utc(2025, 1, 30));
        await t.AdvanceAsync(Utc(2025, 2, 1, 12));
        var cLate = await t.CallAsync("c-late", 40, Utc(2025, 1, 31, 23)); // the third stretch's, after the renewal
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 12)), (cLate.Status, cLate.Counter!.Value.PeriodStart));
        Assert.Equal("timestamp_too_old", (await t.CallAsync("a-too-late", 1, Utc(2025, 1, 9))).Reason); // its grace is over

        await t.AdvanceAsync(Utc(2025, 2, 5));
        var invoices = await t.H.InvoicesAsync(t.Subscription);
        Assert.Equal(4, invoices.Count); // the first, one at each change, the renewal
        // A: 110 × 1¢; B: 220 × 2¢; C: 740 × 3¢ on the renewal with C's 30.00
        AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 10)), t.A, 110, 110);
        AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 10), Utc(2025, 1, 12)), t.B, 220, 440);
        AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 12), Utc(2025, 2, 1)), t.C, 740, 2_220);
        var renewal = Assert.Single(invoices, i => i.Period?.Start == Utc(2025, 2, 1));
        Assert.Equal((InvoiceStatus.Paid, Usd(5_220)), (renewal.Status, renewal.Total));
        Assert.All(invoices, i => Assert.Equal(InvoiceStatus.Paid, i.Status));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task After_the_renewal_late_events_walk_back_through_the_renewal_to_each_change_of_the_ended_period(bool lastPlanPricesUsage)
    {
        var t = await Fixture.CreateAsync(TimeSpan.FromDays(3));
        await t.AdvanceAsync(Utc(2025, 1, 30));
        await t.ChangeAsync(t.B);
        await t.AdvanceAsync(Utc(2025, 1, 31));
        await t.ChangeAsync(lastPlanPricesUsage ? t.C : t.Lite); // with Lite, the renewal has no usage line to walk back by

        await t.AdvanceAsync(Utc(2025, 2, 1, 6));
        var a = await t.CallAsync("a", 1_000, Utc(2025, 1, 29));
        var b = await t.CallAsync("b", 100, Utc(2025, 1, 30, 12));
        var c = await t.CallAsync("c", 10, Utc(2025, 1, 31, 12));
        Assert.Equal([Utc(2025, 1, 1), Utc(2025, 1, 30)], new[] { a, b }.Select(r => r.Counter!.Value.PeriodStart));
        Assert.Equal(lastPlanPricesUsage ? UsageIngestStatus.Accepted : UsageIngestStatus.Rejected, c.Status);

        await t.AdvanceAsync(Utc(2025, 2, 5));
        var invoices = await t.H.InvoicesAsync(t.Subscription);
        AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 30)), t.A, 1_000, 1_000);
        AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 30), Utc(2025, 1, 31)), t.B, 100, 200);
        if (lastPlanPricesUsage)
        {
            AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 31), Utc(2025, 2, 1)), t.C, 10, 30);
        }
    }

    [Fact]
    public async Task A_stretch_on_a_plan_without_usage_pricing_makes_no_invoice_yet_the_stretch_before_it_still_takes_late_events()
    {
        var t = await Fixture.CreateAsync(TimeSpan.FromDays(3));
        await t.AdvanceAsync(Utc(2025, 1, 10));
        await t.ChangeAsync(t.Lite);
        await t.AdvanceAsync(Utc(2025, 1, 11));
        await t.ChangeAsync(t.C); // Lite's stretch has nothing to bill: no invoice keyed at this change

        await t.AdvanceAsync(Utc(2025, 1, 11, 12));
        var a = await t.CallAsync("a-late", 50, Utc(2025, 1, 9));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 1, 1)), (a.Status, a.Counter!.Value.PeriodStart));
        Assert.Equal(UsageIngestStatus.Rejected, (await t.CallAsync("lite", 5, Utc(2025, 1, 10, 12))).Status); // Lite prices no calls

        await t.AdvanceAsync(Utc(2025, 1, 14));
        var invoices = await t.H.InvoicesAsync(t.Subscription);
        Assert.Equal(2, invoices.Count);
        AssertUsage(invoices, new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 1, 10)), t.A, 50, 50);
    }

    /// <summary>A generated event: its hour and minute in January, its quantity, and whether it is sent only after the renewal.</summary>
    public sealed record Ev(int Hour, int Minute, int Quantity, bool Late);

    /// <summary>A generated period: the hours (in January) of the immediate plan changes, the plan chosen at each, the events.</summary>
    public sealed record Scenario(int[] ChangeHours, int[] PlanSteps, Ev[] Events);

    [Fact]
    public void For_any_sequence_of_changes_in_a_period_every_accepted_event_is_billed_on_exactly_one_invoice_at_its_stretchs_plan()
    {
        var events = from hour in Gen.Choose(0, 743) from minute in Gen.Choose(0, 59) from quantity in Gen.Choose(1, 1_000) from late in Gen.Elements(true, false) select new Ev(hour, minute, quantity, late);
        var scenarios =
            from count in Gen.Choose(1, 4)
            from hours in Gen.ArrayOf(Gen.Choose(1, 743), count)
            from steps in Gen.ArrayOf(Gen.Choose(1, 2), count)
            from n in Gen.Choose(1, 12)
            from evs in Gen.ArrayOf(events, n)
            select new Scenario([.. hours.Distinct().Order()], steps, evs);
        Props.ForAll(scenarios, s => CheckAsync(s).GetAwaiter().GetResult(), maxTest: 100);
    }

    private static async Task CheckAsync(Scenario scenario)
    {
        var t = await Fixture.CreateAsync(TimeSpan.FromDays(35)); // every stretch of January still open on 1 February
        Plan[] plans = [t.A, t.B, t.C];
        var stretches = new List<(DateTimeOffset Start, Plan Plan)> { (January.Start, t.A) };
        var index = 0;
        var actions = scenario.ChangeHours.Select((h, i) => (At: January.Start.AddHours(h), Order: 0, Change: i, Event: (Ev?)null))
            .Concat(scenario.Events.Where(e => !e.Late).Select(e => (At: At(e), Order: 1, Change: -1, Event: (Ev?)e)))
            .OrderBy(a => a.At).ThenBy(a => a.Order).ToList();
        var accepted = new List<(Ev Event, string Key)>();
        foreach (var (at, _, change, ev) in actions)
        {
            await t.AdvanceAsync(at);
            if (ev is null)
            {
                index = (index + scenario.PlanSteps[change]) % plans.Length;
                await t.ChangeAsync(plans[index]);
                stretches.Add((at, plans[index]));
            }
            else
            {
                accepted.Add((ev, await RecordAsync(t, ev, accepted.Count)));
            }
        }

        await t.AdvanceAsync(Utc(2025, 2, 1, 12));
        foreach (var ev in scenario.Events.Where(e => e.Late))
        {
            accepted.Add((ev, await RecordAsync(t, ev, accepted.Count)));
        }

        await t.AdvanceAsync(Utc(2025, 3, 15));
        var lines = (await t.H.InvoicesAsync(t.Subscription))
            .SelectMany(i => i.Lines.Where(l => l.Kind == InvoiceLineKind.Usage && l.Period!.Value.Start < January.End).Select(l => (Invoice: i, Line: l)))
            .ToList();
        foreach (var (ev, key) in accepted)
        {
            // On exactly one invoice, with the plan of the stretch holding it.
            var (invoice, line) = Assert.Single(lines, l => l.Line.Period!.Value.Contains(At(ev)));
            Assert.Equal(stretches.Last(s => s.Start <= At(ev)).Plan.Id, line.PlanId);
            Assert.NotEqual(InvoiceStatus.Draft, invoice.Status);
        }

        foreach (var (_, line) in lines)
        {
            var quantity = accepted.Where(a => line.Period!.Value.Contains(At(a.Event))).Sum(a => (long)a.Event.Quantity);
            var cents = line.PlanId == t.A.Id ? 1 : line.PlanId == t.B.Id ? 2 : 3;
            Assert.Equal((quantity, Usd(quantity * cents)), (line.Quantity, line.Amount));
        }

        Assert.Equal(accepted.Sum(a => (long)a.Event.Quantity), lines.Sum(l => l.Line.Quantity));
        Assert.Equal(stretches.Count, lines.Count); // one line per stretch (each plan prices one meter)

        static DateTimeOffset At(Ev e) => January.Start.AddHours(e.Hour).AddMinutes(e.Minute);

        static async Task<string> RecordAsync(Fixture t, Ev ev, int n)
        {
            var key = $"e{n}";
            var result = await t.CallAsync(key, ev.Quantity, At(ev));
            Assert.True(result.Status == UsageIngestStatus.Accepted, $"{key} at {At(ev):O}: {result.Reason}");
            return key;
        }
    }

    /// <summary>Asserts the usage line billing <paramref name="span"/>: on one finalized invoice, with the plan, quantity and amount.</summary>
    private static void AssertUsage(IReadOnlyList<Invoice> invoices, BillingPeriod span, Plan plan, long quantity, long cents)
    {
        var (invoice, line) = Assert.Single(invoices.SelectMany(i => i.Lines.Select(l => (Invoice: i, Line: l))), x => x.Line.Kind == InvoiceLineKind.Usage && x.Line.Period == span);
        Assert.Equal((plan.Id, quantity, Usd(cents)), (line.PlanId, line.Quantity, line.Amount));
        Assert.NotEqual(InvoiceStatus.Draft, invoice.Status);
    }

    private sealed class Fixture
    {
        private Fixture(EngineHarness h, UsageMeteringService metering, string clock, string customer, string subscription, Plan a, Plan b, Plan c, Plan lite)
        {
            (H, Metering, Clock, Customer, Subscription, A, B, C, Lite) = (h, metering, clock, customer, subscription, a, b, c, lite);
        }

        public EngineHarness H { get; }

        public UsageMeteringService Metering { get; }

        public string Clock { get; }

        public string Customer { get; }

        public string Subscription { get; }

        public Plan A { get; }

        public Plan B { get; }

        public Plan C { get; }

        public Plan Lite { get; }

        public static async Task<Fixture> CreateAsync(TimeSpan grace)
        {
            var events = new InMemoryUsageEventStore();
            var options = new MeteringOptions { LateEventGrace = grace };
            var h = new EngineHarness(usage: new MeteredUsageCharges(events, options));
            var metering = new UsageMeteringService(h.Store, new InMemoryUsageCounter(), events, h.Time, options);
            async Task<Plan> PlanAsync(string name, long cents, long? callCents) =>
                await h.Engine.CreatePlanAsync(new NewPlan(name, new FlatPrice(Usd(cents)), BillingInterval.Monthly) { MeteredPrices = callCents is { } c ? [Calls(c)] : [] });
            var a = await PlanAsync("A", 1_000, 1);
            var b = await PlanAsync("B", 2_000, 2);
            var c = await PlanAsync("C", 3_000, 3);
            var lite = await PlanAsync("Lite", 500, null);
            var (clock, customer) = await h.ClockCustomerAsync(January.Start);
            var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, a.Id));
            return new Fixture(h, metering, clock.Id, customer.Id, subscription.Id, a, b, c, lite);
        }

        public Task<Billing.Ports.TestClock> AdvanceAsync(DateTimeOffset to) => H.Engine.AdvanceTestClockAsync(Clock, to);

        public Task<Subscription> ChangeAsync(Plan plan) =>
            H.Engine.ChangeSubscriptionAsync(Subscription, new SubscriptionChange { PlanId = plan.Id, ProrationBehavior = ProrationBehavior.None });

        public async Task<UsageIngestResult> CallAsync(string key, long quantity, DateTimeOffset at) =>
            await Metering.RecordAsync(new UsageEventInput { CustomerId = Customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key });
    }
}
