using Billing.Payments;
using Billing.Testing.Payments;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.Testing;

/// <summary>Registers the test doubles of <c>Billing.Testing</c> on a <see cref="BillingBuilder"/>.</summary>
public static class BillingTestingBuilderExtensions
{
    /// <summary>Uses the fake payment gateway (Stripe-like test tokens such as <c>pm_card_visa</c>).</summary>
    /// <param name="builder">The billing builder.</param>
    /// <param name="gateway">A gateway to share with the test (to program failures and inspect calls), or null for a new one.</param>
    /// <returns>The builder.</returns>
    /// <remarks>Replaces any gateway registered before.</remarks>
    public static BillingBuilder AddFakePaymentGateway(this BillingBuilder builder, FakePaymentGateway? gateway = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var instance = gateway ?? new FakePaymentGateway();
        builder.Services.Replace(ServiceDescriptor.Singleton(instance));
        builder.Services.Replace(ServiceDescriptor.Singleton<IPaymentGateway>(instance));
        return builder;
    }
}
