using Billing.Ports;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Billing.Redis;

/// <summary>Registers the Redis usage counters on a <see cref="BillingBuilder"/>.</summary>
public static class RedisBillingBuilderExtensions
{
    /// <summary>
    /// Keeps usage counters in Redis: <c>.AddRedisUsageCounters(o =&gt; o.ConfigurationString = "redis:6379,abortConnect=false")</c>.
    /// Replaces any <see cref="IUsageCounter"/> registered before (the in-memory default).
    /// </summary>
    /// <remarks>
    /// Registers <see cref="RedisUsageCounter"/> (as itself and as <see cref="IUsageCounter"/>) and its
    /// <see cref="RedisUsageCounterConnection"/>, singletons. The connection is made on the first counter call with
    /// <c>ConnectionMultiplexer.ConnectAsync</c>, not at registration or resolution, and closed when the container is
    /// disposed. <see cref="RedisUsageCounterOptions"/> are validated when the host starts; invalid options stop the
    /// start with messages naming each option. Calling this again replaces the counter and adds to the configuration.
    /// </remarks>
    /// <param name="builder">The billing builder.</param>
    /// <param name="configure">Sets the options (at least <see cref="RedisUsageCounterOptions.ConfigurationString"/>).</param>
    /// <returns>The builder.</returns>
    public static BillingBuilder AddRedisUsageCounters(this BillingBuilder builder, Action<RedisUsageCounterOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var services = builder.Services;
        services.AddOptions<RedisUsageCounterOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisUsageCounterOptions>, RedisUsageCounterOptionsValidator>());
        services.TryAddSingleton(sp => new RedisUsageCounterConnection(sp.GetRequiredService<IOptions<RedisUsageCounterOptions>>().Value));
        services.Replace(ServiceDescriptor.Singleton(sp => new RedisUsageCounter(
            sp.GetRequiredService<RedisUsageCounterConnection>(),
            sp.GetRequiredService<IOptions<RedisUsageCounterOptions>>().Value)));
        services.Replace(ServiceDescriptor.Singleton<IUsageCounter>(sp => sp.GetRequiredService<RedisUsageCounter>()));
        return builder;
    }
}
