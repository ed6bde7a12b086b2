using Billing.Catalog;
using Billing.Customers;
using Billing.Engine;
using Billing.Events;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.InMemory;
using Billing.Testing.Payments;
using Billing.Testing.Time;
using Microsoft.Extensions.Options;

namespace Billing.Tests.Engine;

/// <summary>An engine on the in-memory store and the fake gateway; tests run on test clocks.</summary>
internal sealed class EngineHarness
{
    public EngineHarness(Action<BillingOptions>? configure = null, IUsageChargeSource? usage = null)
    {
        var options = new BillingOptions();
        configure?.Invoke(options);
        Engine = new BillingEngine(Store, Gateway, Time, Options.Create(options), new RandomIdGenerator(), usage ?? new NoUsageCharges());
    }

    public InMemoryBillingStore Store { get; } = new();

    public FakePaymentGateway Gateway { get; } = new();

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public BillingEngine Engine { get; }

    public static DateTimeOffset Utc(int y, int mo, int d, int h = 0, int mi = 0) => new(y, mo, d, h, mi, 0, TimeSpan.Zero);

    public static Billing.Money Usd(long minor) => new(minor, Currency.USD);

    public Task<Plan> MonthlyPlanAsync(long amount, string name = "Pro", int trialDays = 0) =>
        Engine.CreatePlanAsync(new NewPlan(name, new FlatPrice(Usd(amount)), BillingInterval.Monthly) { TrialDays = trialDays });

    public async Task<(TestClock Clock, Customer Customer)> ClockCustomerAsync(DateTimeOffset start, string paymentMethod = FakePaymentGateway.Visa, string timeZone = "Etc/UTC")
    {
        var clock = await Engine.CreateTestClockAsync(start);
        var customer = await Engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = paymentMethod, TestClockId = clock.Id, TimeZoneId = timeZone });
        return (clock, customer);
    }

    public async Task<IReadOnlyList<BillingEvent>> EventsAsync()
    {
        await using var session = await Store.BeginAsync();
        return [.. (await session.Outbox.ReadAsync(0, 1_000_000)).Select(e => e.Event)];
    }

    public async Task<IReadOnlyList<Invoice>> InvoicesAsync(string subscriptionId) => await Engine.ListInvoicesAsync(subscriptionId);
}
