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
using FsCheck;
using FsCheck.Fluent;
using Microsoft.Extensions.Options;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// The service-level metering property on real PostgreSQL: for any interleaving of new events, duplicates, over-limit
/// attempts, batches, concurrent calls and <see cref="UsageMeteringService.RebuildCountersAsync"/> through
/// <see cref="UsageMeteringService"/> with the EF Core durable event store, every counter's total equals the durable
/// aggregate, and both equal the fold of the unique events the service answered "accepted". Run with the in-memory
/// counter and with the EF Core durable counter in front of the store.
/// </summary>
public sealed class UsageMeteringServicePostgreSqlPropertyTests : IClassFixture<UsageMeteringServicePostgreSqlPropertyTests.Database>
{
    private static int _cases;
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public UsageMeteringServicePostgreSqlPropertyTests(Database database) => _database = database;

    /// <summary>What one step does.</summary>
    public enum OpKind
    {
        /// <summary>One new event.</summary>
        New,

        /// <summary>A previously sent key again, with another quantity.</summary>
        Duplicate,

        /// <summary>A large event on the hard-limited meter.</summary>
        OverLimit,

        /// <summary>A batch of new and repeated events (with a repeat inside the batch).</summary>
        Batch,

        /// <summary>Several single calls at once.</summary>
        Concurrent,

        /// <summary>Rebuild every counter of one period from the durable events.</summary>
        Rebuild,
    }

    /// <summary>One step with its random choices.</summary>
    public sealed record Op(OpKind Kind, int Customer, int Meter, long Quantity, bool LatePeriod, int Minute, int Unique, int Pick, int Size);

    /// <summary>The counter in front of the durable store.</summary>
    public enum CounterKind
    {
        /// <summary><see cref="InMemoryUsageCounter"/>.</summary>
        InMemory,

        /// <summary><see cref="EntityFrameworkUsageCounter"/> on the same database.</summary>
        Durable,
    }

    private static readonly Meter[] Meters =
    [
        new() { Key = "calls" },
        new() { Key = "gauge", Aggregation = MeterAggregation.Last },
        new() { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" },
    ];

    private const long HardLimit = 300;

    private static Gen<Op> Ops() =>
        from kind in Gen.Frequency(
            (5, Gen.Constant(OpKind.New)), (3, Gen.Constant(OpKind.Duplicate)), (2, Gen.Constant(OpKind.OverLimit)),
            (2, Gen.Constant(OpKind.Batch)), (2, Gen.Constant(OpKind.Concurrent)), (1, Gen.Constant(OpKind.Rebuild)))
        from customer in Gen.Choose(0, 1)
        from meter in Gen.Choose(0, Meters.Length - 1)
        from quantity in Gen.Frequency((1, Gen.Constant(0L)), (6, Gen.Choose(1, 80).Select(i => (long)i)))
        from late in Gen.Elements(true, false)
        from minute in Gen.Choose(0, 599)
        from unique in Gen.Choose(0, 4)
        from pick in Gen.Choose(0, 1_000)
        from size in Gen.Choose(2, 6)
        select new Op(kind, customer, meter, quantity, late, minute, unique, pick, size);

    /// <summary>The property, 40 random step sequences per counter kind, on one migrated PostgreSQL schema.</summary>
    [Theory]
    [InlineData(CounterKind.InMemory)]
    [InlineData(CounterKind.Durable)]
    public async Task For_any_interleaving_on_PostgreSQL_counter_totals_equal_the_durable_aggregate_and_the_accepted_fold(CounterKind kind)
    {
        var (cs, schema) = await _database.Schema.Value;
        var events = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        var sequences = Gen.Sized(size => Gen.Choose(1, Math.Max(1, Math.Min(size, 20))).SelectMany(n => Gen.ArrayOf(Ops(), n)));
        Prop.ForAll(sequences.ToArbitrary(), ops =>
        {
            IUsageCounter counter = kind == CounterKind.InMemory ? new InMemoryUsageCounter() : EntityFrameworkUsageCounter.ForPostgreSql(cs, schema);
            RunAsync(ops, counter, events).GetAwaiter().GetResult();
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(40));
    }

    private static async Task RunAsync(Op[] ops, IUsageCounter counter, IUsageEventStore events)
    {
        var scenario = await Scenario.CreateAsync(counter, events, Interlocked.Increment(ref _cases));
        foreach (var op in ops)
        {
            await scenario.ApplyAsync(op);
            if (op.Kind is OpKind.Rebuild or OpKind.Concurrent)
            {
                await scenario.AssertConsistentAsync();
            }
        }

        await scenario.AssertConsistentAsync();
        await scenario.Metering.RebuildCountersAsync(scenario.January.Start, AggregationOf);
        await scenario.Metering.RebuildCountersAsync(scenario.February.Start, AggregationOf);
        await scenario.AssertConsistentAsync();
    }

    private static MeterAggregation AggregationOf(string meterKey) => Meters.Single(m => m.Key == meterKey).Aggregation;

    /// <summary>
    /// Two customers on one test clock, a few hours into their second period (the first is in its late-event grace). Each
    /// case starts a few minutes after the previous one, so its periods (and counters) are its own in the shared schema.
    /// </summary>
    private sealed class Scenario
    {
        private readonly ConcurrentDictionary<(string Customer, string Key), UsageEventInput> _accepted = new();
        private readonly List<UsageEventInput> _sent = [];
        private readonly IUsageEventStore _events;
        private int _next;

        private Scenario(UsageMeteringService metering, IUsageEventStore events, string[] customers, BillingPeriod january)
        {
            (Metering, _events, Customers, January) = (metering, events, customers, january);
            February = new BillingPeriod(january.End, january.End.AddMonths(1));
        }

        public UsageMeteringService Metering { get; }

        public string[] Customers { get; }

        public BillingPeriod January { get; }

        public BillingPeriod February { get; }

        public static async Task<Scenario> CreateAsync(IUsageCounter counter, IUsageEventStore events, int index)
        {
            var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(index);
            var store = new InMemoryBillingStore();
            var time = new FakeTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
            var options = new MeteringOptions();
            var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(new BillingOptions()), new RandomIdGenerator(), new MeteredUsageCharges(events, options));
            var plan = await engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
            {
                MeteredPrices = [.. Meters.Select(m => new MeteredPrice { Meter = m, Price = new PerUnitPrice(new Money(1, Currency.USD)) })],
                Entitlements = [new Entitlement { Feature = "calls", Kind = EntitlementKind.MeteredLimit, MeterKey = "calls", Limit = HardLimit, Enforcement = LimitEnforcement.Hard }],
            });
            var clock = await engine.CreateTestClockAsync(start);
            var customers = new string[2];
            for (var i = 0; i < customers.Length; i++)
            {
                var customer = await engine.CreateCustomerAsync(new NewCustomer($"C{i}", $"c{i}@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id });
                await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
                customers[i] = customer.Id;
            }

            var january = new BillingPeriod(start, start.AddMonths(1));
            await engine.AdvanceTestClockAsync(clock.Id, january.End.AddHours(10));
            return new Scenario(new UsageMeteringService(store, counter, events, time, options), events, customers, january);
        }

        public async Task ApplyAsync(Op op)
        {
            switch (op.Kind)
            {
                case OpKind.New:
                    await RecordSingleAsync(NewEvent(op));
                    break;
                case OpKind.Duplicate:
                    await RecordSingleAsync(Repeat(op) ?? NewEvent(op));
                    break;
                case OpKind.OverLimit:
                    await RecordSingleAsync(NewEvent(op with { Meter = 0, Quantity = 100 + (op.Quantity * 3) }));
                    break;
                case OpKind.Batch:
                    var batch = Enumerable.Range(0, op.Size).Select(i => i % 3 == 2 ? Repeat(op with { Pick = op.Pick + i }) ?? NewEvent(op) : NewEvent(op with { Meter = (op.Meter + i) % Meters.Length, Minute = op.Minute + i })).ToList();
                    batch.Add(batch[0] with { Quantity = batch[0].Quantity + 1 });
                    Observe(batch, await Metering.RecordBatchAsync(batch));
                    break;
                case OpKind.Concurrent:
                    var calls = Enumerable.Range(0, op.Size).Select(i => i % 4 == 3 ? Repeat(op with { Pick = op.Pick + i }) ?? NewEvent(op) : NewEvent(op with { Meter = (op.Meter + i) % Meters.Length, Customer = (op.Customer + i) % 2 })).ToArray();
                    Observe(calls, await Task.WhenAll(calls.Select(c => Task.Run(() => Metering.RecordAsync(c)))));
                    break;
                case OpKind.Rebuild:
                    await Metering.RebuildCountersAsync(op.LatePeriod ? January.Start : February.Start, AggregationOf);
                    break;
            }
        }

        public async Task AssertConsistentAsync()
        {
            foreach (var customer in Customers)
            {
                foreach (var meter in Meters)
                {
                    foreach (var period in new[] { January, February })
                    {
                        var key = new UsageCounterKey(customer, meter.Key, period.Start);
                        var fold = new UsageCounterState();
                        foreach (var e in _accepted.Values.Where(e => e.CustomerId == customer && e.MeterKey == meter.Key && (e.Timestamp < February.Start) == (period == January)))
                        {
                            fold.Apply(meter.Aggregation, new UsageCounterEvent
                            {
                                Counter = key, Aggregation = meter.Aggregation, Quantity = e.Quantity, IdempotencyKey = e.IdempotencyKey, Timestamp = e.Timestamp,
                                UniqueValue = meter.Aggregation == MeterAggregation.UniqueCount ? e.Properties!["user"] : null, Now = February.Start, DedupWindow = TimeSpan.FromDays(35),
                            });
                        }

                        var total = await Metering.GetTotalAsync(key);
                        var durable = await Metering.GetDurableTotalAsync(key, meter.Aggregation);
                        Assert.True(total == durable && durable == fold.Total, string.Create(CultureInfo.InvariantCulture, $"{key}: counter {total}, durable {durable}, accepted fold {fold.Total}"));
                        Assert.True(meter.Key != "calls" || total <= HardLimit, $"{key} passed the hard limit: {total}");
                        var stored = await _events.ListAsync(key);
                        Assert.Equal(
                            _accepted.Values.Where(e => e.CustomerId == customer && e.MeterKey == meter.Key && (e.Timestamp < February.Start) == (period == January)).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal),
                            stored.Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
                    }
                }
            }
        }

        private async Task RecordSingleAsync(UsageEventInput input)
        {
            var expectOverLimit = input.MeterKey == "calls" && !_accepted.ContainsKey((input.CustomerId!, input.IdempotencyKey))
                && _accepted.Values.Where(e => e.CustomerId == input.CustomerId && e.MeterKey == "calls" && (e.Timestamp < February.Start) == (input.Timestamp < February.Start)).Sum(e => e.Quantity) + input.Quantity > HardLimit;
            var result = await Metering.RecordAsync(input);
            Observe([input], [result]);
            Assert.True(expectOverLimit == (result.Reason == "over_limit"), $"{input.IdempotencyKey}: expected over limit {expectOverLimit}, got {result.Status} {result.Reason}");
        }

        private void Observe(IReadOnlyList<UsageEventInput> inputs, IReadOnlyList<UsageIngestResult> results)
        {
            Assert.Equal(inputs.Count, results.Count);
            for (var i = 0; i < inputs.Count; i++)
            {
                var (input, result) = (inputs[i], results[i]);
                Assert.Equal(input.IdempotencyKey, result.IdempotencyKey);
                if (result.Status == UsageIngestStatus.Accepted)
                {
                    Assert.True(_accepted.TryAdd((input.CustomerId!, input.IdempotencyKey), input), $"{input.IdempotencyKey} was accepted twice");
                }
                else if (result.Status == UsageIngestStatus.Rejected)
                {
                    Assert.True(result.Reason == "over_limit" && input.MeterKey == "calls", $"{input.IdempotencyKey}: unexpected {result.Reason} ({result.Message})");
                }
            }

            for (var i = 0; i < inputs.Count; i++)
            {
                Assert.True(results[i].Status != UsageIngestStatus.Duplicate || _accepted.ContainsKey((inputs[i].CustomerId!, inputs[i].IdempotencyKey)), $"{inputs[i].IdempotencyKey} was a duplicate of nothing");
            }

            lock (_sent)
            {
                _sent.AddRange(inputs);
            }
        }

        private UsageEventInput NewEvent(Op op) => new()
        {
            CustomerId = Customers[op.Customer],
            MeterKey = Meters[op.Meter].Key,
            Quantity = op.Quantity,
            Timestamp = (op.LatePeriod ? January.End.AddHours(-10) : February.Start).AddMinutes(op.Minute % 600),
            IdempotencyKey = string.Create(CultureInfo.InvariantCulture, $"k{Interlocked.Increment(ref _next)}"),
            Properties = new Dictionary<string, string> { ["user"] = string.Create(CultureInfo.InvariantCulture, $"u{op.Unique}") },
        };

        private UsageEventInput? Repeat(Op op)
        {
            lock (_sent)
            {
                return _sent.Count == 0 ? null : _sent[op.Pick % _sent.Count] with { Quantity = op.Quantity };
            }
        }
    }

    /// <summary>One migrated PostgreSQL database and schema for the class.</summary>
    public sealed class Database
    {
        /// <summary>The connection string and schema.</summary>
        public Lazy<Task<(string ConnectionString, string Schema)>> Schema { get; } = new(() => UsageDatabases.NewPostgresAsync("metering_property"));
    }
}
