using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing.Payments;
using Billing.Testing.Time;
using Billing.Usage;
using Microsoft.Extensions.Options;
using Xunit;

namespace Billing.Testing.Contracts;

/// <summary>
/// The concurrent-repeat race through <see cref="UsageMeteringService"/>, for any fast counter (one that is not
/// <see cref="IUsageCounter.IsDurable"/>) in front of any durable event store, made deterministic by a gate around the
/// store: an event E is counted (accepted) and its append is held at the gate; its repeat E' (the same event) is then
/// counted (duplicate, with E's acceptance token) and appended first; only then does E's append go on and find the key
/// stored already. E must stay "accepted", E' answer "duplicate" with E's total, no counter is rebuilt, and the counter
/// equals the durable aggregate (every event counted exactly once). Optionally, the counter forgetting its keys (a
/// flush) still turns a replay into "duplicate" and rebuilds the counter.
/// </summary>
/// <remarks>
/// Each run builds its own scenario: an in-memory billing store and engine, one customer on a test clock subscribed to
/// a plan with one metered price (sum), advanced ten days into its first period (1 January 2025). The customer id is
/// new for each run, so runs can share one counter and one durable store (one server, one database).
/// </remarks>
public static class UsageMeteringRepeatRace
{
    private static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Runs the race for a single event and for a batch, then (when <paramref name="forgetCounters"/> is given) the
    /// forgotten-key path.
    /// </summary>
    /// <param name="counter">The fast counter.</param>
    /// <param name="events">The durable event store.</param>
    /// <param name="forgetCounters">Makes the counter lose every key and total (a Redis <c>FLUSHALL</c>), or null to skip that part.</param>
    /// <returns>The check.</returns>
    public static async Task CheckAsync(IUsageCounter counter, IUsageEventStore events, Func<Task>? forgetCounters = null)
    {
        ArgumentNullException.ThrowIfNull(counter);
        ArgumentNullException.ThrowIfNull(events);
        Assert.False(counter.IsDurable, "The race is about a fast counter in front of the durable store.");
        var gate = new GatedUsageEventStore(events);
        var store = new InMemoryBillingStore();
        var time = new FakeTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new MeteringOptions();
        var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(new BillingOptions()), new RandomIdGenerator(), new MeteredUsageCharges(events, options));
        var plan = await engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
        {
            MeteredPrices = [new MeteredPrice { Meter = new Meter { Key = "calls" }, Price = new PerUnitPrice(new Money(1, Currency.USD)) }],
        }).ConfigureAwait(false);
        var clock = await engine.CreateTestClockAsync(Start).ConfigureAwait(false);
        var customer = (await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id }).ConfigureAwait(false)).Id;
        await engine.CreateSubscriptionAsync(new NewSubscription(customer, plan.Id)).ConfigureAwait(false);
        await engine.AdvanceTestClockAsync(clock.Id, Start.AddDays(10)).ConfigureAwait(false);
        var metering = new UsageMeteringService(store, counter, gate, time, options);
        var key = new UsageCounterKey(customer, "calls", Start);
        UsageEventInput Event(string id, long quantity) => new() { CustomerId = customer, MeterKey = "calls", Quantity = quantity, Timestamp = Start.AddDays(9), IdempotencyKey = id };

        // Warm up: an ordinary event (connects, loads scripts, creates the counter).
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Event("warm", 1)).ConfigureAwait(false)).Status);

        // One event: E is held at the store after counting; its repeat is counted and stored first.
        var e = Event("e1", 5);
        var (original, repeat) = await RaceAsync(gate, "e1", () => metering.RecordAsync(e), () => metering.RecordAsync(e)).ConfigureAwait(false);
        Assert.Equal((UsageIngestStatus.Accepted, 6L), (original.Status, original.Total!.Value));
        Assert.Equal((UsageIngestStatus.Duplicate, 6L), (repeat.Status, repeat.Total!.Value));

        // Batches: E's batch carries another new event, and so does its repeat's.
        var (originals, repeats) = await RaceAsync(
            gate,
            "e2",
            () => metering.RecordBatchAsync([Event("e2", 10), Event("n1", 100)]),
            () => metering.RecordBatchAsync([Event("n2", 1_000), Event("e2", 10)])).ConfigureAwait(false);
        Assert.Equal([(UsageIngestStatus.Accepted, 16L), (UsageIngestStatus.Accepted, 116L)], originals.Select(r => (r.Status, r.Total!.Value)));
        Assert.Equal([(UsageIngestStatus.Accepted, 1_116L), (UsageIngestStatus.Duplicate, 16L)], repeats.Select(r => (r.Status, r.Total!.Value)));

        Assert.Equal(0, gate.Lists); // no counter was rebuilt
        Assert.Equal(1_116, await metering.GetTotalAsync(key).ConfigureAwait(false));
        Assert.Equal(1_116, await metering.GetDurableTotalAsync(key, MeterAggregation.Sum).ConfigureAwait(false));
        Assert.Equal(["e1", "e2", "n1", "n2", "warm"], (await events.ListAsync(key).ConfigureAwait(false)).Select(s => s.IdempotencyKey).Order(StringComparer.Ordinal));
        Assert.NotNull((await events.FindAsync(customer, "e1").ConfigureAwait(false))!.AcceptanceToken);

        // A later repeat is a duplicate as usual.
        Assert.Equal((UsageIngestStatus.Duplicate, 6L), await StatusAsync(metering.RecordAsync(e)).ConfigureAwait(false));
        Assert.Equal(0, gate.Lists);

        if (forgetCounters is null)
        {
            return;
        }

        // The counter forgets every key (a flush): a replay is counted again by it, but the durable row names another
        // acceptance, so the replay is a duplicate and the counter is rebuilt from the durable events.
        await forgetCounters().ConfigureAwait(false);
        Assert.Equal(0, await metering.GetTotalAsync(key).ConfigureAwait(false));
        var replay = await metering.RecordAsync(Event("n1", 100)).ConfigureAwait(false);
        Assert.Equal(UsageIngestStatus.Duplicate, replay.Status);
        Assert.Equal(1, gate.Lists);
        Assert.Equal(1_116, await metering.GetTotalAsync(key).ConfigureAwait(false));
        Assert.Equal(UsageIngestStatus.Duplicate, (await metering.RecordAsync(e).ConfigureAwait(false)).Status); // the rebuilt key
        Assert.Equal((UsageIngestStatus.Accepted, 1_117L), await StatusAsync(metering.RecordAsync(Event("after", 1))).ConfigureAwait(false));
        Assert.Equal(1_117, await metering.GetDurableTotalAsync(key, MeterAggregation.Sum).ConfigureAwait(false));
        Assert.Equal(1, gate.Lists);
    }

    private static async Task<(UsageIngestStatus, long)> StatusAsync(Task<UsageIngestResult> call)
    {
        var result = await call.ConfigureAwait(false);
        return (result.Status, result.Total!.Value);
    }

    /// <summary>Sends the original, waits until its append reaches the store (it was counted), sends the repeat to the end, then lets the original's append go on.</summary>
    private static async Task<(T Original, T Repeat)> RaceAsync<T>(GatedUsageEventStore gate, string heldKey, Func<Task<T>> sendOriginal, Func<Task<T>> sendRepeat)
    {
        var held = gate.HoldNextAppendOf(heldKey);
        var original = Task.Run(sendOriginal);
        await held.WaitAsync(Patience).ConfigureAwait(false);
        T repeat;
        try
        {
            repeat = await sendRepeat().WaitAsync(Patience).ConfigureAwait(false);
            Assert.False(original.IsCompleted, "The original finished before its repeat was stored.");
        }
        finally
        {
            gate.Release();
        }

        return (await original.WaitAsync(Patience).ConfigureAwait(false), repeat);
    }

    /// <summary>The real durable store behind a gate that can hold one append, and a count of the counter rebuilds' reads.</summary>
    private sealed class GatedUsageEventStore(IUsageEventStore inner) : IUsageEventStore
    {
        private TaskCompletionSource? _reached;
        private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private string? _heldKey;
        private int _lists;

        /// <summary>How many times a counter's events were listed (each counter rebuild lists them once).</summary>
        public int Lists => Volatile.Read(ref _lists);

        /// <summary>Holds the next append that carries <paramref name="key"/>; the task completes when it arrives.</summary>
        public Task HoldNextAppendOf(string key)
        {
            _release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _heldKey, key);
            return _reached.Task;
        }

        public void Release() => _release.TrySetResult();

        public async ValueTask<IReadOnlyList<bool>> AppendAsync(IReadOnlyList<StoredUsageEvent> events, CancellationToken cancellationToken = default)
        {
            if (Volatile.Read(ref _heldKey) is { } key && events.Any(e => e.IdempotencyKey == key) && Interlocked.CompareExchange(ref _heldKey, null, key) == key)
            {
                var release = _release;
                _reached!.TrySetResult();
                await release.Task.ConfigureAwait(false);
            }

            return await inner.AppendAsync(events, cancellationToken).ConfigureAwait(false);
        }

        public ValueTask<IReadOnlyList<StoredUsageEvent>> ListAsync(UsageCounterKey counter, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _lists);
            return inner.ListAsync(counter, cancellationToken);
        }

        public ValueTask<StoredUsageEvent?> FindAsync(string customerId, string idempotencyKey, CancellationToken cancellationToken = default) =>
            inner.FindAsync(customerId, idempotencyKey, cancellationToken);

        public ValueTask<IReadOnlyList<UsageCounterKey>> ListCountersAsync(DateTimeOffset periodStart, CancellationToken cancellationToken = default) =>
            inner.ListCountersAsync(periodStart, cancellationToken);

        public ValueTask<long> AggregateAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default) =>
            inner.AggregateAsync(counter, aggregation, cancellationToken);
    }
}
