using Billing;
using Billing.Engine;
using Billing.InMemory;
using Billing.Ports;
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
    /// in-memory store (<see cref="InMemoryBillingStore"/>), random ids and no usage charges. A payment gateway
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
        services.TryAddSingleton<IUsageChargeSource, NoUsageCharges>();
        services.TryAddSingleton<BillingEngine>();
        return new BillingBuilder(services);
    }
}
