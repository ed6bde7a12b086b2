using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Tests.Support;
using Billing.Tests.Usage;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

/// <summary>
/// A final invoice (at an immediate cancellation, a cancellation at period end, an immediate plan change) bills what no
/// renewal will: the pending lines (prorations of earlier changes), the stretch's usage, with the coupon and tax applied
/// as a renewal would, and clears the pending lines so nothing is billed twice. Expected amounts are computed by hand.
/// </summary>
/// <remarks>
/// April 2025 has 30 days: a change on 11 April (day 10) leaves 20/30 of the period, on 21 April 10/30. Basic: $30 a
/// month, API calls at 1¢. Pro: $60 a month, API calls at 2¢. Lite ($30) and Plus ($60) price no usage. Grace 24 h,
/// finalization delay 1 h.
/// </remarks>
public sealed class FinalInvoiceTests
{
    private static readonly DateTimeOffset Start = Utc(2025, 4, 1);
    private static readonly TaxRate Vat = new("VAT", 100_000);

    private readonly InMemoryUsageEventStore _events;
    private readonly EngineHarness _h;
    private readonly UsageMeteringService _metering;

    public FinalInvoiceTests() => (_h, _events, _metering) = MeteringHarness.Create();

    private static MeteredPrice Calls(string description, long cents) => UsagePrices.PerUnitApiCalls(cents, description);

    private Task<Plan> PlanAsync(string name, long cents, MeteredPrice? calls = null) =>
        _h.Engine.CreatePlanAsync(new NewPlan(name, new FlatPrice(Usd(cents)), BillingInterval.Monthly) { MeteredPrices = calls is null ? [] : [calls] });

    private async Task<(string Clock, string Customer)> CustomerAsync(bool taxed)
    {
        var clock = await _h.Engine.CreateTestClockAsync(Start);
        var customer = await _h.Engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD)
        {
            PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa,
            TestClockId = clock.Id,
            TaxRates = taxed ? [Vat] : null,
        });
        return (clock.Id, customer.Id);
    }

    private async Task<UsageIngestResult> CallAsync(string customer, string key, long quantity, DateTimeOffset at) =>
        await _metering.RecordAsync(new UsageEventInput { CustomerId = customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key });

    /// <summary>An immediate change to <paramref name="plan"/> whose prorations wait for the next invoice.</summary>
    private Task<Subscription> ChangeWithProrationsAsync(string subscriptionId, Plan plan) =>
        _h.Engine.ChangeSubscriptionAsync(subscriptionId, new SubscriptionChange { PlanId = plan.Id, ProrationBehavior = ProrationBehavior.CreateProrations });

    /// <summary>A taxed customer subscribed to Lite on 1 April and changed to Plus with prorations on 11 April (the clock's now).</summary>
    private async Task<(Plan Lite, string Clock, string Customer, Subscription Subscription)> LiteChangedToPlusOnTheEleventhAsync()
    {
        var lite = await PlanAsync("Lite", 3_000);
        var plus = await PlanAsync("Plus", 6_000);
        var (clock, customer) = await CustomerAsync(taxed: true);
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, lite.Id));
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 11));
        return (lite, clock, customer, await ChangeWithProrationsAsync(subscription.Id, plus));
    }

    private static long[] Amounts(Invoice invoice) => [.. invoice.Lines.Select(l => l.Amount.MinorUnits)];

    [Fact]
    public async Task A_final_invoice_bills_pending_prorations_and_usage_with_the_coupon_and_tax_and_clears_what_it_bills()
    {
        var basic = await PlanAsync("Basic", 3_000, Calls("API calls", 1));
        var pro = await PlanAsync("Pro", 6_000, Calls("API calls (Pro)", 2));
        var (clock, customer) = await CustomerAsync(taxed: true);
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, basic.Id) { Coupon = Coupon.PercentOff("QUARTER", 250_000, CouponDuration.Forever) });
        var first = Assert.Single(await _h.InvoicesAsync(subscription.Id));
        Assert.Equal([3_000L, -750, 225], Amounts(first)); // 30.00 − 25 % = 22.50; VAT 10 % 2.25; 24.75

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 11));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 1_000, Utc(2025, 4, 5))).Status);
        await ChangeWithProrationsAsync(subscription.Id, pro);
        var atChange = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Reason == BillingReason.SubscriptionUpdate);
        // Basic's usage 1,000 × 1¢ = 10.00; −25 % = 7.50; VAT 0.75; 8.25. The change's prorations wait for the next invoice.
        Assert.Equal([1_000L, -250, 75], Amounts(atChange));
        Assert.Equal(Usd(825), atChange.Total);
        Assert.Equal([-2_000L, 4_000], (await _h.Engine.GetSubscriptionAsync(subscription.Id)).PendingLines.Select(l => l.Amount.MinorUnits));

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21));
        Assert.Equal(InvoiceStatus.Paid, (await _h.Engine.GetInvoiceAsync(atChange.Id)).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e2", 3_000, Utc(2025, 4, 15))).Status);
        var canceled = await _h.Engine.CancelSubscriptionAsync(subscription.Id);

        var final = await _h.Engine.GetInvoiceAsync(canceled.LatestInvoiceId!);
        Assert.Equal((InvoiceStatus.Draft, BillingReason.SubscriptionUpdate, new BillingPeriod(Utc(2025, 4, 11), Utc(2025, 4, 21)), Utc(2025, 4, 22, 1)), (final.Status, final.Reason, final.Period!.Value, final.NextActionAt!.Value));
        Assert.Equal(
            [InvoiceLineKind.ProrationCredit, InvoiceLineKind.ProrationDebit, InvoiceLineKind.Usage, InvoiceLineKind.Discount, InvoiceLineKind.Tax],
            final.Lines.Select(l => l.Kind));
        // −20.00 + 40.00 + Pro's usage 3,000 × 2¢ = 60.00 → 80.00; −25 % = 60.00; VAT 6.00; 66.00
        Assert.Equal([-2_000L, 4_000, 6_000, -2_000, 600], Amounts(final));
        Assert.Equal((Usd(8_000), Usd(-2_000), Usd(600), Usd(6_600)), (final.Subtotal, final.Discount, final.Tax, final.Total));
        Assert.Empty(canceled.PendingLines);
        Assert.NotNull(canceled.Discount); // a forever coupon stays

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21, 12));
        var late = await CallAsync(customer, "late", 500, Utc(2025, 4, 20));
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 4, 11)), (late.Status, late.Counter!.Value.PeriodStart));
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 22, 2));
        final = await _h.Engine.GetInvoiceAsync(final.Id);
        // The late event is priced at finalization, the discount and tax computed again: usage 3,500 × 2¢ = 70.00 →
        // 90.00; −25 % = 67.50; VAT 6.75; 74.25
        Assert.Equal(InvoiceStatus.Paid, final.Status);
        Assert.Equal([-2_000L, 4_000, 7_000, -2_250, 675], Amounts(final));
        Assert.Equal(Usd(7_425), final.AmountPaid);

        // Each proration line is billed once, on the final invoice.
        var invoices = await _h.InvoicesAsync(subscription.Id);
        Assert.Equal(3, invoices.Count);
        Assert.Equal([-2_000L, 4_000], invoices.SelectMany(i => i.Lines).Where(l => l.Proration is not null).Select(l => l.Amount.MinorUnits));
    }

    [Fact]
    public async Task A_final_invoice_with_pending_lines_and_no_usage_is_made_without_a_used_once_coupon_and_none_is_made_for_nothing()
    {
        var lite = await PlanAsync("Lite", 3_000);
        var plus = await PlanAsync("Plus", 6_000);
        var (clock, customer) = await CustomerAsync(taxed: true);
        var changed = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, lite.Id) { Coupon = Coupon.PercentOff("HALF", 500_000, CouponDuration.Once) });
        var untouched = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, lite.Id));
        var first = Assert.Single(await _h.InvoicesAsync(changed.Id));
        Assert.Equal([3_000L, -1_500, 150], Amounts(first)); // 30.00 − 50 % (once) = 15.00; VAT 1.50

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 11));
        await ChangeWithProrationsAsync(changed.Id, plus);
        Assert.Single(await _h.InvoicesAsync(changed.Id)); // no usage and nothing pending before the change: no invoice at it
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21));
        var canceled = await _h.Engine.CancelSubscriptionAsync(changed.Id);
        await _h.Engine.CancelSubscriptionAsync(untouched.Id);

        var final = await _h.Engine.GetInvoiceAsync(canceled.LatestInvoiceId!);
        // −20.00 + 40.00 = 20.00; the once coupon was used by the first invoice; VAT 2.00; 22.00
        Assert.Equal([-2_000L, 4_000, 200], Amounts(final));
        Assert.DoesNotContain(final.Lines, l => l.Kind is InvoiceLineKind.Usage or InvoiceLineKind.Discount or InvoiceLineKind.Plan);
        Assert.Equal((Usd(2_200), Utc(2025, 4, 21, 1)), (final.Total, final.NextActionAt!.Value)); // no usage to wait for: the delay only
        Assert.Empty(canceled.PendingLines);
        Assert.Single(await _h.InvoicesAsync(untouched.Id)); // nothing at all to bill: no final invoice

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21, 2));
        Assert.Equal((InvoiceStatus.Paid, Usd(2_200)), ((await _h.Engine.GetInvoiceAsync(final.Id)).Status, (await _h.Engine.GetInvoiceAsync(final.Id)).AmountPaid));
    }

    [Fact]
    public async Task A_cancellation_at_period_end_bills_the_pending_lines_on_its_final_invoice()
    {
        var (_, clock, _, subscription) = await LiteChangedToPlusOnTheEleventhAsync();
        await _h.Engine.CancelSubscriptionAsync(subscription.Id, atPeriodEnd: true);

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 5, 1, 2));
        var canceled = await _h.Engine.GetSubscriptionAsync(subscription.Id);
        Assert.Equal((SubscriptionStatus.Canceled, Utc(2025, 5, 1)), (canceled.Status, canceled.CanceledAt!.Value));
        var final = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Reason == BillingReason.SubscriptionCycle);
        Assert.Equal(canceled.LatestInvoiceId, final.Id);
        // −20.00 + 40.00 = 20.00; VAT 2.00; no plan line: nothing renews
        Assert.Equal([InvoiceLineKind.ProrationCredit, InvoiceLineKind.ProrationDebit, InvoiceLineKind.Tax], final.Lines.Select(l => l.Kind));
        Assert.Equal([-2_000L, 4_000, 200], Amounts(final));
        Assert.Equal((InvoiceStatus.Paid, Usd(2_200)), (final.Status, final.AmountPaid));
        Assert.Empty(canceled.PendingLines);
    }

    [Fact]
    public async Task An_immediate_plan_change_bills_the_earlier_pending_lines_and_the_renewal_bills_only_the_later_ones()
    {
        var basic = await PlanAsync("Basic", 3_000, Calls("API calls", 1));
        var pro = await PlanAsync("Pro", 6_000, Calls("API calls (Pro)", 2));
        var (clock, customer) = await CustomerAsync(taxed: false);
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, basic.Id) { Coupon = Coupon.PercentOff("TEN", 100_000, CouponDuration.Repeating, 2) });

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 11));
        await ChangeWithProrationsAsync(subscription.Id, pro);
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 1_000, Utc(2025, 4, 15))).Status);
        await ChangeWithProrationsAsync(subscription.Id, basic);

        var second = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Period == new BillingPeriod(Utc(2025, 4, 11), Utc(2025, 4, 21)));
        // The first change's −20.00 + 40.00, Pro's usage 1,000 × 2¢ = 20.00 → 40.00; −10 % = 36.00
        Assert.Equal([-2_000L, 4_000, 2_000, -400], Amounts(second));
        var after = await _h.Engine.GetSubscriptionAsync(subscription.Id);
        // Only the second change's prorations wait (10/30: −20.00 for Pro, +10.00 for Basic); the repeating coupon still
        // has its one period left (a final invoice bills no period).
        Assert.Equal([-2_000L, 1_000], after.PendingLines.Select(l => l.Amount.MinorUnits));
        Assert.Equal(1, after.Discount!.PeriodsRemaining);

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 6, 2, 2));
        var invoices = await _h.InvoicesAsync(subscription.Id);
        var may = Assert.Single(invoices, i => i.Period?.Start == Utc(2025, 5, 1));
        // Basic 30.00 − 20.00 + 10.00 + Basic's usage 0 = 20.00; −10 % = 18.00 (the coupon's last period)
        Assert.Equal([3_000L, -2_000, 1_000, 0, -200], Amounts(may));
        var june = Assert.Single(invoices, i => i.Period?.Start == Utc(2025, 6, 1));
        Assert.Equal(Usd(3_000), june.Total);
        Assert.Equal([-2_000L, 4_000, -2_000, 1_000], invoices.SelectMany(i => i.Lines).Where(l => l.Proration is not null).Select(l => l.Amount.MinorUnits));
    }

    [Fact]
    public async Task A_cancellation_at_the_instant_of_a_change_bills_that_changes_prorations_on_a_final_invoice_of_its_own()
    {
        var (lite, clock, customer, subscription) = await LiteChangedToPlusOnTheEleventhAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21));
        await ChangeWithProrationsAsync(subscription.Id, lite);
        var canceled = await _h.Engine.CancelSubscriptionAsync(subscription.Id);

        var finals = (await _h.InvoicesAsync(subscription.Id)).Where(i => i.Reason == BillingReason.SubscriptionUpdate).ToArray();
        Assert.Equal(2, finals.Length);
        Assert.Equal(2, finals.Select(i => i.DedupKey).Distinct().Count());
        // At the second change: the first change's −20.00 + 40.00 = 20.00; VAT 2.00
        var atChange = Assert.Single(finals, i => i.Total.IsPositive);
        Assert.Equal([-2_000L, 4_000, 200], Amounts(atChange));
        // At the cancellation: the second change's 10/30 of Plus −20.00 and of Lite +10.00 = −10.00; VAT −1.00
        var atCancel = Assert.Single(finals, i => i.Total.IsNegative);
        Assert.Equal([-2_000L, 1_000, -100], Amounts(atCancel));
        Assert.Equal(atCancel.Id, canceled.LatestInvoiceId);

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 21, 2));
        // The negative total is credited to the balance (and pays the other final invoice when that is finalized after it).
        atChange = await _h.Engine.GetInvoiceAsync(atChange.Id);
        Assert.Equal((InvoiceStatus.Paid, Usd(2_200)), (atChange.Status, atChange.CreditApplied + atChange.AmountPaid));
        Assert.Equal(Usd(1_100), (await _h.Engine.GetCustomerAsync(customer)).CreditBalance + atChange.CreditApplied);
    }

    [Fact]
    public async Task A_cancellation_at_the_instant_of_a_change_between_metered_plans_bills_that_changes_prorations_with_no_usage_span()
    {
        var basic = await PlanAsync("Basic", 3_000, Calls("API calls", 1));
        var pro = await PlanAsync("Pro", 6_000, Calls("API calls (Pro)", 2));
        var (clock, customer) = await CustomerAsync(taxed: false);
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, basic.Id));
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 11));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer, "e1", 500, Utc(2025, 4, 5))).Status);
        await ChangeWithProrationsAsync(subscription.Id, pro);

        // The change started Pro's usage span at this instant, so the cancellation's span is empty: its final invoice
        // bills the change's prorations (20/30 of Basic −20.00, of Pro +40.00) and no usage, and has no usage period.
        var canceled = await _h.Engine.CancelSubscriptionAsync(subscription.Id);
        Assert.Empty(canceled.PendingLines);
        var finals = (await _h.InvoicesAsync(subscription.Id)).Where(i => i.Reason == BillingReason.SubscriptionUpdate).ToArray();
        Assert.Equal(2, finals.Length);
        Assert.Equal([500L], Amounts(Assert.Single(finals, i => i.Id != canceled.LatestInvoiceId))); // Basic's 500 calls
        var atCancel = Assert.Single(finals, i => i.Id == canceled.LatestInvoiceId);
        Assert.Equal([-2_000L, 4_000], Amounts(atCancel));
        Assert.Null(atCancel.Period);

        // A late event of the canceled stretch is not billed on it; the invoice is finalized after the delay.
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 11, 2));
        atCancel = await _h.Engine.GetInvoiceAsync(atCancel.Id);
        Assert.NotEqual(InvoiceStatus.Draft, atCancel.Status);
        Assert.Equal(Usd(2_000), atCancel.Total);
    }

    /// <summary>
    /// A generated April: immediate changes (day, plan offset, quantity) and how the subscription ends (0 canceled on
    /// 30 April, 1 canceled at period end, 2 renewed, 3 canceled at the instant of the last change).
    /// </summary>
    public sealed record Changes((int Day, int PlanStep, int Quantity)[] Steps, int Ending);

    [Fact]
    public void For_any_changes_and_any_ending_every_proration_is_billed_exactly_once_and_nothing_stays_pending()
    {
        var scenarios =
            from count in Gen.Choose(0, 4)
            from days in Gen.ArrayOf(Gen.Choose(2, 29), count)
            from steps in Gen.ArrayOf(Gen.Choose(1, 2), count)
            from quantities in Gen.ArrayOf(Gen.Choose(1, 3), count)
            from ending in Gen.Choose(0, 3)
            select new Changes([.. days.Distinct().Order().Select((d, i) => (d, steps[i], quantities[i]))], ending);
        Props.ForAll(scenarios, c => CheckProrationsAsync(c).GetAwaiter().GetResult(), maxTest: 60);
    }

    private static async Task CheckProrationsAsync(Changes scenario)
    {
        var t = new FinalInvoiceTests();
        Plan[] plans = [await t.PlanAsync("Basic", 3_000, Calls("API calls", 1)), await t.PlanAsync("Pro", 6_000, Calls("API calls (Pro)", 2)), await t.PlanAsync("Lite", 9_000)];
        var (clock, customer) = await t.CustomerAsync(taxed: true);
        var subscription = await t._h.Engine.CreateSubscriptionAsync(new NewSubscription(customer, plans[0].Id) { Coupon = Coupon.PercentOff("TEN", 100_000, CouponDuration.Forever) });
        var expected = new List<long>();
        var index = 0;
        foreach (var (day, step, quantity) in scenario.Steps)
        {
            await t._h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, day));
            await t.CallAsync(customer, $"d{day}", 100 * day, Utc(2025, 4, day));
            index = (index + step) % plans.Length;
            var change = new SubscriptionChange { PlanId = plans[index].Id, Quantity = quantity, ProrationBehavior = ProrationBehavior.CreateProrations };
            var preview = await t._h.Engine.PreviewChangeAsync(subscription.Id, change);
            expected.AddRange(new[] { preview.Credit?.Amount, preview.Debit?.Amount }.Where(a => a is { IsZero: false }).Select(a => a!.Value.MinorUnits));
            await t._h.Engine.ChangeSubscriptionAsync(subscription.Id, change);
        }

        if (scenario.Ending == 3)
        {
            // At the instant of the last change (with no change: at the start).
            await t._h.Engine.CancelSubscriptionAsync(subscription.Id);
        }

        await t._h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 4, 30));
        if (scenario.Ending < 2)
        {
            await t._h.Engine.CancelSubscriptionAsync(subscription.Id, atPeriodEnd: scenario.Ending == 1);
        }

        await t._h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 5, 3));
        var invoices = await t._h.InvoicesAsync(subscription.Id);
        var billed = invoices.SelectMany(i => i.Lines).Where(l => l.Kind is InvoiceLineKind.ProrationCredit or InvoiceLineKind.ProrationDebit).Select(l => l.Amount.MinorUnits);
        if (scenario.Ending == 3)
        {
            // Each once; the change's and the cancellation's final invoices share an instant, so they list in either order.
            Assert.Equal(expected.Order(), billed.Order());
        }
        else
        {
            Assert.Equal(expected, billed); // each once, in the order the changes made them
        }
        Assert.Empty((await t._h.Engine.GetSubscriptionAsync(subscription.Id)).PendingLines);
        Assert.All(invoices, i => Assert.NotEqual(InvoiceStatus.Draft, i.Status));
        Assert.All(invoices, i => Assert.Equal(i.Total.MinorUnits, i.Lines.Sum(l => l.Amount.MinorUnits)));
    }
}
