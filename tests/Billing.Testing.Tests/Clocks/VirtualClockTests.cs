using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing.Clocks;
using Billing.Testing.Payments;
using Billing.Testing.Time;
using Microsoft.Extensions.Options;

namespace Billing.Testing.Tests.Clocks;

public sealed class VirtualClockTests
{
    [Fact]
    public async Task A_year_on_a_virtual_clock_runs_every_renewal_for_its_customers_only()
    {
        var engine = new BillingEngine(new InMemoryBillingStore(), new FakePaymentGateway(), new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero)), Options.Create(new BillingOptions()), new RandomIdGenerator(), new NoUsageCharges());
        var plan = await engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(new Money(1200, Currency.EUR)), BillingInterval.Monthly));
        var start = new DateTimeOffset(2025, 3, 15, 8, 0, 0, TimeSpan.Zero);
        var clock = await VirtualClock.StartAsync(engine, start);
        var other = await VirtualClock.StartAsync(engine, start);
        var mine = await engine.CreateSubscriptionAsync(new NewSubscription((await clock.CreateCustomerAsync(new NewCustomer("A", "a@example.com", Currency.EUR) { PaymentMethod = FakePaymentGateway.Visa })).Id, plan.Id));
        var theirs = await engine.CreateSubscriptionAsync(new NewSubscription((await other.CreateCustomerAsync(new NewCustomer("B", "b@example.com", Currency.EUR) { PaymentMethod = FakePaymentGateway.Visa })).Id, plan.Id));

        await clock.AdvanceAsync(TimeSpan.FromDays(366));

        Assert.Equal(start.AddDays(366), clock.Now);
        var invoices = await engine.ListInvoicesAsync(mine.Id);
        Assert.Equal(13, invoices.Count);
        Assert.All(invoices, i => Assert.Equal(InvoiceStatus.Paid, i.Status));
        Assert.Single(await engine.ListInvoicesAsync(theirs.Id)); // the other clock did not move
        await Assert.ThrowsAsync<BillingValidationException>(() => clock.AdvanceAsync(start));
    }
}
