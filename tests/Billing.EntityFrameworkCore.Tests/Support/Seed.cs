using System.Globalization;
using Billing.Catalog;
using Billing.Customers;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Testing.Payments;

namespace Billing.EntityFrameworkCore.Tests.Support;

/// <summary>Writes active monthly subscriptions straight into a store, in chunks, for run tests.</summary>
internal static class Seed
{
    public static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static async Task ActiveMonthlySubscriptionsAsync(IBillingStore store, int count, string paymentMethod = FakePaymentGateway.Visa)
    {
        var plan = new Plan { Id = "plan_pro", Name = "Pro", Price = new FlatPrice(new Money(2_900, Currency.USD)), Interval = BillingInterval.Monthly, CreatedAt = Start };
        var firstPeriod = new BillingPeriod(Start, Start.AddMonths(1));
        for (var chunk = 0; chunk < count; chunk += 500)
        {
            await using var session = await store.BeginAsync();
            if (chunk == 0)
            {
                session.Plans.Add(plan);
            }

            for (var i = chunk; i < Math.Min(count, chunk + 500); i++)
            {
                var customerId = string.Create(CultureInfo.InvariantCulture, $"cus_{i:D6}");
                session.Customers.Add(new Customer
                {
                    Id = customerId, Name = "Run test", Email = "run@example.com", Currency = Currency.USD, TimeZoneId = "Etc/UTC",
                    CreditBalance = Money.Zero(Currency.USD), DefaultPaymentMethod = paymentMethod, CreatedAt = Start,
                });
                session.Subscriptions.Add(new Subscription
                {
                    Id = string.Create(CultureInfo.InvariantCulture, $"sub_{i:D6}"), CustomerId = customerId, PlanId = plan.Id, Quantity = 1,
                    Status = SubscriptionStatus.Active, ScheduleStart = Start, AnchorLocal = new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Unspecified),
                    CurrentPeriod = firstPeriod, NextActionAt = firstPeriod.End, PaymentMethod = paymentMethod, CreatedAt = Start,
                });
            }

            await session.CommitAsync();
        }
    }
}
