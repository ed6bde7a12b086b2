using Billing.Engine;
using Billing.InMemory;
using Billing.Ports;
using Billing.Testing;
using Billing.Testing.Payments;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Billing.Tests.DependencyInjection;

public sealed class AddBillingTests
{
    [Fact]
    public void Registers_the_system_clock_and_options_and_returns_a_builder_on_the_same_services()
    {
        var services = new ServiceCollection();

        var builder = services.AddBilling(o => o.DefaultTimeZoneId = "Europe/Berlin");

        Assert.Same(services, builder.Services);
        using var provider = services.BuildServiceProvider();
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
        Assert.Equal("Europe/Berlin", provider.GetRequiredService<IOptions<BillingOptions>>().Value.DefaultTimeZoneId);
        provider.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public void Registers_in_memory_metering_by_default_and_validates_metering_options_at_start()
    {
        var services = new ServiceCollection();
        services.AddSingleton<Billing.Payments.IPaymentGateway>(new FakePaymentGateway());
        services.AddBilling().ConfigureMetering(o => o.LateEventGrace = TimeSpan.FromHours(2));
        using (var provider = services.BuildServiceProvider())
        {
            Assert.IsType<InMemoryUsageCounter>(provider.GetRequiredService<IUsageCounter>());
            Assert.IsType<InMemoryUsageEventStore>(provider.GetRequiredService<IUsageEventStore>());
            Assert.IsType<Billing.Usage.MeteredUsageCharges>(provider.GetRequiredService<IUsageChargeSource>());
            Assert.Same(provider.GetRequiredService<Billing.Usage.UsageMeteringService>(), provider.GetRequiredService<Billing.Usage.UsageMeteringService>());
            Assert.Equal(TimeSpan.FromHours(2), provider.GetRequiredService<IOptions<Billing.Usage.MeteringOptions>>().Value.LateEventGrace);
            provider.GetRequiredService<IStartupValidator>().Validate();
        }

        var bad = new ServiceCollection();
        bad.AddBilling().ConfigureMetering(o => o.MaxBatchSize = 0);
        using var failing = bad.BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => failing.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("MaxBatchSize", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_clock_registered_first_wins()
    {
        var services = new ServiceCollection();
        var clock = new FixedClock();
        services.AddSingleton<TimeProvider>(clock);

        services.AddBilling();

        using var provider = services.BuildServiceProvider();
        Assert.Same(clock, provider.GetRequiredService<TimeProvider>());
    }

    [Fact]
    public void Invalid_options_fail_at_start_with_messages_naming_each_option()
    {
        var services = new ServiceCollection();
        services.AddBilling(o =>
        {
            o.DefaultTimeZoneId = "Mars/Olympus_Mons";
            o.ProrationRounding = (RoundingMode)17;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains("BillingOptions.DefaultTimeZoneId 'Mars/Olympus_Mons'", error.Message, StringComparison.Ordinal);
        Assert.Contains("BillingOptions.ProrationRounding", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Calling_it_twice_registers_the_validator_once()
    {
        var services = new ServiceCollection();
        services.AddBilling();
        services.AddBilling();

        Assert.Single(services, d => d.ServiceType == typeof(IValidateOptions<BillingOptions>));
        Assert.Single(services, d => d.ServiceType == typeof(TimeProvider));
    }

    [Fact]
    public async Task The_engine_resolves_on_in_memory_defaults_and_bills_through_the_registered_gateway()
    {
        var services = new ServiceCollection();
        var gateway = new FakePaymentGateway();
        services.AddBilling().AddFakePaymentGateway(gateway);
        await using var provider = services.BuildServiceProvider();

        var engine = provider.GetRequiredService<BillingEngine>();
        var plan = await engine.CreatePlanAsync(new NewPlan("Solo", new Billing.Pricing.FlatPrice(new Money(500, Currency.EUR)), Billing.Periods.BillingInterval.Monthly));
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Li", "li@example.com", Currency.EUR) { PaymentMethod = FakePaymentGateway.Visa });
        var subscription = await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));

        Assert.IsType<InMemoryBillingStore>(provider.GetRequiredService<IBillingStore>());
        Assert.Equal(Billing.Subscriptions.SubscriptionStatus.Active, subscription.Status);
        Assert.Equal(new Money(500, Currency.EUR), Assert.Single(gateway.Charges).Amount);
    }

    [Fact]
    public void An_adapter_registered_first_replaces_the_in_memory_store()
    {
        var services = new ServiceCollection();
        var store = new InMemoryBillingStore();
        services.AddSingleton<IBillingStore>(store);

        services.AddBilling();

        Assert.Single(services, d => d.ServiceType == typeof(IBillingStore));
        using var provider = services.BuildServiceProvider();
        Assert.Same(store, provider.GetRequiredService<IBillingStore>());
    }

    private sealed class FixedClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    }
}
