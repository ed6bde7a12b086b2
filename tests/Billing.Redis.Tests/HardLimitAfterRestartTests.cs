using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing.Payments;
using Billing.Testing.Servers;
using Billing.Testing.Time;
using Billing.Usage;
using Microsoft.Extensions.Options;

namespace Billing.Redis.Tests;

/// <summary>
/// A hard limit holds across a Redis restart (the server comes back empty) without anyone calling
/// <see cref="UsageMeteringService.RebuildCountersAsync"/>: the service finds the counter empty while the durable
/// store has its events, rebuilds it, and only then counts.
/// </summary>
public sealed class HardLimitAfterRestartTests
{
    private static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task After_a_restart_the_service_rebuilds_the_empty_counter_before_it_accepts_past_the_hard_limit()
    {
        await using var server = await LocalRedisServer.StartAsync();
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = server.ConfigurationString });
        var events = new InMemoryUsageEventStore();
        var store = new InMemoryBillingStore();
        var time = new FakeTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new MeteringOptions();
        var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(new BillingOptions()), new RandomIdGenerator(), new MeteredUsageCharges(events, options));
        var plan = await engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
        {
            MeteredPrices = [new MeteredPrice { Meter = new Meter { Key = "calls" }, Price = new PerUnitPrice(new Money(1, Currency.USD)) }],
            Entitlements = [new Entitlement { Feature = "calls", Kind = EntitlementKind.MeteredLimit, MeterKey = "calls", Limit = 300, Enforcement = LimitEnforcement.Hard }],
        });
        var clock = await engine.CreateTestClockAsync(Start);
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id });
        await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await engine.AdvanceTestClockAsync(clock.Id, Start.AddDays(10));
        var metering = new UsageMeteringService(store, counter, events, time, options);
        var key = new UsageCounterKey(customer.Id, "calls", Start);
        UsageEventInput Call(string id, long quantity) => new() { CustomerId = customer.Id, MeterKey = "calls", Quantity = quantity, Timestamp = Start.AddDays(9), IdempotencyKey = id };

        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call("e1", 200))).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call("e2", 50))).Status);
        await server.KillAsync();
        await server.RestartAsync();
        UsageIngestResult over;
        while (true)
        {
            try
            {
                over = await metering.RecordAsync(Call("e3", 100)); // the empty counter alone would accept it: 100 ≤ 300
                break;
            }
            catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
            {
                await Task.Delay(50); // reconnecting
            }
        }

        Assert.Equal(("over_limit", 250L), (over.Reason, over.Total!.Value));
        Assert.Equal(250, await counter.GetTotalAsync(key));
        Assert.Equal(UsageIngestStatus.Duplicate, (await metering.RecordAsync(Call("e1", 200))).Status);
        var fits = await metering.RecordAsync(Call("e3", 50));
        Assert.Equal((UsageIngestStatus.Accepted, 300L), (fits.Status, fits.Total!.Value));
        Assert.Equal(300, await counter.GetTotalAsync(key));
        Assert.Equal(300, await metering.GetDurableTotalAsync(key, MeterAggregation.Sum));
    }
}
