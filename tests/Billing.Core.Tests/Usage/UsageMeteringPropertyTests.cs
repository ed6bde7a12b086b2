using Billing.InMemory;
using Billing.Testing.Contracts;
using Billing.Usage;

namespace Billing.Tests.Usage;

/// <summary>
/// Service-level property (<see cref="UsageMeteringProperty"/>): for any interleaving of new events, duplicates,
/// over-limit attempts, batches, concurrent calls and <see cref="UsageMeteringService.RebuildCountersAsync"/> through
/// the metering service (in-memory counter and event store), every counter's total equals the durable aggregate, and
/// both equal the fold of the unique events the service answered "accepted"; checked after every step.
/// </summary>
public sealed class UsageMeteringPropertyTests
{
    [Fact]
    public void For_any_interleaving_through_the_service_counter_totals_equal_the_durable_aggregate_and_the_accepted_fold() =>
        new UsageMeteringProperty
        {
            Meters =
            [
                new() { Key = "calls" },
                new() { Key = "requests", Aggregation = MeterAggregation.Count },
                new() { Key = "peak", Aggregation = MeterAggregation.Max },
                new() { Key = "gauge", Aggregation = MeterAggregation.Last },
                new() { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" },
            ],
            HardLimit = 500,
            Tests = 150,
            MaxSteps = 40,
            MaxQuantity = 120,
            MaxUnique = 5,
            MaxSize = 8,
            NewWeight = 6,
            OverLimitBase = 150,
            OverLimitFactor = 4,
            CheckEveryStep = true,
        }.Check(() => new InMemoryUsageCounter(), () => new InMemoryUsageEventStore(), events => ((InMemoryUsageEventStore)events).Count);
}
