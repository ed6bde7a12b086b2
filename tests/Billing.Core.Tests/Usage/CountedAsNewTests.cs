using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Tests.Engine;
using Billing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>The write hint the metering service gives the durable store (<see cref="StoredUsageEvent.CountedAsNew"/>).</summary>
public sealed class CountedAsNewTests
{
    private static readonly DateTimeOffset Start = Utc(2025, 1, 1);

    [Fact]
    public async Task Events_a_fast_counter_accepted_are_appended_as_counted_new_and_repeats_are_not()
    {
        var (metering, events, customer) = await CreateAsync(new InMemoryUsageCounter());
        var first = await metering.RecordBatchAsync([Call(customer, "a", 1), Call(customer, "b", 2), Call(customer, "a", 1)]);
        var second = await metering.RecordBatchAsync([Call(customer, "b", 2), Call(customer, "c", 3)]);

        Assert.Equal(
            [UsageIngestStatus.Accepted, UsageIngestStatus.Accepted, UsageIngestStatus.Duplicate, UsageIngestStatus.Duplicate, UsageIngestStatus.Accepted],
            first.Concat(second).Select(r => r.Status));

        Assert.Equal(
            [("a", true), ("b", true), ("a", false), ("b", false), ("c", true)],
            events.Appended.Select(e => (e.IdempotencyKey, e.CountedAsNew)));
        Assert.All(await events.ListAsync(events.Appended[0].Counter), e => Assert.False(e.CountedAsNew));
    }

    [Fact]
    public async Task With_a_durable_counter_no_event_is_appended_as_counted_new()
    {
        var (metering, events, customer) = await CreateAsync(new Durable(new InMemoryUsageCounter()));
        Assert.All(await metering.RecordBatchAsync([Call(customer, "a", 1), Call(customer, "b", 2)]), r => Assert.Equal(UsageIngestStatus.Accepted, r.Status));

        Assert.Equal([("a", false), ("b", false)], events.Appended.Select(e => (e.IdempotencyKey, e.CountedAsNew)));
    }

    private static async Task<(UsageMeteringService Metering, Recording Events, string CustomerId)> CreateAsync(IUsageCounter counter)
    {
        var h = new EngineHarness();
        var plan = await h.Engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(Usd(1_000)), BillingInterval.Monthly) { MeteredPrices = [UsagePrices.GraduatedApiCalls] });
        var (_, customer) = await h.ClockCustomerAsync(Start);
        await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        var events = new Recording();
        return (new UsageMeteringService(h.Store, counter, events, h.Time, new MeteringOptions()), events, customer.Id);
    }

    private static UsageEventInput Call(string customer, string key, long quantity) =>
        new() { CustomerId = customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = Start, IdempotencyKey = key };

    /// <summary>The in-memory store, remembering every event appended to it as it was passed.</summary>
    private sealed class Recording : IUsageEventStore
    {
        private readonly InMemoryUsageEventStore _inner = new();

        public List<StoredUsageEvent> Appended { get; } = [];

        public ValueTask<IReadOnlyList<bool>> AppendAsync(IReadOnlyList<StoredUsageEvent> events, CancellationToken cancellationToken = default)
        {
            Appended.AddRange(events);
            return _inner.AppendAsync(events, cancellationToken);
        }

        public ValueTask<IReadOnlyList<StoredUsageEvent>> ListAsync(UsageCounterKey counter, CancellationToken cancellationToken = default) => _inner.ListAsync(counter, cancellationToken);

        public ValueTask<StoredUsageEvent?> FindAsync(string customerId, string idempotencyKey, CancellationToken cancellationToken = default) => _inner.FindAsync(customerId, idempotencyKey, cancellationToken);

        public ValueTask<IReadOnlyList<UsageCounterKey>> ListCountersAsync(DateTimeOffset periodStart, CancellationToken cancellationToken = default) => _inner.ListCountersAsync(periodStart, cancellationToken);

        public ValueTask<long> AggregateAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default) => _inner.AggregateAsync(counter, aggregation, cancellationToken);
    }

    /// <summary>An in-memory counter that says it is durable (as the EF Core counter is), so the service skips its fast-counter checks.</summary>
    private sealed class Durable(IUsageCounter inner) : IUsageCounter
    {
        public bool IsDurable => true;

        public ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default) => inner.RecordAsync(usageEvent, cancellationToken);

        public ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default) => inner.RecordBatchAsync(events, cancellationToken);

        public ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default) => inner.GetTotalAsync(counter, cancellationToken);

        public ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default) =>
            inner.RebuildAsync(counter, aggregation, events, cancellationToken);
    }
}
