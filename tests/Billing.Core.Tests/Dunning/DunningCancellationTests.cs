using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using Billing.Tests.Engine;
using Billing.Tests.Usage;
using Billing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Dunning;

/// <summary>
/// When dunning runs out and the policy cancels the subscription, the stretch up to the cancellation is billed on a
/// final invoice as an immediate cancellation by hand bills it: a draft until the usage closes (late events within the
/// grace are priced), then finalized and charged.
/// </summary>
/// <remarks>
/// Basic: $30 a month, API calls at 1¢; grace 24 h, finalization delay 1 h; the default dunning policy (retries 1, 3, 5
/// and 7 days after the first failure, then cancel). The May renewal is created on 1 May, finalized and first charged
/// on 2 May 01:00 (its April usage closes after 24 h, then 1 h), retried on 3, 5, 7 and 9 May at 01:00.
/// </remarks>
public sealed class DunningCancellationTests
{
    private readonly InMemoryUsageEventStore _events;
    private readonly EngineHarness _h;
    private readonly UsageMeteringService _metering;

    public DunningCancellationTests() => (_h, _events, _metering) = MeteringHarness.Create();

    private async Task<UsageIngestResult> CallAsync(string customer, string key, long quantity, DateTimeOffset at) =>
        await _metering.RecordAsync(new UsageEventInput { CustomerId = customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key });

    [Fact]
    public async Task A_cancellation_by_dunning_bills_the_usage_up_to_it_on_a_final_invoice_that_takes_late_events_and_is_charged()
    {
        var basic = await _h.Engine.CreatePlanAsync(new NewPlan("Basic", new FlatPrice(Usd(3_000)), BillingInterval.Monthly)
        {
            MeteredPrices = [UsagePrices.PerUnitApiCalls(1)],
        });
        var (clock, customer) = await _h.ClockCustomerAsync(Utc(2025, 4, 1));
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, basic.Id));
        _h.Gateway.FailTimes(FakePaymentGateway.Visa, 5); // the renewal's first charge and its four retries

        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 4));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer.Id, "e1", 700, Utc(2025, 5, 3))).Status);
        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 8));
        Assert.Equal(UsageIngestStatus.Accepted, (await CallAsync(customer.Id, "e2", 300, Utc(2025, 5, 7))).Status);
        Assert.Equal(SubscriptionStatus.PastDue, (await _h.Engine.GetSubscriptionAsync(subscription.Id)).Status);

        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 9, 1));
        var canceled = await _h.Engine.GetSubscriptionAsync(subscription.Id);
        Assert.Equal((SubscriptionStatus.Canceled, Utc(2025, 5, 9, 1)), (canceled.Status, canceled.CanceledAt!.Value));
        var renewal = Assert.Single(await _h.InvoicesAsync(subscription.Id), i => i.Period == new BillingPeriod(Utc(2025, 5, 1), Utc(2025, 6, 1)));
        Assert.Equal((InvoiceStatus.Uncollectible, 5), (renewal.Status, renewal.PaymentAttempts));

        var final = await _h.Engine.GetInvoiceAsync(canceled.LatestInvoiceId!);
        Assert.NotEqual(renewal.Id, final.Id);
        Assert.Equal((InvoiceStatus.Draft, BillingReason.SubscriptionUpdate), (final.Status, final.Reason));
        Assert.Equal((new BillingPeriod(Utc(2025, 5, 1), Utc(2025, 5, 9, 1)), Utc(2025, 5, 10, 2)), (final.Period!.Value, final.NextActionAt!.Value));
        var usage = Assert.Single(final.Lines);
        Assert.Equal((InvoiceLineKind.Usage, 1_000L, Usd(1_000)), (usage.Kind, usage.Quantity, usage.Amount)); // 1,000 × 1¢

        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 9, 12));
        var late = await CallAsync(customer.Id, "late", 200, Utc(2025, 5, 9, 0, 30)); // before the cancellation, within the grace
        Assert.Equal((UsageIngestStatus.Accepted, Utc(2025, 5, 1)), (late.Status, late.Counter!.Value.PeriodStart));
        Assert.Equal("no_subscription_for_meter", (await CallAsync(customer.Id, "after", 5, Utc(2025, 5, 9, 2))).Reason);

        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 10, 3));
        final = await _h.Engine.GetInvoiceAsync(final.Id);
        Assert.Equal((InvoiceStatus.Paid, 1_200L, Usd(1_200)), (final.Status, Assert.Single(final.Lines).Quantity, final.AmountPaid)); // 1,200 × 1¢
        Assert.Single(await _h.Engine.ListPaymentsAsync(final.Id));
        Assert.Equal(3, (await _h.InvoicesAsync(subscription.Id)).Count);
    }

    [Fact]
    public async Task A_cancellation_by_dunning_with_nothing_to_bill_makes_no_final_invoice()
    {
        var plan = await _h.MonthlyPlanAsync(3_000);
        var (clock, customer) = await _h.ClockCustomerAsync(Utc(2025, 4, 1));
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        _h.Gateway.FailTimes(FakePaymentGateway.Visa, 5);

        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 5, 12));

        var canceled = await _h.Engine.GetSubscriptionAsync(subscription.Id);
        Assert.Equal(SubscriptionStatus.Canceled, canceled.Status);
        var invoices = await _h.InvoicesAsync(subscription.Id);
        Assert.Equal(2, invoices.Count); // the first invoice and the May renewal
        Assert.Equal(invoices[1].Id, canceled.LatestInvoiceId);
    }
}
