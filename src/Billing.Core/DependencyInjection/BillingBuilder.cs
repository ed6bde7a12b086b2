using Microsoft.Extensions.DependencyInjection;

namespace Billing;

/// <summary>
/// Returned by <c>AddBilling()</c>; adapter packages chain their registrations onto it
/// (<c>.AddEntityFrameworkCore(...)</c>, <c>.AddRedisUsageCounters(...)</c>).
/// </summary>
public sealed class BillingBuilder
{
    internal BillingBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection the engine is registered in.</summary>
    public IServiceCollection Services { get; }
}
