using Billing;
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
    /// <see cref="TimeProvider"/>, an adapter's store) wins. <see cref="TimeProvider.System"/> is the default clock.
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
        return new BillingBuilder(services);
    }
}
