using Billing.Engine;
using Billing.Invoices;
using Billing.Testing.Payments;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

public sealed class BillingRunTests
{
    [Fact]
    public async Task Running_twice_for_the_same_instant_creates_nothing_new()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(1500);
        h.Time.SetUtcNow(Utc(2025, 3, 1));
        var customer = await h.Engine.CreateCustomerAsync(new NewCustomer("Bo", "bo@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa });
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));

        var first = await h.Engine.AdvanceAsync(Utc(2025, 6, 2));
        var eventsAfterFirst = (await h.EventsAsync()).Count;
        var second = await h.Engine.AdvanceAsync(Utc(2025, 6, 2));

        Assert.Equal(3, first.InvoicesCreated); // April, May, June renewals
        Assert.Equal(3, first.PaymentsAttempted);
        Assert.Equal(new BillingRunResult(0, 0, 0, 0, 0), second);
        Assert.Equal(eventsAfterFirst, (await h.EventsAsync()).Count);
        Assert.Equal(4, (await h.InvoicesAsync(subscription.Id)).Count);
        Assert.Equal(4, h.Gateway.Charges.Count);
    }

    [Fact]
    public async Task Concurrent_runs_do_each_step_exactly_once()
    {
        var h = new EngineHarness(o => o.RunBatchSize = 25);
        var plan = await h.MonthlyPlanAsync(1500);
        h.Time.SetUtcNow(Utc(2025, 1, 15));
        var ids = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            var customer = await h.Engine.CreateCustomerAsync(new NewCustomer($"C{i}", $"c{i}@example.com", Currency.USD) { PaymentMethod = i % 10 == 0 ? FakePaymentGateway.ChargeDeclined : FakePaymentGateway.Visa });
            ids.Add((await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id))).Id);
        }

        var until = Utc(2025, 5, 20);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => h.Engine.AdvanceAsync(until))));
        await h.Engine.AdvanceAsync(until); // and once more afterwards: nothing left

        var invoices = (await Task.WhenAll(ids.Select(id => h.InvoicesAsync(id)))).SelectMany(x => x).ToArray();
        // 54 paying subscriptions: 1 first invoice + renewals 15 Feb, 15 Mar, 15 Apr, 15 May.
        // 6 declining ones stay incomplete after their first invoice fails: no renewals.
        Assert.Equal((54 * 5) + 6, invoices.Length);
        Assert.Equal(invoices.Length, invoices.Select(i => i.DedupKey).Distinct().Count());
        Assert.Equal(invoices.Length, invoices.Select(i => i.Number).Distinct().Count());
        Assert.Equal(Enumerable.Range(1, invoices.Length).Select(n => $"INV-{n:D6}").Order(), invoices.Select(i => i.Number).Order());
        Assert.Equal(54 * 4, results.Sum(r => r.InvoicesCreated));
        Assert.Equal(h.Gateway.Calls.Count, h.Gateway.Charges.Count); // no idempotency key was ever sent twice
        Assert.Equal(54 * 5, h.Gateway.Charges.Count(c => c.Result.IsSuccess));
        Assert.All(invoices.Where(i => i.Reason == BillingReason.SubscriptionCycle), i => Assert.Equal(InvoiceStatus.Paid, i.Status));
    }

    [Fact]
    public async Task Many_test_clocks_advance_independently_in_parallel()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(990);
        var clocks = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1 + i));
            var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
            return (clock, subscription, months: i + 1);
        }));

        await Task.WhenAll(clocks.Select(c => h.Engine.AdvanceTestClockAsync(c.clock.Id, c.clock.FrozenTime.AddMonths(c.months).AddHours(2))));

        foreach (var (clock, subscription, months) in clocks)
        {
            Assert.Equal(months + 1, (await h.InvoicesAsync(subscription.Id)).Count);
            Assert.Equal(clock.FrozenTime.AddMonths(months).AddHours(2), (await h.Engine.GetTestClockAsync(clock.Id)).FrozenTime);
        }
    }
}
