using Billing.Catalog;
using Billing.Customers;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Tests.Engine;
using Billing.Tests.Support;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// <see cref="MeteringOptions.ResolutionCacheDuration"/>: what the metering service reuses between batches is dropped by
/// every commit through the same store, and what another process changed is seen once the duration has passed.
/// </summary>
public sealed class ResolutionCacheTests
{
    private static readonly MeteringOptions Cached = new() { ResolutionCacheDuration = TimeSpan.FromSeconds(1) };

    private static async Task<(Plan Metered, Plan Other, Customer Customer)> CatalogAsync(EngineHarness h)
    {
        var metered = await h.Engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(Usd(1_000)), BillingInterval.Monthly) { MeteredPrices = [UsagePrices.GraduatedApiCalls] });
        var other = await h.Engine.CreatePlanAsync(new NewPlan("Flat", new FlatPrice(Usd(500)), BillingInterval.Monthly));
        var customer = await h.Engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa });
        return (metered, other, customer);
    }

    /// <summary>
    /// A service as another process has it (the same data, none of the engine's commits reported to it), a subscribed
    /// customer, and a first event that put the customer in its cache.
    /// </summary>
    private static async Task<(UsageMeteringService Metering, Plan Metered, Customer Customer, Subscription Subscription)> AnotherProcessAsync(EngineHarness h)
    {
        var metering = new UsageMeteringService(new Unreported(h.Store), new InMemoryUsageCounter(), new InMemoryUsageEventStore(), h.Time, Cached);
        var (metered, _, customer) = await CatalogAsync(h);
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, metered.Id));
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(customer.Id, "a", h.Time.GetUtcNow()))).Status);
        return (metering, metered, customer, subscription);
    }

    private static UsageEventInput Call(string customer, string key, DateTimeOffset at) =>
        new() { CustomerId = customer, MeterKey = "api_calls", Quantity = 1, Timestamp = at, IdempotencyKey = key };

    [Fact]
    public async Task The_cache_stays_bounded_and_refreshing_an_entry_at_the_bound_keeps_the_others()
    {
        var h = new EngineHarness();
        var cache = ResolutionCache.For(h.Store, h.Time, TimeSpan.FromMinutes(1))!;
        var (_, _, customer) = await CatalogAsync(h);
        for (var i = 0; i < ResolutionCache.MaxEntries; i++)
        {
            cache.AddCustomer(cache.Version, customer with { Id = $"cus_{i}" }, []);
        }

        // A customer read again (its entry replaced) does not grow the map: nothing is cleared.
        cache.AddCustomer(cache.Version, customer with { Id = "cus_7" }, []);
        Assert.True(cache.TryGetCustomer("cus_0", out _));
        Assert.True(cache.TryGetCustomer("cus_7", out _));

        // A new customer at the bound clears the map first.
        cache.AddCustomer(cache.Version, customer with { Id = "cus_new" }, []);
        Assert.False(cache.TryGetCustomer("cus_0", out _));
        Assert.True(cache.TryGetCustomer("cus_new", out _));
    }

    [Fact]
    public async Task Commits_through_the_same_store_are_seen_by_the_next_batch_at_once()
    {
        var h = new EngineHarness();
        var metering = new UsageMeteringService(h.Store, new InMemoryUsageCounter(), new InMemoryUsageEventStore(), h.Time, Cached);
        var (metered, other, customer) = await CatalogAsync(h);

        Assert.Equal("no_subscription_for_meter", (await metering.RecordAsync(Call(customer.Id, "a", h.Time.GetUtcNow()))).Reason);
        var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, metered.Id));
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(customer.Id, "b", h.Time.GetUtcNow()))).Status);

        // Named by subscription too (served from the customer's cached subscriptions).
        var bySubscription = await metering.RecordAsync(new UsageEventInput { SubscriptionId = subscription.Id, MeterKey = "api_calls", Quantity = 1, Timestamp = h.Time.GetUtcNow(), IdempotencyKey = "c" });
        Assert.Equal((UsageIngestStatus.Accepted, subscription.Id), (bySubscription.Status, bySubscription.SubscriptionId));

        await h.Engine.ChangeSubscriptionAsync(subscription.Id, new SubscriptionChange { PlanId = other.Id, ProrationBehavior = ProrationBehavior.None });
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("no_subscription_for_meter", (await metering.RecordAsync(Call(customer.Id, "d", h.Time.GetUtcNow()))).Reason);
    }

    [Fact]
    public async Task Changes_the_store_does_not_report_are_seen_once_the_duration_has_passed()
    {
        var h = new EngineHarness();
        var (metering, _, customer, subscription) = await AnotherProcessAsync(h);

        await h.Engine.CancelSubscriptionAsync(subscription.Id);
        h.Time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(customer.Id, "b", h.Time.GetUtcNow()))).Status); // still the cached state
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("no_subscription_for_meter", (await metering.RecordAsync(Call(customer.Id, "c", h.Time.GetUtcNow()))).Reason);
    }

    [Fact]
    public async Task A_read_ahead_made_anyway_refreshes_the_batchs_customers_whose_entries_lived_half_the_duration()
    {
        var h = new EngineHarness();
        var (metering, metered, ada, subscription) = await AnotherProcessAsync(h);
        async Task<Customer> SubscribedAsync(string name)
        {
            var customer = await h.Engine.CreateCustomerAsync(new NewCustomer(name, $"{name}@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa });
            await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, metered.Id));
            return customer;
        }

        var bob = await SubscribedAsync("bob");
        var carl = await SubscribedAsync("carl");
        await h.Engine.CancelSubscriptionAsync(subscription.Id); // another process's change

        // Bob is read; Ada's entry is younger than half the duration: not read again, still the cached state.
        h.Time.Advance(TimeSpan.FromMilliseconds(499));
        var batch = await metering.RecordBatchAsync([Call(bob.Id, "b", h.Time.GetUtcNow()), Call(ada.Id, "c", h.Time.GetUtcNow())]);
        Assert.Equal([UsageIngestStatus.Accepted, UsageIngestStatus.Accepted], batch.Select(r => r.Status));

        // Carl is read, and Ada with him (half the duration): the batch sees the cancellation.
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        batch = await metering.RecordBatchAsync([Call(carl.Id, "d", h.Time.GetUtcNow()), Call(ada.Id, "e", h.Time.GetUtcNow())]);
        Assert.Equal(UsageIngestStatus.Accepted, batch[0].Status);
        Assert.Equal("no_subscription_for_meter", batch[1].Reason);

        // The refreshed entry lives a whole duration from its read: a later change is seen once that has passed.
        await h.Engine.CreateSubscriptionAsync(new NewSubscription(ada.Id, metered.Id));
        h.Time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Equal("no_subscription_for_meter", (await metering.RecordAsync(Call(ada.Id, "f", h.Time.GetUtcNow()))).Reason);
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(ada.Id, "g", h.Time.GetUtcNow()))).Status);
    }

    [Fact]
    public async Task Without_a_duration_or_with_a_store_that_does_not_report_nothing_is_cached()
    {
        var h = new EngineHarness();
        var (metered, _, customer) = await CatalogAsync(h);
        foreach (var metering in new[]
        {
            new UsageMeteringService(h.Store, new InMemoryUsageCounter(), new InMemoryUsageEventStore(), h.Time, new MeteringOptions()),
            new UsageMeteringService(new Silent(h.Store), new InMemoryUsageCounter(), new InMemoryUsageEventStore(), h.Time, Cached),
        })
        {
            var subscription = await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, metered.Id));
            Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call(customer.Id, "a", h.Time.GetUtcNow()))).Status);
            await h.Engine.CancelSubscriptionAsync(subscription.Id);
            h.Time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.Equal("no_subscription_for_meter", (await metering.RecordAsync(Call(customer.Id, "b", h.Time.GetUtcNow()))).Reason);
        }
    }

    [Fact]
    public void The_duration_is_validated()
    {
        Assert.Throws<BillingValidationException>(() => new MeteringOptions { ResolutionCacheDuration = TimeSpan.FromSeconds(-1) }.Validate());
        Assert.Throws<BillingValidationException>(() => new MeteringOptions { ResolutionCacheDuration = TimeSpan.FromMinutes(1) + TimeSpan.FromTicks(1) }.Validate());
        new MeteringOptions { ResolutionCacheDuration = TimeSpan.FromMinutes(1) }.Validate();
    }

    /// <summary>
    /// For any sequence of subscribing, cancelling, changing plans, renewing and recording, a service with the cache
    /// answers every event exactly as one without it (two worlds run the same steps; ids differ, answers must not).
    /// </summary>
    [Fact]
    public void For_any_sequence_of_changes_the_cached_service_answers_like_the_uncached_one()
    {
        var steps = from n in Gen.Choose(1, 30) from ops in Gen.ArrayOf(Gen.Choose(0, 99), n) select ops;
        Props.ForAll(steps, ops => CompareAsync(ops).GetAwaiter().GetResult(), maxTest: 60);
    }

    private static async Task CompareAsync(int[] ops)
    {
        var cached = await World.CreateAsync(Cached);
        var plain = await World.CreateAsync(new MeteringOptions());
        for (var i = 0; i < ops.Length; i++)
        {
            var a = await cached.StepAsync(ops[i], i);
            var b = await plain.StepAsync(ops[i], i);
            Assert.True(a == b, $"step {i} (op {ops[i]}): cached '{a}', uncached '{b}'");
        }
    }

    /// <summary>One engine, store and metering service, with two customers and three plans (two metered); ids are sequential, so both worlds order alike.</summary>
    private sealed class World
    {
        private readonly Harness _h = new();
        private readonly Plan[] _plans = new Plan[3];
        private readonly Customer[] _customers = new Customer[2];
        private UsageMeteringService _metering = null!;

        public static async Task<World> CreateAsync(MeteringOptions options)
        {
            var world = new World();
            var h = world._h;
            world._plans[0] = await h.Engine.CreatePlanAsync(new NewPlan("A", new FlatPrice(Usd(1_000)), BillingInterval.Monthly) { MeteredPrices = [UsagePrices.GraduatedApiCalls] });
            world._plans[1] = await h.Engine.CreatePlanAsync(new NewPlan("B", new FlatPrice(Usd(2_000)), BillingInterval.Monthly) { MeteredPrices = [UsagePrices.GraduatedApiCalls] });
            world._plans[2] = await h.Engine.CreatePlanAsync(new NewPlan("C", new FlatPrice(Usd(500)), BillingInterval.Monthly));
            for (var c = 0; c < 2; c++)
            {
                world._customers[c] = await h.Engine.CreateCustomerAsync(new NewCustomer("C" + c, "c@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa });
            }

            world._metering = new UsageMeteringService(h.Store, new InMemoryUsageCounter(), new InMemoryUsageEventStore(), h.Time, options);
            return world;
        }

        /// <summary>Runs one step; returns what it answered (a status, a reason and a total, or what the engine did).</summary>
        public async Task<string> StepAsync(int op, int index)
        {
            var customer = _customers[op % 2];
            IReadOnlyList<Subscription> all;
            await using (var session = await _h.Store.BeginAsync())
            {
                all = await session.Subscriptions.ListByCustomerAsync(customer.Id);
            }

            var live = all.Where(s => s.Status is SubscriptionStatus.Active or SubscriptionStatus.PastDue).OrderBy(s => s.CreatedAt).ToList();
            var plan = _plans[op / 2 % 3];
            try
            {
                switch (op / 6 % 6)
                {
                    case 0:
                        await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
                        return "subscribed";
                    case 1 when live.Count > 0:
                        await _h.Engine.CancelSubscriptionAsync(live[0].Id, atPeriodEnd: op % 4 == 0);
                        return "canceled";
                    case 2 when live.Count > 0 && live[^1].PlanId != plan.Id:
                        await _h.Engine.ChangeSubscriptionAsync(live[^1].Id, new SubscriptionChange { PlanId = plan.Id, ProrationBehavior = ProrationBehavior.None });
                        return "changed";
                    case 3:
                        _h.Time.Advance(TimeSpan.FromDays(op % 20 + 1));
                        await _h.Engine.AdvanceAsync(_h.Time.GetUtcNow());
                        return "advanced";
                    default:
                        var result = await _metering.RecordAsync(new UsageEventInput
                        {
                            CustomerId = customer.Id,
                            MeterKey = "api_calls",
                            Quantity = op % 7,
                            Timestamp = _h.Time.GetUtcNow() - TimeSpan.FromHours(op % 3 * 12),
                            IdempotencyKey = "e" + (op % 5 == 0 ? index - 1 : index),
                        });
                        return $"{result.Status} {result.Reason} {result.Total}";
                }
            }
            catch (InvalidStateTransitionException)
            {
                return "invalid";
            }
        }
    }

    /// <summary>An engine over an in-memory store with sequential ids.</summary>
    private sealed class Harness
    {
        public Harness() => Engine = new BillingEngine(Store, new Billing.Testing.Payments.FakePaymentGateway(), Time, Microsoft.Extensions.Options.Options.Create(new BillingOptions()), new SequentialIds(), new NoUsageCharges());

        public InMemoryBillingStore Store { get; } = new();

        public Billing.Testing.Time.FakeTimeProvider Time { get; } = new(Utc(2025, 1, 1));

        public BillingEngine Engine { get; }
    }

    private sealed class SequentialIds : IBillingIdGenerator
    {
        private int _next;

        public string NewId(string prefix) => $"{prefix}_{Interlocked.Increment(ref _next):D8}";
    }

    /// <summary>The store as another process sees it: the same data, and a report of none of the commits.</summary>
    private sealed class Unreported(IBillingStore inner) : IBillingStore, IBillingStoreChanges
    {
        private readonly BillingStoreChangeFeed _never = new();

        public ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default) => inner.BeginAsync(cancellationToken);

        public IDisposable Subscribe(Action<BillingStoreChange> committed) => _never.Subscribe(committed);
    }

    /// <summary>A store that does not report its commits at all.</summary>
    private sealed class Silent(IBillingStore inner) : IBillingStore
    {
        public ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default) => inner.BeginAsync(cancellationToken);
    }
}
