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

    private sealed class FixedClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    }
}
