using Billing.Catalog;
using Billing.Pricing;
using Billing.Usage;

namespace Billing.Tests.Usage;

/// <summary>Metered prices the usage tests share.</summary>
internal static class UsagePrices
{
    /// <summary>The meter <c>api_calls</c> (sum), graduated: the first 1,000 free, then 2¢ up to 5,000, then 1¢.</summary>
    public static MeteredPrice GraduatedApiCalls => new()
    {
        Meter = new Meter { Key = "api_calls" },
        Description = "API calls",
        Price = new GraduatedPrice(Currency.USD, [PriceTier.Until(1_000, 0), PriceTier.Until(5_000, 2), PriceTier.Unbounded(1)]),
    };

    /// <summary>The meter <c>api_calls</c> (sum) at <paramref name="cents"/> USD cents per call.</summary>
    public static MeteredPrice PerUnitApiCalls(long cents, string? description = "API calls") => new()
    {
        Meter = new Meter { Key = "api_calls" },
        Description = description,
        Price = new PerUnitPrice(new Money(cents, Currency.USD)),
    };
}
