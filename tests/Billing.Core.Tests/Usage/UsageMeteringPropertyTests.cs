using System.Collections.Concurrent;
using System.Globalization;
using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Pricing;
using Billing.Tests.Engine;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// Service-level property: for any interleaving of new events, duplicates, over-limit attempts, batches, concurrent
/// calls and <see cref="UsageMeteringService.RebuildCountersAsync"/> through the metering service (in-memory counter
/// and event store), every counter's total equals the durable aggregate, and both equal the fold of the unique events
/// the service answered "accepted".
/// </summary>
public sealed class UsageMeteringPropertyTests
{
    /// <summary>What one step does.</summary>
    public enum OpKind
    {
        /// <summary>One new event.</summary>
        New,

        /// <summary>A previously sent key again (with another quantity).</summary>
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

    /// <summary>One step, with the random choices it needs.</summary>
    public sealed record Op(OpKind Kind, int Customer, int Meter, long Quantity, bool LatePeriod, int Minute, int Unique, int Pick, int Size);

    private static Gen<Op> Ops() =>
        from kind in Gen.Frequency(
            (6, Gen.Constant(OpKind.New)), (3, Gen.Constant(OpKind.Duplicate)), (2, Gen.Constant(OpKind.OverLimit)),
            (2, Gen.Constant(OpKind.Batch)), (2, Gen.Constant(OpKind.Concurrent)), (1, Gen.Constant(OpKind.Rebuild)))
        from customer in Gen.Choose(0, 1)
        from meter in Gen.Choose(0, Scenario.Meters.Length - 1)
        from quantity in Gen.Frequency((1, Gen.Constant(0L)), (6, Gen.Choose(1, 120).Select(i => (long)i)))
        from late in Gen.Elements(true, false)
        from minute in Gen.Choose(0, 599)
        from unique in Gen.Choose(0, 5)
        from pick in Gen.Choose(0, 1_000)
        from size in Gen.Choose(2, 8)
        select new Op(kind, customer, meter, quantity, late, minute, unique, pick, size);

    [Fact]
    public void For_any_interleaving_through_the_service_counter_totals_equal_the_durable_aggregate_and_the_accepted_fold()
    {
        var sequences = Gen.Sized(size => Gen.Choose(1, Math.Max(1, Math.Min(size, 40))).SelectMany(n => Gen.ArrayOf(Ops(), n)));
        Prop.ForAll(sequences.ToArbitrary(), ops => RunAsync(ops).GetAwaiter().GetResult())
            .Check(Config.QuickThrowOnFailure.WithMaxTest(150));
    }

    private static async Task RunAsync(Op[] ops)
    {
        var scenario = await Scenario.CreateAsync();
        foreach (var op in ops)
        {
            await scenario.ApplyAsync(op);
            await scenario.AssertConsistentAsync();
        }

        await scenario.Metering.RebuildCountersAsync(Scenario.January.Start, Scenario.AggregationOf);
        await scenario.Metering.RebuildCountersAsync(Scenario.February.Start, Scenario.AggregationOf);
        await scenario.AssertConsistentAsync();
    }

    /// <summary>Two customers on one test clock at 1 February 10:00, on a plan with one meter of each aggregation.</summary>
    internal sealed class Scenario
    {
        public const long HardLimit = 500;

        public static readonly BillingPeriod January = new(Utc(2025, 1, 1), Utc(2025, 2, 1));

        public static readonly BillingPeriod February = new(Utc(2025, 2, 1), Utc(2025, 3, 1));

        public static readonly Meter[] Meters =
        [
            new() { Key = "calls" },
            new() { Key = "requests", Aggregation = MeterAggregation.Count },
            new() { Key = "peak", Aggregation = MeterAggregation.Max },
            new() { Key = "gauge", Aggregation = MeterAggregation.Last },
            new() { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" },
        ];

        private readonly ConcurrentDictionary<(string Customer, string Key), UsageEventInput> _accepted = new();
        private readonly List<UsageEventInput> _sent = [];
        private readonly MeteringOptions _options;
        private int _next;

        private Scenario(UsageMeteringService metering, InMemoryUsageEventStore events, string[] customers, MeteringOptions options)
        {
            (Metering, Events, Customers, _options) = (metering, events, customers, options);
        }

        public UsageMeteringService Metering { get; }

        public InMemoryUsageEventStore Events { get; }

        public string[] Customers { get; }

        public static MeterAggregation AggregationOf(string meterKey) => Meters.Single(m => m.Key == meterKey).Aggregation;

        public static async Task<Scenario> CreateAsync()
        {
            var events = new InMemoryUsageEventStore();
            var options = new MeteringOptions();
            var h = new EngineHarness(usage: new MeteredUsageCharges(events, options));
            var plan = await h.Engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(Usd(1_000)), BillingInterval.Monthly)
            {
                MeteredPrices = [.. Meters.Select(m => new MeteredPrice { Meter = m, Price = new PerUnitPrice(Usd(1)) })],
                Entitlements = [new Entitlement { Feature = "calls", Kind = EntitlementKind.MeteredLimit, MeterKey = "calls", Limit = HardLimit, Enforcement = LimitEnforcement.Hard }],
            });
            var (clock, first) = await h.ClockCustomerAsync(January.Start);
            var second = await h.Engine.CreateCustomerAsync(new NewCustomer("Bob", "bob@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa, TestClockId = clock.Id });
            await h.Engine.CreateSubscriptionAsync(new NewSubscription(first.Id, plan.Id));
            await h.Engine.CreateSubscriptionAsync(new NewSubscription(second.Id, plan.Id));
            await h.Engine.AdvanceTestClockAsync(clock.Id, February.Start.AddHours(10)); // January is in its grace, its invoice a draft
            var metering = new UsageMeteringService(h.Store, new InMemoryUsageCounter(), events, h.Time, options);
            return new Scenario(metering, events, [first.Id, second.Id], options);
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
                    await RecordSingleAsync(NewEvent(op with { Meter = 0, Quantity = 150 + (op.Quantity * 4) }));
                    break;
                case OpKind.Batch:
                    var batch = Enumerable.Range(0, op.Size).Select(i => i % 3 == 2 ? Repeat(op with { Pick = op.Pick + i }) ?? NewEvent(op with { Meter = (op.Meter + i) % Meters.Length }) : NewEvent(op with { Meter = (op.Meter + i) % Meters.Length, Minute = op.Minute + i })).ToList();
                    batch.Add(batch[0] with { Quantity = batch[0].Quantity + 1 }); // a repeat inside the batch
                    Observe(batch, await Metering.RecordBatchAsync(batch));
                    break;
                case OpKind.Concurrent:
                    var calls = Enumerable.Range(0, op.Size).Select(i => i % 4 == 3 ? Repeat(op with { Pick = op.Pick + i }) ?? NewEvent(op) : NewEvent(op with { Meter = (op.Meter + i) % Meters.Length, Customer = (op.Customer + i) % 2 })).ToArray();
                    var results = await Task.WhenAll(calls.Select(c => Task.Run(() => Metering.RecordAsync(c))));
                    Observe(calls, results);
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
                            fold.Apply(meter.Aggregation, ToCounterEvent(key, meter, e));
                        }

                        var total = await Metering.GetTotalAsync(key);
                        var durable = await Metering.GetDurableTotalAsync(key, meter.Aggregation);
                        Assert.True(total == durable && durable == fold.Total, string.Create(CultureInfo.InvariantCulture, $"{key}: counter {total}, durable {durable}, accepted fold {fold.Total}"));
                        if (meter.Key == "calls")
                        {
                            Assert.True(total <= HardLimit, $"{key} passed the hard limit: {total}");
                        }
                    }
                }
            }

            Assert.Equal(_accepted.Count, Events.Count);
        }

        private async Task RecordSingleAsync(UsageEventInput input)
        {
            var expectOverLimit = input.MeterKey == "calls" && !_accepted.ContainsKey((input.CustomerId!, input.IdempotencyKey))
                && CallsTotal(input.CustomerId!, input.Timestamp) + input.Quantity > HardLimit;
            var result = await Metering.RecordAsync(input);
            Observe([input], [result]);
            Assert.True(expectOverLimit == (result.Reason == "over_limit"), string.Create(CultureInfo.InvariantCulture, $"{input} → {result}; accepted calls {CallsTotal(input.CustomerId!, input.Timestamp)}"));
        }

        private long CallsTotal(string customer, DateTimeOffset timestamp) =>
            _accepted.Values.Where(e => e.CustomerId == customer && e.MeterKey == "calls" && (e.Timestamp < February.Start) == (timestamp < February.Start)).Sum(e => e.Quantity);

        private void Observe(IReadOnlyList<UsageEventInput> inputs, IReadOnlyList<UsageIngestResult> results)
        {
            Assert.Equal(inputs.Count, results.Count);
            var accepted = new List<UsageEventInput>();
            for (var i = 0; i < inputs.Count; i++)
            {
                var (input, result) = (inputs[i], results[i]);
                Assert.Equal(input.IdempotencyKey, result.IdempotencyKey);
                switch (result.Status)
                {
                    case UsageIngestStatus.Accepted:
                        Assert.True(_accepted.TryAdd((input.CustomerId!, input.IdempotencyKey), input), $"{input.IdempotencyKey} was accepted twice");
                        Assert.Equal(input.Timestamp < February.Start ? January.Start : February.Start, result.Counter!.Value.PeriodStart);
                        accepted.Add(input);
                        break;
                    case UsageIngestStatus.Duplicate:
                        break;
                    default:
                        Assert.True(result.Reason == "over_limit" && input.MeterKey == "calls", $"{input.IdempotencyKey}: unexpected {result.Reason} ({result.Message})");
                        break;
                }
            }

            // A duplicate answer always refers to an accepted key (possibly accepted by a call of the same step).
            for (var i = 0; i < inputs.Count; i++)
            {
                if (results[i].Status == UsageIngestStatus.Duplicate)
                {
                    Assert.True(_accepted.ContainsKey((inputs[i].CustomerId!, inputs[i].IdempotencyKey)), $"{inputs[i].IdempotencyKey} was a duplicate of nothing");
                }
            }

            lock (_sent)
            {
                _sent.AddRange(inputs);
            }
        }

        private UsageEventInput NewEvent(Op op)
        {
            var meter = Meters[op.Meter];
            var start = op.LatePeriod ? January.End.AddHours(-10) : February.Start;
            return new UsageEventInput
            {
                CustomerId = Customers[op.Customer],
                MeterKey = meter.Key,
                Quantity = op.Quantity,
                Timestamp = start.AddMinutes(op.Minute % 600),
                IdempotencyKey = string.Create(CultureInfo.InvariantCulture, $"k{Interlocked.Increment(ref _next)}"),
                Properties = new Dictionary<string, string> { ["user"] = string.Create(CultureInfo.InvariantCulture, $"u{op.Unique}") },
            };
        }

        private UsageEventInput? Repeat(Op op)
        {
            lock (_sent)
            {
                return _sent.Count == 0 ? null : _sent[op.Pick % _sent.Count] with { Quantity = op.Quantity };
            }
        }

        private UsageCounterEvent ToCounterEvent(UsageCounterKey key, Meter meter, UsageEventInput e) => new()
        {
            Counter = key,
            Aggregation = meter.Aggregation,
            Quantity = e.Quantity,
            IdempotencyKey = e.IdempotencyKey,
            Timestamp = e.Timestamp,
            UniqueValue = meter.Aggregation == MeterAggregation.UniqueCount ? e.Properties!["user"] : null,
            Now = February.Start,
            DedupWindow = _options.DedupWindow,
        };
    }
}
