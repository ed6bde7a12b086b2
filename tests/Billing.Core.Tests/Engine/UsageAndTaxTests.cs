using Billing.Engine;
using Billing.Invoices;
using Billing.Testing.Payments;
using Billing.Testing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

public sealed class UsageAndTaxTests
{
    [Fact]
    public async Task A_renewal_bills_the_ended_periods_usage_with_tax_rounded_once()
    {
        var usage = new InMemoryUsageCharges();
        var h = new EngineHarness(usage: usage);
        var plan = await h.MonthlyPlanAsync(2000);
        var clock = await h.Engine.CreateTestClockAsync(Utc(2025, 3, 1));
        var customer = await h.Engine.CreateCustomerAsync(new NewCustomer("Tax", "tax@example.com", Currency.USD)
        {
            PaymentMethod = FakePaymentGateway.Visa,
            TestClockId = clock.Id,
            TaxRates = [new TaxRate("State", 40_000), new TaxRate("County", 48_750)],
        });
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        usage.Record(subscription.Id, Utc(2025, 3, 1), "API calls", 12_345, Usd(1234));
        usage.Record(subscription.Id, Utc(2025, 3, 1), "Storage GB", 7, Usd(333));

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 4, 1, 2));

        var renewal = (await h.InvoicesAsync(subscription.Id))[1];
        // subtotal = 20.00 + 12.34 + 3.33 = 35.67; tax = round(35.67 × 8.875 %) = round(3.1657…) = 3.17 once,
        // split 40,000 : 48,750 → 1.43 and 1.74 (1.4288… and 1.7411…); total 38.84
        Assert.Equal(Usd(3567), renewal.Subtotal);
        Assert.Equal(Usd(317), renewal.Tax);
        Assert.Equal([Usd(143), Usd(174)], renewal.Lines.Where(l => l.Kind == InvoiceLineKind.Tax).Select(l => l.Amount));
        Assert.Equal(Usd(3884), renewal.Total);
        Assert.Equal(Usd(3884), renewal.AmountPaid);
        var usageLines = renewal.Lines.Where(l => l.Kind == InvoiceLineKind.Usage).ToArray();
        Assert.Equal([12_345L, 7L], usageLines.Select(l => l.Quantity));
        Assert.All(usageLines, l => Assert.Equal(new Billing.Periods.BillingPeriod(Utc(2025, 3, 1), Utc(2025, 4, 1)), l.Period));
    }

    [Fact]
    public async Task The_upcoming_invoice_preview_matches_the_invoice_that_follows_and_stores_nothing()
    {
        var usage = new InMemoryUsageCharges();
        var h = new EngineHarness(usage: usage);
        var basic = await h.MonthlyPlanAsync(2000, "Basic");
        var pro = await h.MonthlyPlanAsync(4500, "Pro");
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 3, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, basic.Id));
        await h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { PlanId = pro.Id, AtPeriodEnd = true });
        usage.Record(subscription.Id, Utc(2025, 3, 1), "API calls", 10, Usd(99));
        var events = (await h.EventsAsync()).Count;

        var preview = await h.Engine.PreviewUpcomingInvoiceAsync(subscription.Id);

        Assert.NotNull(preview);
        Assert.Equal(events, (await h.EventsAsync()).Count);
        Assert.Single(await h.InvoicesAsync(subscription.Id));
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 4, 1, 2));
        var renewal = (await h.InvoicesAsync(subscription.Id))[1];
        Assert.Equal(preview.Total, renewal.Total);
        Assert.Equal(preview.Lines.Select(l => (l.Kind, l.Amount)), renewal.Lines.Select(l => (l.Kind, l.Amount)));
        Assert.Equal(Usd(4500 + 99), renewal.Total);
    }
}
