using System.Collections.Concurrent;
using System.Globalization;
using Billing.Catalog;
using Billing.Engine;
using Billing.EntityFrameworkCore.Usage;
using Billing.InMemory;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing.Payments;
using Billing.Testing.Time;
using Billing.Usage;
using Microsoft.Extensions.Options;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// An event and its repeat (same idempotency key) arriving at the same moment through
/// <see cref="UsageMeteringService"/> on the EF Core durable counter and event store (real PostgreSQL): the repeat's
/// append can reach the row first, which the service once read as "the counter forgot the key" and answered by
/// rebuilding the counter while other requests were counting in it (deleting their rows: lost and double counts).
/// </summary>
public sealed class DurableCounterRepeatRaceTests : IClassFixture<DurableCounterRepeatRaceTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public DurableCounterRepeatRaceTests(Database database) => _database = database;

    /// <summary>
    /// 16 writers send 1,500 keys, each twice at the same moment, mixed with 1,500 events sent once: every key is
    /// answered "accepted" exactly once and "duplicate" otherwise, and the counter, the durable aggregate and the sum
    /// of the accepted quantities agree.
    /// </summary>
    [Fact]
    public async Task Concurrent_repeats_on_the_durable_counter_are_accepted_once_and_never_rebuild_the_counter()
    {
        var (cs, schema) = await _database.Schema.Value;
        var events = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        var counter = EntityFrameworkUsageCounter.ForPostgreSql(cs, schema);
        var store = new InMemoryBillingStore();
        var time = new FakeTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new MeteringOptions();
        var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(new BillingOptions()), new RandomIdGenerator(), new MeteredUsageCharges(events, options));
        var start = new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
        var plan = await engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
        {
            MeteredPrices = [new MeteredPrice { Meter = new Meter { Key = "calls" }, Price = new PerUnitPrice(new Money(1, Currency.USD)) }],
        });
        var clock = await engine.CreateTestClockAsync(start);
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id });
        await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await engine.AdvanceTestClockAsync(clock.Id, start.AddDays(10));
        var metering = new UsageMeteringService(store, counter, events, time, options);

        UsageEventInput Event(int i) => new()
        {
            CustomerId = customer.Id, MeterKey = "calls", Quantity = 1 + (i % 7), Timestamp = start.AddMinutes(i), IdempotencyKey = string.Create(CultureInfo.InvariantCulture, $"k{i}"),
        };

        const int Keys = 3_000;
        var answers = new ConcurrentBag<(int Key, UsageIngestResult Result)>();
        await Parallel.ForEachAsync(Enumerable.Range(0, Keys), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            var input = Event(i);
            var copies = i % 2 == 0 ? 2 : 1;
            var results = await Task.WhenAll(Enumerable.Range(0, copies).Select(_ => Task.Run(() => metering.RecordAsync(input, ct), ct)));
            foreach (var result in results)
            {
                answers.Add((i, result));
            }
        });

        var byKey = answers.GroupBy(a => a.Key).ToDictionary(g => g.Key, g => g.Select(a => a.Result).ToList());
        for (var i = 0; i < Keys; i++)
        {
            var statuses = byKey[i].Select(r => r.Status).Order().ToList();
            Assert.True(
                statuses.SequenceEqual(i % 2 == 0 ? [UsageIngestStatus.Accepted, UsageIngestStatus.Duplicate] : [UsageIngestStatus.Accepted]),
                $"k{i}: {string.Join(", ", byKey[i])}");
            Assert.All(byKey[i], r => Assert.Equal(byKey[i][0].Total, r.Total)); // a duplicate answers the original result
        }

        var expected = Enumerable.Range(0, Keys).Sum(i => (long)Event(i).Quantity);
        var key = new UsageCounterKey(customer.Id, "calls", start);
        Assert.Equal(expected, await metering.GetDurableTotalAsync(key, MeterAggregation.Sum));
        Assert.Equal(expected, await metering.GetTotalAsync(key));
        Assert.Equal(Keys, (await events.ListAsync(key)).Count);
    }

    /// <summary>One migrated PostgreSQL database and schema for the class.</summary>
    public sealed class Database
    {
        /// <summary>The connection string and schema.</summary>
        public Lazy<Task<(string ConnectionString, string Schema)>> Schema { get; } = new(() => UsageDatabases.NewPostgresAsync("repeat_race"));
    }
}
