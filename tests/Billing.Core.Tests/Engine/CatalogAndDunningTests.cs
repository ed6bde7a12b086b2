using Billing.Engine;
using Billing.Invoices;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

public sealed class CatalogAndDunningTests
{
    [Fact]
    public async Task A_manual_payment_with_a_new_card_resolves_dunning()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(2500);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await h.Engine.UpdateCustomerAsync(customer.Id, paymentMethod: FakePaymentGateway.ChargeDeclinedInsufficientFunds);
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 2, 1, 2));
        var invoice = (await h.InvoicesAsync(subscription.Id))[1];
        Assert.Equal(SubscriptionStatus.PastDue, (await h.Engine.GetSubscriptionAsync(subscription.Id)).Status);

        var paid = await h.Engine.PayInvoiceAsync(invoice.Id, FakePaymentGateway.Mastercard);

        Assert.Equal(InvoiceStatus.Paid, paid.Status);
        Assert.Null(paid.NextActionAt);
        Assert.True(paid.Dunning.Resolved);
        Assert.Equal(SubscriptionStatus.Active, (await h.Engine.GetSubscriptionAsync(subscription.Id)).Status);
        Assert.Contains(await h.EventsAsync(), e => e.Type == "dunning.resolved" && e.ObjectId == invoice.Id);
        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 2, 10));
        Assert.Equal(2, h.Gateway.Calls.Count(c => c.InvoiceId == invoice.Id)); // no retry after resolution
    }

    [Fact]
    public async Task A_repeating_coupon_applies_to_exactly_its_number_of_periods()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(4000);
        var (clock, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id) { Coupon = Coupon.PercentOff("QUARTER", 250_000, CouponDuration.Repeating, 3) });

        await h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 6, 1, 2));

        // 25 % off 40.00 = 10.00 for three invoices, then full price.
        Assert.Equal([3000L, 3000, 3000, 4000, 4000, 4000], (await h.InvoicesAsync(subscription.Id)).Select(i => i.Total.MinorUnits));
    }

    [Fact]
    public async Task Plans_change_only_name_description_and_metadata_and_archived_plans_take_no_new_subscriptions()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(4000);
        var (_, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var existing = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));

        var renamed = await h.Engine.UpdatePlanAsync(plan.Id, name: "Pro (2025)", metadata: new Dictionary<string, string> { ["tier"] = "pro" });
        var archived = await h.Engine.ArchivePlanAsync(plan.Id);

        Assert.Equal("Pro (2025)", renamed.Name);
        Assert.Same(plan.Price.GetType(), renamed.Price.GetType());
        Assert.Equal(plan.Price.CalculateTotal(1), renamed.Price.CalculateTotal(1));
        Assert.True(archived.Archived);
        var refused = await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id)));
        Assert.Equal("plan", refused.Field);
        Assert.Equal(SubscriptionStatus.Active, (await h.Engine.GetSubscriptionAsync(existing.Id)).Status);
        await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.UpdatePlanAsync(plan.Id, name: " "));
    }

    [Fact]
    public async Task Illegal_operations_throw_and_change_nothing()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(4000);
        var (_, customer) = await h.ClockCustomerAsync(Utc(2025, 1, 1));
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await h.Engine.CancelSubscriptionAsync(subscription.Id);
        var events = (await h.EventsAsync()).Count;
        var firstInvoice = (await h.InvoicesAsync(subscription.Id))[0].Id;

        var error = await Assert.ThrowsAsync<InvalidStateTransitionException>(() => h.Engine.PauseSubscriptionAsync(subscription.Id));
        await Assert.ThrowsAsync<InvalidStateTransitionException>(() => h.Engine.CancelSubscriptionAsync(subscription.Id));
        await Assert.ThrowsAsync<InvalidStateTransitionException>(() => h.Engine.PayInvoiceAsync(firstInvoice));
        await Assert.ThrowsAsync<InvalidStateTransitionException>(() => h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { Quantity = 2 }));
        await Assert.ThrowsAsync<InvalidStateTransitionException>(() => h.Engine.PreviewChangeAsync(subscription.Id, new SubscriptionChange { Quantity = 2 }));
        await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id) { Quantity = 0 }));
        await Assert.ThrowsAsync<BillingNotFoundException>(() => h.Engine.CreateSubscriptionAsync(new NewSubscription("cus_nope", plan.Id)));

        Assert.Equal("canceled", error.State);
        Assert.Equal("pause", error.Trigger);
        Assert.Equal(["restart"], error.AllowedTriggers);
        Assert.Equal(events, (await h.EventsAsync()).Count);
        Assert.Equal(SubscriptionStatus.Canceled, (await h.Engine.GetSubscriptionAsync(subscription.Id)).Status);
    }
}
