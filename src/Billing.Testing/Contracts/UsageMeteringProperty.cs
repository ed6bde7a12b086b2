using System.Collections.Concurrent;
using System.Globalization;
using Billing.Catalog;
using Billing.Engine;
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
using Xunit;

namespace Billing.Testing.Contracts;

/// <summary>
/// The service-level metering property, for any counter and durable event store: for any interleaving of new events,
/// duplicates, over-limit attempts, batches, concurrent calls and <see cref="UsageMeteringService.RebuildCountersAsync"/>
/// through <see cref="UsageMeteringService"/>, every counter's total equals the durable aggregate, both equal the fold
/// of the unique events the service answered "accepted", the stored keys are exactly the accepted ones, and the hard
/// limit holds.
/// </summary>
/// <remarks>
/// Each case builds its own scenario: an in-memory billing store, two customers on one test clock subscribed to a plan
/// with one metered price per meter of <see cref="Meters"/> and a hard metered limit of <see cref="HardLimit"/> on the
/// first meter, advanced a few hours into their second period (the first is in its late-event grace). Case <c>n</c>
/// starts <c>n</c> minutes after 1 January 2025, so cases that share one durable store (one database) have periods and
/// counters of their own.
/// </remarks>
public sealed class UsageMeteringProperty
{
    private static int _cases;

    /// <summary>The meters; the first must be a sum (it carries the hard limit). Default: calls (sum), gauge (last), users (unique count).</summary>
    public IReadOnlyList<Meter> Meters { get; init; } =
    [
        new() { Key = "calls" },
        new() { Key = "gauge", Aggregation = MeterAggregation.Last },
        new() { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" },
    ];

    /// <summary>The hard limit of the first meter per customer and period (300 by default).</summary>
    public long HardLimit { get; init; } = 300;

    /// <summary>The number of random step sequences (40 by default).</summary>
    public int Tests { get; init; } = 40;

    /// <summary>The most steps in a sequence (20 by default).</summary>
    public int MaxSteps { get; init; } = 20;

    /// <summary>The largest quantity of an ordinary event (80 by default).</summary>
    public int MaxQuantity { get; init; } = 80;

    /// <summary>Distinct unique-count values minus one (4 by default: u0…u4).</summary>
    public int MaxUnique { get; init; } = 4;

    /// <summary>The most events in a batch or concurrent step (6 by default).</summary>
    public int MaxSize { get; init; } = 6;

    /// <summary>The weight of a new event among the steps (5 by default; duplicates 3, over-limit 2, the rest 1).</summary>
    public int NewWeight { get; init; } = 5;

    /// <summary>An over-limit attempt sends <c>OverLimitBase + quantity × OverLimitFactor</c> (100 + q × 3 by default).</summary>
    public long OverLimitBase { get; init; } = 100;

    /// <summary>See <see cref="OverLimitBase"/>.</summary>
    public long OverLimitFactor { get; init; } = 3;

    /// <summary>Check the invariants after every step (true), or only after rebuilds, concurrent steps and at the end (false, the default: cheaper on a database).</summary>
    public bool CheckEveryStep { get; init; }

    /// <summary>
    /// Runs the property. <paramref name="newCounter"/> and <paramref name="newEvents"/> are called once per case;
    /// <paramref name="storedCount"/>, when given, reads the number of stored events of a case's store (which must then
    /// equal the number of accepted events).
    /// </summary>
    /// <param name="newCounter">The counter of a case.</param>
    /// <param name="newEvents">The durable store of a case (may return one shared store).</param>
    /// <param name="storedCount">Counts the events a case's store holds, or null to skip that check.</param>
    public void Check(Func<IUsageCounter> newCounter, Func<IUsageEventStore> newEvents, Func<IUsageEventStore, int>? storedCount = null)
    {
        ArgumentNullException.ThrowIfNull(newCounter);
        ArgumentNullException.ThrowIfNull(newEvents);
        var sequences = Gen.Sized(size => Gen.Choose(1, Math.Max(1, Math.Min(size, MaxSteps))).SelectMany(n => Gen.ArrayOf(Ops(), n)));
        Prop.ForAll(sequences.ToArbitrary(), ops => RunAsync(ops, newCounter(), newEvents(), storedCount).GetAwaiter().GetResult())
            .Check(Config.QuickThrowOnFailure.WithMaxTest(Tests));
    }

    private Gen<Op> Ops() =>
        from kind in Gen.Frequency(
            (NewWeight, Gen.Constant(OpKind.New)), (3, Gen.Constant(OpKind.Duplicate)), (2, Gen.Constant(OpKind.OverLimit)),
            (1, Gen.Constant(OpKind.Batch)), (1, Gen.Constant(OpKind.Concurrent)), (1, Gen.Constant(OpKind.Rebuild)))
        from customer in Gen.Choose(0, 1)
        from meter in Gen.Choose(0, Meters.Count - 1)
        from quantity in Gen.Frequency((1, Gen.Constant(0L)), (6, Gen.Choose(1, MaxQuantity).Select(i => (long)i)))
        from late in Gen.Elements(true, false)
        from minute in Gen.Choose(0, 599)
        from unique in Gen.Choose(0, MaxUnique)
        from pick in Gen.Choose(0, 1_000)
        from size in Gen.Choose(2, MaxSize)
        select new Op(kind, customer, meter, quantity, late, minute, unique, pick, size);

    private async Task RunAsync(Op[] ops, IUsageCounter counter, IUsageEventStore events, Func<IUsageEventStore, int>? storedCount)
    {
        var scenario = await Scenario.CreateAsync(this, counter, events, storedCount, Interlocked.Increment(ref _cases)).ConfigureAwait(false);
        foreach (var op in ops)
        {
            await scenario.ApplyAsync(op).ConfigureAwait(false);
            if (CheckEveryStep || op.Kind is OpKind.Rebuild or OpKind.Concurrent)
            {
                await scenario.AssertConsistentAsync().ConfigureAwait(false);
            }
        }

        await scenario.AssertConsistentAsync().ConfigureAwait(false);
        await scenario.Metering.RebuildCountersAsync(scenario.January.Start, scenario.AggregationOf).ConfigureAwait(false);
        await scenario.Metering.RebuildCountersAsync(scenario.February.Start, scenario.AggregationOf).ConfigureAwait(false);
        await scenario.AssertConsistentAsync().ConfigureAwait(false);
    }

    private enum OpKind
    {
        New,
        Duplicate,
        OverLimit,
        Batch,
        Concurrent,
        Rebuild,
    }

    private sealed record Op(OpKind Kind, int Customer, int Meter, long Quantity, bool LatePeriod, int Minute, int Unique, int Pick, int Size);

    private sealed class Scenario
    {
        private readonly ConcurrentDictionary<(string Customer, string Key), UsageEventInput> _accepted = new();
        private readonly List<UsageEventInput> _sent = [];
        private readonly UsageMeteringProperty _property;
        private readonly IUsageEventStore _events;
        private readonly Func<IUsageEventStore, int>? _storedCount;
        private readonly MeteringOptions _options;
        private int _next;

        private Scenario(UsageMeteringProperty property, UsageMeteringService metering, IUsageEventStore events, Func<IUsageEventStore, int>? storedCount, string[] customers, BillingPeriod january, MeteringOptions options)
        {
            (_property, Metering, _events, _storedCount, Customers, January, _options) = (property, metering, events, storedCount, customers, january, options);
            February = new BillingPeriod(january.End, january.End.AddMonths(1));
        }

        public UsageMeteringService Metering { get; }

        public string[] Customers { get; }

        public BillingPeriod January { get; }

        public BillingPeriod February { get; }

        private IReadOnlyList<Meter> Meters => _property.Meters;

        private string Limited => Meters[0].Key;

        public static async Task<Scenario> CreateAsync(UsageMeteringProperty property, IUsageCounter counter, IUsageEventStore events, Func<IUsageEventStore, int>? storedCount, int index)
        {
            var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(index);
            var store = new InMemoryBillingStore();
            var time = new FakeTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
            var options = new MeteringOptions();
            var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(new BillingOptions()), new RandomIdGenerator(), new MeteredUsageCharges(events, options));
            var plan = await engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
            {
                MeteredPrices = [.. property.Meters.Select(m => new MeteredPrice { Meter = m, Price = new PerUnitPrice(new Money(1, Currency.USD)) })],
                Entitlements = [new Entitlement { Feature = property.Meters[0].Key, Kind = EntitlementKind.MeteredLimit, MeterKey = property.Meters[0].Key, Limit = property.HardLimit, Enforcement = LimitEnforcement.Hard }],
            }).ConfigureAwait(false);
            var clock = await engine.CreateTestClockAsync(start).ConfigureAwait(false);
            var customers = new string[2];
            for (var i = 0; i < customers.Length; i++)
            {
                var customer = await engine.CreateCustomerAsync(new NewCustomer($"C{i}", $"c{i}@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id }).ConfigureAwait(false);
                await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id)).ConfigureAwait(false);
                customers[i] = customer.Id;
            }

            var january = new BillingPeriod(start, start.AddMonths(1));
            await engine.AdvanceTestClockAsync(clock.Id, january.End.AddHours(10)).ConfigureAwait(false); // January is in its grace, its invoice a draft
            return new Scenario(property, new UsageMeteringService(store, counter, events, time, options), events, storedCount, customers, january, options);
        }

        public MeterAggregation AggregationOf(string meterKey) => Meters.Single(m => m.Key == meterKey).Aggregation;

        public async Task ApplyAsync(Op op)
        {
            switch (op.Kind)
            {
                case OpKind.New:
                    await RecordSingleAsync(NewEvent(op)).ConfigureAwait(false);
                    break;
                case OpKind.Duplicate:
                    await RecordSingleAsync(Repeat(op) ?? NewEvent(op)).ConfigureAwait(false);
                    break;
                case OpKind.OverLimit:
                    await RecordSingleAsync(NewEvent(op with { Meter = 0, Quantity = _property.OverLimitBase + (op.Quantity * _property.OverLimitFactor) })).ConfigureAwait(false);
                    break;
                case OpKind.Batch:
                    var batch = Enumerable.Range(0, op.Size).Select(i => i % 3 == 2 ? Repeat(op with { Pick = op.Pick + i }) ?? NewEvent(op with { Meter = (op.Meter + i) % Meters.Count }) : NewEvent(op with { Meter = (op.Meter + i) % Meters.Count, Minute = op.Minute + i })).ToList();
                    batch.Add(batch[0] with { Quantity = batch[0].Quantity + 1 }); // a repeat inside the batch
                    Observe(batch, await Metering.RecordBatchAsync(batch).ConfigureAwait(false));
                    break;
                case OpKind.Concurrent:
                    var calls = Enumerable.Range(0, op.Size).Select(i => i % 4 == 3 ? Repeat(op with { Pick = op.Pick + i }) ?? NewEvent(op) : NewEvent(op with { Meter = (op.Meter + i) % Meters.Count, Customer = (op.Customer + i) % 2 })).ToArray();
                    Observe(calls, await Task.WhenAll(calls.Select(c => Task.Run(() => Metering.RecordAsync(c)))).ConfigureAwait(false));
                    break;
                case OpKind.Rebuild:
                    await Metering.RebuildCountersAsync(op.LatePeriod ? January.Start : February.Start, AggregationOf).ConfigureAwait(false);
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
                        var accepted = _accepted.Values.Where(e => e.CustomerId == customer && e.MeterKey == meter.Key && (e.Timestamp < February.Start) == (period == January)).ToList();
                        var fold = new UsageCounterState();
                        foreach (var e in accepted)
                        {
                            fold.Apply(meter.Aggregation, ToCounterEvent(key, meter, e));
                        }

                        var total = await Metering.GetTotalAsync(key).ConfigureAwait(false);
                        var durable = await Metering.GetDurableTotalAsync(key, meter.Aggregation).ConfigureAwait(false);
                        Assert.True(total == durable && durable == fold.Total, string.Create(CultureInfo.InvariantCulture, $"{key}: counter {total}, durable {durable}, accepted fold {fold.Total}"));
                        Assert.True(meter.Key != Limited || total <= _property.HardLimit, $"{key} passed the hard limit: {total}");
                        var stored = await _events.ListAsync(key).ConfigureAwait(false);
                        Assert.Equal(accepted.Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal), stored.Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
                    }
                }
            }

            if (_storedCount is not null)
            {
                Assert.Equal(_accepted.Count, _storedCount(_events));
            }
        }

        private async Task RecordSingleAsync(UsageEventInput input)
        {
            var expectOverLimit = input.MeterKey == Limited && !_accepted.ContainsKey((input.CustomerId!, input.IdempotencyKey))
                && LimitedTotal(input.CustomerId!, input.Timestamp) + input.Quantity > _property.HardLimit;
            var result = await Metering.RecordAsync(input).ConfigureAwait(false);
            Observe([input], [result]);
            Assert.True(expectOverLimit == (result.Reason == "over_limit"), string.Create(CultureInfo.InvariantCulture, $"{input} → {result}; accepted {Limited} {LimitedTotal(input.CustomerId!, input.Timestamp)}"));
        }

        private long LimitedTotal(string customer, DateTimeOffset timestamp) =>
            _accepted.Values.Where(e => e.CustomerId == customer && e.MeterKey == Limited && (e.Timestamp < February.Start) == (timestamp < February.Start)).Sum(e => e.Quantity);

        private void Observe(IReadOnlyList<UsageEventInput> inputs, IReadOnlyList<UsageIngestResult> results)
        {
            Assert.Equal(inputs.Count, results.Count);
            for (var i = 0; i < inputs.Count; i++)
            {
                var (input, result) = (inputs[i], results[i]);
                Assert.Equal(input.IdempotencyKey, result.IdempotencyKey);
                switch (result.Status)
                {
                    case UsageIngestStatus.Accepted:
                        Assert.True(_accepted.TryAdd((input.CustomerId!, input.IdempotencyKey), input), $"{input.IdempotencyKey} was accepted twice");
                        Assert.Equal(input.Timestamp < February.Start ? January.Start : February.Start, result.Counter!.Value.PeriodStart);
                        break;
                    case UsageIngestStatus.Duplicate:
                        break;
                    default:
                        Assert.True(result.Reason == "over_limit" && input.MeterKey == Limited, $"{input.IdempotencyKey}: unexpected {result.Reason} ({result.Message})");
                        break;
                }
            }

            // A duplicate answer always refers to an accepted key (possibly accepted by a call of the same step).
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
