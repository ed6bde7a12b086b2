using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Pricing;
using Billing.Tests.Engine;
using Billing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// A fast counter that forgot keys (past the dedup window, a flush) or lost its whole state (a restart): the service
/// answers a forgotten key with "duplicate" even when the counter finds it over the limit, and rebuilds a counter that
/// lost its state from the durable events before it accepts anything past a hard limit.
/// </summary>
public sealed class CounterRecoveryTests
{
    private const long Limit = 300;
    private static readonly DateTimeOffset Start = Utc(2025, 1, 1);

    private readonly InMemoryUsageEventStore _events = new();
    private readonly EngineHarness _h;

    public CounterRecoveryTests() => _h = new EngineHarness(usage: new MeteredUsageCharges(_events));

    private static UsageCounterKey Counter(string customer) => new(customer, "api_calls", Start);

    private static UsageEventInput Call(string customer, string key, long quantity) =>
        new() { CustomerId = customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = Utc(2025, 1, 9), IdempotencyKey = key };

    private UsageMeteringService Metering(InMemoryUsageCounter counter, MeteringOptions? options = null) =>
        new(_h.Store, counter, _events, _h.Time, options ?? new MeteringOptions());

    private async Task<(string ClockId, string CustomerId)> SubscribeAsync()
    {
        var plan = await _h.Engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(Usd(1_000)), BillingInterval.Monthly)
        {
            MeteredPrices = [UsagePrices.PerUnitApiCalls(1, description: null)],
            Entitlements = [new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = Limit, Enforcement = LimitEnforcement.Hard }],
        });
        var (clock, customer) = await _h.ClockCustomerAsync(Start);
        await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await _h.Engine.AdvanceTestClockAsync(clock.Id, Utc(2025, 1, 10));
        return (clock.Id, customer.Id);
    }

    [Fact]
    public async Task A_forgotten_key_that_the_counter_finds_over_the_limit_is_a_duplicate_and_changes_nothing()
    {
        var (clock, customer) = await SubscribeAsync();
        var counter = new InMemoryUsageCounter();
        var metering = Metering(counter, new MeteringOptions { DedupWindow = TimeSpan.FromHours(1) });
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(customer, "e1", 200))).Status);
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10, 2)); // past the dedup window: the counter forgets e1
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(customer, "e2", 50))).Status);

        var repeat = await metering.RecordAsync(Call(customer, "e1", 200)); // 250 + 200 > 300 for the counter
        Assert.Equal((UsageIngestStatus.Duplicate, (string?)null, 250L), (repeat.Status, repeat.Reason, repeat.Total!.Value));
        Assert.Equal(Counter(customer), repeat.Counter);
        var batch = await metering.RecordBatchAsync([Call(customer, "e1", 200), Call(customer, "e3", 60)]);
        Assert.Equal([UsageIngestStatus.Duplicate, UsageIngestStatus.Rejected], batch.Select(r => r.Status)); // e3 is really over
        Assert.Equal("over_limit", batch[1].Reason);
        Assert.Equal(250, await counter.GetTotalAsync(Counter(customer)));
        Assert.Equal(250, await metering.GetDurableTotalAsync(Counter(customer), MeterAggregation.Sum));
        Assert.Equal(2, (await _events.ListAsync(Counter(customer))).Count);
    }

    [Fact]
    public async Task A_counter_that_lost_its_state_is_rebuilt_before_it_accepts_past_a_hard_limit()
    {
        var (_, customer) = await SubscribeAsync();
        var before = Metering(new InMemoryUsageCounter());
        Assert.Equal(UsageIngestStatus.Accepted, (await before.RecordAsync(Call(customer, "e1", 200))).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await before.RecordAsync(Call(customer, "e2", 50))).Status);

        // A restart: a fresh counter over the same durable events.
        var counter = new InMemoryUsageCounter();
        var metering = Metering(counter);
        var over = await metering.RecordAsync(Call(customer, "e3", 100)); // the empty counter would accept: 100 ≤ 300
        Assert.Equal(("over_limit", 250L), (over.Reason, over.Total!.Value));
        Assert.Equal(250, await counter.GetTotalAsync(Counter(customer))); // rebuilt from the durable events
        var fits = await metering.RecordAsync(Call(customer, "e3", 50)); // the key stayed free
        Assert.Equal((UsageIngestStatus.Accepted, 300L), (fits.Status, fits.Total!.Value));
        var repeat = await metering.RecordAsync(Call(customer, "e1", 200));
        Assert.Equal(UsageIngestStatus.Duplicate, repeat.Status);
        Assert.Equal(300, await metering.GetDurableTotalAsync(Counter(customer), MeterAggregation.Sum));
        Assert.Equal(300, await counter.GetTotalAsync(Counter(customer)));
    }

    [Fact]
    public async Task A_batch_into_a_counter_that_lost_its_state_is_counted_on_the_rebuilt_total()
    {
        var (_, customer) = await SubscribeAsync();
        var before = Metering(new InMemoryUsageCounter());
        Assert.Equal(UsageIngestStatus.Accepted, (await before.RecordAsync(Call(customer, "e1", 250))).Status);

        var counter = new InMemoryUsageCounter();
        var metering = Metering(counter);
        var results = await metering.RecordBatchAsync([Call(customer, "e2", 30), Call(customer, "e1", 250), Call(customer, "e3", 40), Call(customer, "e2", 30)]);
        Assert.Equal(
            [(UsageIngestStatus.Accepted, 280L), (UsageIngestStatus.Duplicate, 250L), (UsageIngestStatus.Rejected, 280L), (UsageIngestStatus.Duplicate, 280L)],
            results.Select(r => (r.Status, r.Total!.Value)));
        Assert.Equal(280, await counter.GetTotalAsync(Counter(customer)));
        Assert.Equal(280, await metering.GetDurableTotalAsync(Counter(customer), MeterAggregation.Sum));
    }

    [Fact]
    public async Task A_new_counter_with_no_durable_events_costs_no_rebuild()
    {
        var (_, customer) = await SubscribeAsync();
        var counter = new InMemoryUsageCounter();
        var metering = Metering(counter);
        var results = await metering.RecordBatchAsync([Call(customer, "e1", 100), Call(customer, "e2", 150), Call(customer, "e3", 100)]);
        Assert.Equal([100L, 250L, 250L], results.Select(r => r.Total!.Value));
        Assert.Equal([UsageIngestStatus.Accepted, UsageIngestStatus.Accepted, UsageIngestStatus.Rejected], results.Select(r => r.Status));
    }
}
