using System.Collections.Concurrent;
using System.Globalization;
using Billing.Catalog;
using Billing.Engine;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing;
using Billing.Testing.Contracts;
using Billing.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

using static Billing.EntityFrameworkCore.Tests.Support.GroupCommitEvents;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// <see cref="BatchingUsageEventStore"/> (group commit) over the EF Core event store on a real PostgreSQL: concurrent
/// calls share appends and keep their own answers, duplicates across the calls of one batch store one event, a failing
/// batch fails exactly its calls, cancellation only reaches calls still queued, and the queue is bounded.
/// </summary>
/// <remarks>
/// Where a test needs calls to meet in one batch, it holds the flush in progress with <see cref="HeldStore"/>, a
/// pass-through in front of the real store that can make an append wait, and waits until the calls are queued.
/// </remarks>
public sealed class BatchingUsageEventStoreTests : IClassFixture<BatchingUsageEventStoreTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public BatchingUsageEventStoreTests(Database database) => _database = database;

    /// <summary>
    /// 64 callers append 3,000 single events, a fifth of which repeat another caller's key: calls are coalesced
    /// (fewer appends than calls), each key is reported stored exactly once and stored once, as the event reported.
    /// </summary>
    [Fact]
    public async Task Concurrent_single_event_callers_share_appends_and_get_their_own_answers()
    {
        var inner = await _database.Store.Value;
        var store = new BatchingUsageEventStore(inner);
        var customer = NewCustomer();
        var events = new StoredUsageEvent[3_000];
        var unique = events.Length * 4 / 5;
        for (var i = 0; i < events.Length; i++)
        {
            events[i] = i < unique
                ? Event(customer, string.Create(CultureInfo.InvariantCulture, $"k{i}"), Scatter(i, 1_000))
                : events[Scatter(i, unique)] with { Quantity = 5_000 + i };
        }

        events = [.. events.Select((e, i) => (e, Order: Scatter(i, int.MaxValue))).OrderBy(x => x.Order).Select(x => x.e)];
        var next = -1;
        var winners = new ConcurrentDictionary<string, long>();
        var reportedTwice = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < events.Length)
            {
                var answer = Assert.Single(await store.AppendAsync([events[i]]));
                if (answer && !winners.TryAdd(events[i].IdempotencyKey, events[i].Quantity))
                {
                    Interlocked.Increment(ref reportedTwice);
                }
            }
        })));

        Assert.Equal(0, reportedTwice);
        Assert.Equal(unique, winners.Count);
        var listed = await store.ListAsync(Key(customer));
        Assert.Equal(unique, listed.Count);
        Assert.All(listed, e => Assert.Equal(winners[e.IdempotencyKey], e.Quantity));
        var statistics = store.Statistics;
        Assert.Equal(events.Length, statistics.Calls);
        Assert.Equal(events.Length, statistics.Events);
        Assert.True(statistics.Flushes < statistics.Calls, $"{statistics.Flushes} appends for {statistics.Calls} calls: nothing was coalesced");
        Assert.Equal(0, statistics.QueuedCalls);
    }

    /// <summary>
    /// Ten callers with the same key, queued behind a flush in progress, go into one append with five other callers:
    /// exactly one of the ten is reported stored and its event is the one stored; the five others are stored.
    /// </summary>
    [Fact]
    public async Task Duplicates_across_callers_in_one_coalesced_batch_store_exactly_one()
    {
        var held = new HeldStore(await _database.Store.Value);
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions { MaxConcurrentFlushes = 1 });
        var customer = NewCustomer();
        var release = held.HoldNext();
        var leader = store.AppendAsync([Event(customer, "leader", 1)]).AsTask();
        await held.Entered.WaitAsync(Patience);

        var same = Enumerable.Range(0, 10).Select(i => store.AppendAsync([Event(customer, "same", 100 + i)]).AsTask()).ToArray();
        var others = Enumerable.Range(0, 5).Select(i => store.AppendAsync([Event(customer, string.Create(CultureInfo.InvariantCulture, $"other{i}"), i)]).AsTask()).ToArray();
        await WaitUntilAsync(() => store.Statistics.QueuedCalls == 15);
        release();

        Assert.Equal([true], await leader);
        var answers = await Task.WhenAll(same);
        var winner = Assert.Single(Enumerable.Range(0, 10), i => Assert.Single(answers[i]));
        Assert.All(await Task.WhenAll(others), a => Assert.Equal([true], a));
        Assert.Equal([1, 15], held.BatchSizes);
        Assert.Equal(2, store.Statistics.Flushes);
        var stored = await store.ListAsync(Key(customer));
        Assert.Equal(7, stored.Count);
        Assert.Equal(100 + winner, stored.Single(e => e.IdempotencyKey == "same").Quantity);
    }

    /// <summary>
    /// A batch the database rejects (one event breaks a CHECK constraint) fails its three calls with the same exception
    /// and stores none of them; the batch before it and the calls after it are not affected.
    /// </summary>
    [Fact]
    public async Task A_failing_batch_fails_exactly_its_callers()
    {
        var held = new HeldStore(await _database.Store.Value);
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions { MaxConcurrentFlushes = 1 });
        var customer = NewCustomer();
        var release = held.HoldNext();
        var before = store.AppendAsync([Event(customer, "before", 1)]).AsTask();
        await held.Entered.WaitAsync(Patience);

        var good1 = store.AppendAsync([Event(customer, "good1", 2)]).AsTask();
        var bad = store.AppendAsync([Event(new string('c', 300), "bad", 3)]).AsTask(); // customer ids have at most 255 characters
        var good2 = store.AppendAsync([Event(customer, "good2", 4), Event(customer, "good3", 5)]).AsTask();
        await WaitUntilAsync(() => store.Statistics.QueuedCalls == 3);
        release();

        Assert.Equal([true], await before);
        var errors = new List<Exception>();
        foreach (var call in new[] { good1, bad, good2 })
        {
            errors.Add(await Assert.ThrowsAnyAsync<Exception>(() => call));
        }

        Assert.All(errors, e => Assert.Same(errors[0], e));
        Assert.Equal(["before"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey));
        Assert.Equal([true], await store.AppendAsync([Event(customer, "good1", 2)]));
        Assert.Equal([true, false], await store.AppendAsync([Event(customer, "after", 6), Event(customer, "good1", 2)]));
        Assert.Equal(3, store.Statistics.Flushes); // "before" and the two calls after; a failed batch is not counted
    }

    /// <summary>
    /// With <see cref="BatchingUsageEventStoreOptions.RetryCallsAloneWhen"/> accepting the error, the same rejected batch
    /// is appended again call by call, in arrival order: only the bad call fails; the others are stored and answered.
    /// </summary>
    [Fact]
    public async Task A_failing_batch_is_retried_call_by_call_when_the_option_says_so()
    {
        var held = new HeldStore(await _database.Store.Value);
        var retried = new ConcurrentQueue<Exception>();
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions
        {
            MaxConcurrentFlushes = 1,
            RetryCallsAloneWhen = e =>
            {
                retried.Enqueue(e);
                return e is BillingValidationException;
            },
        });
        var customer = NewCustomer();
        var release = held.HoldNext();
        var before = store.AppendAsync([Event(customer, "before", 1)]).AsTask();
        await held.Entered.WaitAsync(Patience);

        var good1 = store.AppendAsync([Event(customer, "good1", 2), Event(customer, "twice", 3)]).AsTask();
        var bad = store.AppendAsync([Event(new string('c', 300), "bad", 3)]).AsTask(); // customer ids have at most 255 characters
        var good2 = store.AppendAsync([Event(customer, "twice", 4), Event(customer, "good2", 5)]).AsTask();
        await WaitUntilAsync(() => store.Statistics.QueuedCalls == 3);
        release();

        Assert.Equal([true], await before);
        Assert.Equal([true, true], await good1);
        await Assert.ThrowsAsync<BillingValidationException>(() => bad);
        Assert.Equal([false, true], await good2);
        Assert.Single(retried); // asked once, for the batch of three; never for a call alone
        Assert.Equal(["before", "good1", "good2", "twice"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
        Assert.Equal([1, 5, 2, 1, 2], held.BatchSizes);
        Assert.Equal(new BatchingUsageEventStoreStatistics(4, 3, 5, 0, 0), store.Statistics);
    }

    /// <summary>
    /// A call cancelled while queued throws and stores nothing, and leaves the other queued calls alone; a call whose
    /// batch is being written ignores its cancellation and gets its answers.
    /// </summary>
    [Fact]
    public async Task Cancellation_reaches_queued_calls_only()
    {
        var held = new HeldStore(await _database.Store.Value);
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions { MaxConcurrentFlushes = 1 });
        var customer = NewCustomer();
        var releaseFirst = held.HoldNext();
        var first = store.AppendAsync([Event(customer, "first", 1)]).AsTask();
        await held.Entered.WaitAsync(Patience);

        using var queuedCancel = new CancellationTokenSource();
        using var sentCancel = new CancellationTokenSource();
        var cancelled = store.AppendAsync([Event(customer, "cancelled", 2)], queuedCancel.Token).AsTask();
        var kept = store.AppendAsync([Event(customer, "kept", 3)]).AsTask();
        var sent = store.AppendAsync([Event(customer, "sent", 4)], sentCancel.Token).AsTask();
        await WaitUntilAsync(() => store.Statistics.QueuedCalls == 3);
        await queuedCancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(2, store.Statistics.QueuedCalls);

        var releaseSecond = held.HoldNext(); // holds the batch of "kept" and "sent"
        releaseFirst();
        Assert.Equal([true], await first);
        await held.Entered.WaitAsync(Patience);
        await sentCancel.CancelAsync();
        releaseSecond();
        Assert.Equal([true], await kept);
        Assert.Equal([true], await sent);
        Assert.Equal(["first", "kept", "sent"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
        Assert.Equal([1, 2], held.BatchSizes);
    }

    /// <summary>A malformed event fails only its own call, at once, and is never queued; the batch around it is written.</summary>
    [Fact]
    public async Task A_malformed_event_fails_only_its_own_call()
    {
        var held = new HeldStore(await _database.Store.Value);
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions { MaxConcurrentFlushes = 1 });
        var customer = NewCustomer();
        var release = held.HoldNext();
        var first = store.AppendAsync([Event(customer, "first", 1)]).AsTask();
        await held.Entered.WaitAsync(Patience);
        var queued = store.AppendAsync([Event(customer, "queued", 2)]).AsTask();
        await WaitUntilAsync(() => store.Statistics.QueuedCalls == 1);

        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await store.AppendAsync([Event(customer, "ok", 3), Event(customer, "negative", -1)]));
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await store.AppendAsync([Event(customer, new string('k', 256), 1)]));
        Assert.Equal(1, store.Statistics.QueuedCalls);
        release();
        Assert.Equal([true], await first);
        Assert.Equal([true], await queued);
        Assert.Equal(["first", "queued"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
    }

    /// <summary>A call with the batch size or more goes to the store on its own; an empty call answers at once.</summary>
    [Fact]
    public async Task Calls_of_the_batch_size_or_more_are_not_coalesced()
    {
        var held = new HeldStore(await _database.Store.Value);
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions { MaxBatchSize = 10 });
        var customer = NewCustomer();
        var big = Enumerable.Range(0, 12).Select(i => Event(customer, string.Create(CultureInfo.InvariantCulture, $"k{i}"), i)).Append(Event(customer, "k0", 99)).ToArray();
        Assert.Equal([.. Enumerable.Repeat(true, 12), false], await store.AppendAsync(big));
        Assert.Empty(await store.AppendAsync([]));
        Assert.Equal([false, true], await store.AppendAsync([Event(customer, "k1", 1), Event(customer, "k12", 1)]));
        Assert.Equal(new BatchingUsageEventStoreStatistics(2, 1, 2, 1, 0), store.Statistics);
        Assert.Equal([13, 2], held.BatchSizes);
    }

    /// <summary>With room for two queued calls, a third caller waits for room (and can be cancelled while it waits).</summary>
    [Fact]
    public async Task A_full_queue_makes_callers_wait_for_room()
    {
        var held = new HeldStore(await _database.Store.Value);
        var store = new BatchingUsageEventStore(held, new BatchingUsageEventStoreOptions { MaxConcurrentFlushes = 1, MaxQueuedCalls = 2 });
        var customer = NewCustomer();
        var release = held.HoldNext();
        var first = store.AppendAsync([Event(customer, "first", 1)]).AsTask();
        await held.Entered.WaitAsync(Patience);
        var queued = new[] { store.AppendAsync([Event(customer, "q1", 1)]).AsTask(), store.AppendAsync([Event(customer, "q2", 1)]).AsTask() };
        await WaitUntilAsync(() => store.Statistics.QueuedCalls == 2);

        using var giveUp = new CancellationTokenSource();
        var waiting = store.AppendAsync([Event(customer, "w1", 1)], giveUp.Token).AsTask();
        var patient = store.AppendAsync([Event(customer, "w2", 1)]).AsTask();
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        Assert.False(patient.IsCompleted);
        Assert.Equal(2, store.Statistics.QueuedCalls);
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        release();
        Assert.Equal([true], await first);
        Assert.All(await Task.WhenAll(queued), a => Assert.Equal([true], a));
        Assert.Equal([true], await patient);
        Assert.Equal(["first", "q1", "q2", "w2"], (await store.ListAsync(Key(customer))).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// The metering service of <c>AddBilling</c> on the EF Core counter and a batching event store: 64 callers record
    /// 1,280 single events at once, then repeat every 8th of them at once. The first pass is accepted, the repeats are
    /// duplicates, and the durable events, the counter and the rows completed by the coalesced appends agree.
    /// </summary>
    /// <remarks>
    /// The repeats come after the originals: an original and its repeat recorded at the same moment can end as two
    /// duplicates (when the repeat's append completes the row first, the service rebuilds the counter), which is the
    /// service's behaviour with or without the batching store, not the subject here.
    /// </remarks>
    [Fact]
    public async Task The_metering_service_records_concurrent_single_events_through_the_batching_store()
    {
        var schema = string.Create(CultureInfo.InvariantCulture, $"batching_metering_{Environment.ProcessId}");
        // 64 callers share 16 connections (they wait for one), so that the test leaves room on the shared server.
        var cs = new Npgsql.NpgsqlConnectionStringBuilder(await _database.ConnectionString.Value) { MaxPoolSize = 16, Timeout = 60 }.ConnectionString;
        var services = new ServiceCollection();
        services.AddBilling().AddEntityFrameworkCore(o => o.UseNpgsql(cs), schema).AddFakePaymentGateway();
        services.Replace(ServiceDescriptor.Singleton<IUsageEventStore>(sp => new BatchingUsageEventStore(sp.GetRequiredService<EntityFrameworkUsageEventStore>())));
        await using var container = services.BuildServiceProvider();
        await container.GetRequiredService<Billing.EntityFrameworkCore.Migrations.BillingMigrator>().MigrateAsync();
        var batching = Assert.IsType<BatchingUsageEventStore>(container.GetRequiredService<IUsageEventStore>());
        var engine = container.GetRequiredService<BillingEngine>();
        var metering = container.GetRequiredService<UsageMeteringService>();
        var counter = container.GetRequiredService<IUsageCounter>();

        var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var plan = await engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
        {
            MeteredPrices = [new MeteredPrice { Meter = new Meter { Key = "api_calls" }, Price = new PerUnitPrice(new Money(1, Currency.USD)) }],
        });
        var clock = await engine.CreateTestClockAsync(start);
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa, TestClockId = clock.Id, TimeZoneId = "Etc/UTC" });
        await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await engine.AdvanceTestClockAsync(clock.Id, start.AddDays(10));

        async Task<UsageIngestResult[]> RecordAllAsync(string[] keys)
        {
            var results = new UsageIngestResult[keys.Length];
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < keys.Length)
                {
                    results[i] = await metering.RecordAsync(new UsageEventInput
                    {
                        CustomerId = customer.Id, MeterKey = "api_calls", Quantity = 2, Timestamp = start.AddDays(5), IdempotencyKey = keys[i],
                        Properties = new Dictionary<string, string> { ["caller"] = "test" },
                    });
                }
            })));
            return results;
        }

        var originals = Enumerable.Range(0, 1_280).Select(i => string.Create(CultureInfo.InvariantCulture, $"e{i}")).ToArray();
        Assert.All(await RecordAllAsync(originals), r => Assert.True(r.Status == UsageIngestStatus.Accepted, r.Reason + ": " + r.Message));
        Assert.All(await RecordAllAsync([.. originals.Where((_, i) => i % 8 == 0)]), r => Assert.Equal((UsageIngestStatus.Duplicate, true), (r.Status, r.Total > 0)));

        var distinct = originals.Length;
        var key = new UsageCounterKey(customer.Id, "api_calls", start);
        Assert.Equal(2L * distinct, await counter.GetTotalAsync(key));
        Assert.Equal(2L * distinct, await metering.GetDurableTotalAsync(key, MeterAggregation.Sum));
        var stored = await batching.ListAsync(key);
        Assert.Equal(distinct, stored.Count);
        Assert.All(stored, e => Assert.Equal("test", e.Properties["caller"])); // every counted row was completed by its append
        Assert.True(batching.Statistics.Flushes < batching.Statistics.Calls);
    }

    /// <summary>
    /// Passes appends to the real store and records their sizes; after <see cref="HoldNext"/>, the next append waits
    /// (after signalling <see cref="Entered"/>) until the returned action is called.
    /// </summary>
    private sealed class HeldStore(IUsageEventStore inner) : IUsageEventStore
    {
        private readonly ConcurrentQueue<int> _sizes = new();
        private TaskCompletionSource? _hold;
        private TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Entered => _entered.Task;

        public int[] BatchSizes => [.. _sizes];

        public Action HoldNext()
        {
            var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _hold, hold);
            return () => hold.TrySetResult();
        }

        public async ValueTask<IReadOnlyList<bool>> AppendAsync(IReadOnlyList<StoredUsageEvent> events, CancellationToken cancellationToken = default)
        {
            _sizes.Enqueue(events.Count);
            if (Interlocked.Exchange(ref _hold, null) is { } hold)
            {
                _entered.TrySetResult();
                await hold.Task;
            }

            return await inner.AppendAsync(events, cancellationToken);
        }

        public ValueTask<StoredUsageEvent?> FindAsync(string customerId, string idempotencyKey, CancellationToken cancellationToken = default) => inner.FindAsync(customerId, idempotencyKey, cancellationToken);

        public ValueTask<IReadOnlyList<StoredUsageEvent>> ListAsync(UsageCounterKey counter, CancellationToken cancellationToken = default) => inner.ListAsync(counter, cancellationToken);

        public ValueTask<IReadOnlyList<UsageCounterKey>> ListCountersAsync(DateTimeOffset periodStart, CancellationToken cancellationToken = default) => inner.ListCountersAsync(periodStart, cancellationToken);

        public ValueTask<long> AggregateAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default) => inner.AggregateAsync(counter, aggregation, cancellationToken);
    }

    /// <summary>One PostgreSQL database and migrated schema for the class.</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("usage_batching"));

        /// <summary>The event store on a migrated schema of the database.</summary>
        public Lazy<Task<EntityFrameworkUsageEventStore>> Store { get; }

        /// <summary>Creates the fixture.</summary>
        public Database() => Store = new(async () =>
        {
            var cs = await ConnectionString.Value;
            var store = EntityFrameworkUsageEventStore.ForPostgreSql(cs, "batching_events");
            await store.MigrateAsync();
            return store;
        });
    }
}

/// <summary>The usage event store contract through <see cref="BatchingUsageEventStore"/> on the EF Core store on PostgreSQL.</summary>
public sealed class BatchingPostgreSqlUsageEventStoreContractTests : UsageEventStoreContract, IClassFixture<PostgreSqlUsageEventStoreContractTests.Database>
{
    private readonly PostgreSqlUsageEventStoreContractTests.Database _database;

    /// <summary>Creates the test class.</summary>
    public BatchingPostgreSqlUsageEventStoreContractTests(PostgreSqlUsageEventStoreContractTests.Database database) => _database = database;

    /// <inheritdoc />
    protected override async ValueTask<IUsageEventStore> CreateStoreAsync() => new BatchingUsageEventStore(await _database.Store.Value);
}
