using Billing;
using Billing.Engine;
using Billing.InMemory;
using Billing.Ports;
using Billing.Usage;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the billing engine in a service collection.</summary>
public static class BillingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the billing engine with its defaults and returns a builder for adapters to chain onto.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Optional configuration of <see cref="BillingOptions"/>.</param>
    /// <returns>The builder.</returns>
    /// <remarks>
    /// Defaults are added with <c>TryAdd</c>, so anything registered before (a test clock as
    /// <see cref="TimeProvider"/>, an adapter's store) wins: <see cref="TimeProvider.System"/> as the clock, the
    /// in-memory store (<see cref="InMemoryBillingStore"/>), random ids, in-memory usage counters and events
    /// (<see cref="InMemoryUsageCounter"/>, <see cref="InMemoryUsageEventStore"/>), usage lines priced from the durable
    /// events (<see cref="MeteredUsageCharges"/>) and <see cref="UsageMeteringService"/>. A payment gateway
    /// (<see cref="Billing.Payments.IPaymentGateway"/>) must be registered: a gateway adapter, or the fake one from
    /// <c>Billing.Testing</c>. <see cref="BillingEngine"/> is registered as a singleton.
    /// Options are validated when the host starts; invalid options stop the start with messages naming each option.
    /// Calling this more than once is harmless.
    /// </remarks>
    public static BillingBuilder AddBilling(this IServiceCollection services, Action<BillingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<BillingOptions>().ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BillingOptions>, BillingOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IBillingStore, InMemoryBillingStore>();
        services.TryAddSingleton<IBillingIdGenerator, RandomIdGenerator>();
        services.AddOptions<MeteringOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MeteringOptions>, MeteringOptionsValidator>());
        services.TryAddSingleton<IUsageCounter, InMemoryUsageCounter>();
        services.TryAddSingleton<IUsageEventStore, InMemoryUsageEventStore>();
        services.TryAddSingleton<IUsageChargeSource>(sp => new MeteredUsageCharges(sp.GetRequiredService<IUsageEventStore>(), sp.GetRequiredService<IOptions<MeteringOptions>>().Value));
        services.TryAddSingleton(sp => new UsageMeteringService(
            sp.GetRequiredService<IBillingStore>(), sp.GetRequiredService<IUsageCounter>(), sp.GetRequiredService<IUsageEventStore>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptions<MeteringOptions>>().Value));
        services.TryAddSingleton<BillingEngine>();
        return new BillingBuilder(services);
    }

    /// <summary>Configures usage ingestion (<see cref="MeteringOptions"/>); validated when the host starts.</summary>
    /// <param name="builder">The billing builder.</param>
    /// <param name="configure">Changes the options.</param>
    /// <returns>The builder.</returns>
    public static BillingBuilder ConfigureMetering(this BillingBuilder builder, Action<MeteringOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(configure);
        return builder;
    }

    private sealed class MeteringOptionsValidator : IValidateOptions<MeteringOptions>
    {
        public ValidateOptionsResult Validate(string? name, MeteringOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (BillingValidationException e)
            {
                return ValidateOptionsResult.Fail(e.Message);
            }
        }
    }
}
