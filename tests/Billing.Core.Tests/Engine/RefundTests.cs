using Billing.Engine;
using Billing.Payments;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

public sealed class RefundTests
{
    [Fact]
    public async Task Partial_then_full_refunds_never_exceed_what_was_paid()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(5000);
        var (_, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        var payment = Assert.Single(await h.Engine.ListPaymentsAsync(subscription.LatestInvoiceId!));

        var (partly, first) = await h.Engine.RefundPaymentAsync(payment.Id, Usd(1200));
        var (fully, second) = await h.Engine.RefundPaymentAsync(payment.Id);

        Assert.True(first.Succeeded);
        Assert.True(second.Succeeded);
        Assert.Equal(Usd(1200), partly.AmountRefunded);
        Assert.Equal(Usd(5000), fully.AmountRefunded);
        Assert.Equal(2, fully.RefundCount);
        Assert.Equal(Usd(0), h.Gateway.TotalCaptured(Currency.USD));
        var tooMuch = await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.RefundPaymentAsync(payment.Id, Usd(1)));
        Assert.Equal("amount", tooMuch.Field);
        Assert.Equal(2, (await h.EventsAsync()).Count(e => e.Type == "payment.refunded"));
    }

    [Fact]
    public async Task Only_succeeded_payments_can_be_refunded()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(5000);
        var (_, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1), Billing.Testing.Payments.FakePaymentGateway.ChargeDeclined);
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        var failed = Assert.Single(await h.Engine.ListPaymentsAsync(subscription.LatestInvoiceId!));

        Assert.Equal(PaymentStatus.Failed, failed.Status);
        await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.RefundPaymentAsync(failed.Id));
        await Assert.ThrowsAsync<BillingNotFoundException>(() => h.Engine.RefundPaymentAsync("pay_missing"));
    }
}
