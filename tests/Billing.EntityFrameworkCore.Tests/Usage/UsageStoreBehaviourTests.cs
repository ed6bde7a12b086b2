using System.Globalization;
using Billing.Customers;
using Billing.EntityFrameworkCore.Model;
using Billing.EntityFrameworkCore.Storage;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.Ports;
using Billing.Testing;
using Billing.Testing.Payments;
using Billing.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// The usage tables beyond the contracts: the migration from version 2 with data, the counter and the event store
/// sharing keys, races on one key across meters, the host model, DI, batches from several writers on PostgreSQL, and
/// the migration to one counter index.
/// </summary>
public sealed class UsageStoreBehaviourTests : IClassFixture<UsageStoreBehaviourTests.Database>, IClassFixture<SqliteFiles>
{
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private static int _schemas;
    private readonly Database _database;
    private readonly SqliteFiles _sqlite;

    /// <summary>Creates the test class.</summary>
    public UsageStoreBehaviourTests(Database database, SqliteFiles sqlite)
    {
        _database = database;
        _sqlite = sqlite;
    }

    /// <summary>A provider.</summary>
    public static TheoryData<BillingDatabaseProvider> Providers => new() { BillingDatabaseProvider.PostgreSql, BillingDatabaseProvider.Sqlite };

    /// <summary>
    /// A database at version 2 with a customer in it migrates to version 3: the customer is still there, and the new
    /// usage tables take events through the store and the counter.
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_database_at_version_2_with_data_migrates_to_the_usage_tables(BillingDatabaseProvider provider)
    {
        var (store, usage, counter) = await NewAsync(provider, migrate: false);
        Assert.Equal([1, 2], await store.Migrator.MigrateAsync(targetVersion: 2));
        await using (var session = await store.BeginAsync())
        {
            session.Customers.Add(Customer("cus_before_usage"));
            await session.CommitAsync();
        }

        Assert.Equal([3, 4, 5, 6, 7, 8, 9], await usage.MigrateAsync());
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9], await store.Migrator.GetAppliedVersionsAsync());
        Assert.Empty(await counter.MigrateAsync());
        await using (var session = await store.BeginAsync())
        {
            Assert.Equal("Ada", (await session.Customers.GetAsync("cus_before_usage"))!.Name);
        }

        var key = new UsageCounterKey("cus_before_usage", "api_calls", PeriodStart);
        Assert.Equal([true, false], await usage.AppendAsync([Stored(key, "e1", 4), Stored(key, "e1", 9)]));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 6), await counter.RecordAsync(Counted(key, "e2", 6)));
        Assert.Equal(10, await usage.AggregateAsync(key, MeterAggregation.Sum));
        Assert.Equal([key], await usage.ListCountersAsync(PeriodStart));
    }

    /// <summary>
    /// A database at version 3 with usage events migrates to version 4: the two counter and period indexes become one
    /// (period_start, customer_id, meter_key) index, and the events read back exactly as before (list order, every
    /// aggregate, the counters of each period), also for events appended after the migration; on to version 7, the
    /// rows from before have no acceptance token (null).
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_database_at_version_3_with_usage_events_migrates_to_one_counter_index(BillingDatabaseProvider provider)
    {
        var pg = provider == BillingDatabaseProvider.PostgreSql;
        var schema = string.Create(CultureInfo.InvariantCulture, $"usage_v3_{Interlocked.Increment(ref _schemas)}");
        var cs = pg ? await _database.ConnectionString.Value : _sqlite.NewConnectionString();
        var usage = pg ? EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema) : EntityFrameworkUsageEventStore.ForSqlite(cs);
        Assert.Equal([1, 2, 3], await usage.Migrator.MigrateAsync(targetVersion: 3));
        Assert.Equal(["ix_usage_events_counter", "ix_usage_events_period", "ix_usage_events_unique_value", "pk_usage_events"], (await UsageEventIndexesAsync(pg, cs, schema)).Keys);

        var customer = NewCustomer();
        var march = new UsageCounterKey(customer, "api_calls", PeriodStart);
        var april = march with { PeriodStart = PeriodStart.AddMonths(1) };
        var users = march with { MeterKey = "users" };
        StoredUsageEvent At(UsageCounterKey key, string id, long quantity, int minute, string? user = null) =>
            Stored(key, id, quantity) with { Timestamp = key.PeriodStart.AddMinutes(minute), UniqueValue = user };
        await InsertAtVersion3Async(pg, cs, schema, [At(march, "b", 7, 10), At(march, "a", 3, 10), At(march, "c", 1, 5), At(april, "d", 4, 1), At(users, "u1", 1, 1, "ada"), At(users, "u2", 1, 2, "bob")]);

        Assert.Equal([4, 5, 6, 7, 8, 9], await usage.MigrateAsync());
        Assert.All(await usage.ListAsync(march), e => Assert.Null(e.AcceptanceToken)); // version 8: rows from before have no token
        var indexes = await UsageEventIndexesAsync(pg, cs, schema);
        Assert.Equal(["ix_usage_events_counter", "ix_usage_events_unique_value", "pk_usage_events"], indexes.Keys);
        Assert.Equal(["period_start", "customer_id", "meter_key"], indexes["ix_usage_events_counter"]);

        Assert.Equal([true, false], await usage.AppendAsync([At(march, "e", 2, 10), At(march, "a", 50, 1)]));
        Assert.Equal(["c", "a", "b", "e"], (await usage.ListAsync(march)).Select(e => e.IdempotencyKey));
        Assert.Equal(13, await usage.AggregateAsync(march, MeterAggregation.Sum));
        Assert.Equal(4, await usage.AggregateAsync(march, MeterAggregation.Count));
        Assert.Equal(7, await usage.AggregateAsync(march, MeterAggregation.Max));
        Assert.Equal(2, await usage.AggregateAsync(march, MeterAggregation.Last)); // "e" is the ordinal-largest key at minute 10
        Assert.Equal(2, await usage.AggregateAsync(users, MeterAggregation.UniqueCount));
        Assert.Equal(["api_calls", "users"], (await usage.ListCountersAsync(PeriodStart)).Where(k => k.CustomerId == customer).Select(k => k.MeterKey));
        Assert.Equal([april], (await usage.ListCountersAsync(april.PeriodStart)).Where(k => k.CustomerId == customer));
    }

    /// <summary>
    /// On PostgreSQL the one counter index serves every read of the usage events: a counter's list and aggregates
    /// (equality on its three columns) and the counters of a period (its leading column), with sequential scans
    /// turned off so that the small test table cannot hide a missing index.
    /// </summary>
    [Fact]
    public async Task The_counter_index_serves_the_counter_and_period_reads_on_PostgreSql()
    {
        var (cs, schema) = await NewPostgresSchemaAsync();
        var usage = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        var key = new UsageCounterKey(NewCustomer(), "api_calls", PeriodStart);
        await usage.AppendAsync([.. Enumerable.Range(0, 50).Select(i => Stored(key, string.Create(CultureInfo.InvariantCulture, $"k{i}"), i))]);
        var database = UsageDatabase.From(new DbContextOptionsBuilder().UseNpgsql(cs).Options, schema);
        string[] reads =
        [
            $"SELECT {UsageDatabase.EventColumns} FROM {schema}.usage_events AS e WHERE e.customer_id = @customer AND e.meter_key = @meter AND e.period_start = @period ORDER BY e.timestamp, e.idempotency_key COLLATE \"C\"",
            $"SELECT DISTINCT e.customer_id, e.meter_key FROM {schema}.usage_events AS e WHERE e.period_start = @period ORDER BY e.customer_id, e.meter_key",
            .. Enum.GetValues<MeterAggregation>().Select(database.AggregateSql),
        ];
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        await using (var off = new NpgsqlCommand("SET enable_seqscan = off", connection))
        {
            await off.ExecuteNonQueryAsync();
        }

        foreach (var read in reads)
        {
            await using var explain = new NpgsqlCommand("EXPLAIN " + read, connection);
            UsageDatabase.AddCounterParameters(explain, key);
            var plan = new System.Text.StringBuilder();
            await using (var reader = await explain.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    plan.AppendLine(reader.GetString(0));
                }
            }

            Assert.Contains("ix_usage_events_counter", plan.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain("Seq Scan", plan.ToString(), StringComparison.Ordinal);
        }
    }

    /// <summary>A plan's metered prices and entitlements (migration 3 columns) round-trip through the billing store.</summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Plans_keep_their_metered_prices_and_entitlements(BillingDatabaseProvider provider)
    {
        var (store, _, _) = await NewAsync(provider);
        var plan = new Billing.Catalog.Plan
        {
            Id = "plan_usage", Name = "Usage", Price = new Billing.Pricing.FlatPrice(new Money(1_000, Currency.USD)), Interval = Billing.Periods.BillingInterval.Monthly, CreatedAt = PeriodStart,
            MeteredPrices =
            [
                new Billing.Catalog.MeteredPrice { Meter = new Meter { Key = "api_calls" }, Price = new Billing.Pricing.GraduatedPrice(Currency.USD, [Billing.Pricing.PriceTier.Until(1_000, 0), Billing.Pricing.PriceTier.Unbounded(2)]), Description = "API calls" },
                new Billing.Catalog.MeteredPrice { Meter = new Meter { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" }, Price = new Billing.Pricing.PerUnitPrice(new Money(100, Currency.USD)) },
            ],
            Entitlements =
            [
                new Billing.Catalog.Entitlement { Feature = "sso" },
                new Billing.Catalog.Entitlement { Feature = "api", Kind = Billing.Catalog.EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 10_000, Enforcement = Billing.Catalog.LimitEnforcement.Hard, Thresholds = [5_000, 8_000] },
            ],
        };
        await using (var session = await store.BeginAsync())
        {
            session.Plans.Add(plan);
            session.Plans.Add(new Billing.Catalog.Plan { Id = "plan_plain", Name = "Plain", Price = plan.Price, Interval = plan.Interval, CreatedAt = PeriodStart });
            await session.CommitAsync();
        }

        await using var read = await store.BeginAsync();
        var stored = (await read.Plans.GetAsync("plan_usage"))!;
        Assert.Equal(plan.MeteredPrices.Select(m => (m.Meter, m.Description, m.Price.CalculateTotal(2_500))), stored.MeteredPrices.Select(m => (m.Meter, m.Description, m.Price.CalculateTotal(2_500))));
        Assert.Equal(2, stored.Entitlements.Count);
        Assert.Equal(("sso", Billing.Catalog.EntitlementKind.Boolean, (long?)null), (stored.Entitlements[0].Feature, stored.Entitlements[0].Kind, stored.Entitlements[0].Limit));
        Assert.Empty(stored.Entitlements[0].Thresholds);
        var api = stored.Entitlements[1];
        Assert.Equal((Billing.Catalog.EntitlementKind.MeteredLimit, "api_calls", 10_000L, Billing.Catalog.LimitEnforcement.Hard), (api.Kind, api.MeterKey, api.Limit!.Value, api.Enforcement));
        Assert.Equal([5_000L, 8_000], api.Thresholds);
        var plain = (await read.Plans.GetAsync("plan_plain"))!;
        Assert.Empty(plain.MeteredPrices);
        Assert.Empty(plain.Entitlements);
    }

    /// <summary>
    /// The counter and the event store share the table: an event recorded by the counter awaits its append (the first
    /// append completes it and reports it stored, later ones report it stored already), and an event appended by the
    /// store alone is a duplicate for the counter (with the counter's current total) until a rebuild counts it.
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task The_counter_and_the_event_store_share_keys(BillingDatabaseProvider provider)
    {
        var (_, usage, counter) = await NewAsync(provider);
        var key = new UsageCounterKey(NewCustomer(), "api_calls", PeriodStart);
        Assert.Equal(UsageOutcome.Accepted, (await counter.RecordAsync(Counted(key, "c1", 5))).Outcome);
        Assert.Equal([false], await usage.AppendAsync([Stored(key with { MeterKey = "storage" }, "c1", 5)])); // another counter: not its append
        var complete = Stored(key, "c1", 5) with { SubscriptionId = "sub_1", Properties = new Dictionary<string, string> { ["region"] = "eu" } };
        Assert.Equal([true, true], await usage.AppendAsync([complete, Stored(key, "s1", 7)]));
        Assert.Equal([false, false], await usage.AppendAsync([complete, Stored(key, "s1", 7)]));
        var c1 = (await usage.ListAsync(key)).Single(e => e.IdempotencyKey == "c1");
        Assert.Equal(("sub_1", "eu", 5L), (c1.SubscriptionId, c1.Properties["region"], c1.Quantity));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 5), await counter.RecordAsync(Counted(key, "s1", 7)));
        Assert.Equal(5, await counter.GetTotalAsync(key));
        Assert.Equal(12, await usage.AggregateAsync(key, MeterAggregation.Sum));

        var stored = await usage.ListAsync(key);
        Assert.Equal(12, await counter.RebuildAsync(key, MeterAggregation.Sum, stored.Select(e => Counted(key, e.IdempotencyKey, e.Quantity)).ToList()));
        Assert.Equal(12, await counter.GetTotalAsync(key));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 13), await counter.RecordAsync(Counted(key, "c2", 1)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Duplicate, 12), await counter.RecordAsync(Counted(key, "s1", 7)));
    }

    /// <summary>A rebuild keeps a key stored for another meter of the customer where it is, and does not count it.</summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_rebuild_leaves_a_key_of_another_meter_alone(BillingDatabaseProvider provider)
    {
        var (_, usage, counter) = await NewAsync(provider);
        var customer = NewCustomer();
        var api = new UsageCounterKey(customer, "api_calls", PeriodStart);
        var storage = new UsageCounterKey(customer, "storage", PeriodStart);
        await counter.RecordAsync(Counted(storage, "shared", 50));
        Assert.Equal(3, await counter.RebuildAsync(api, MeterAggregation.Sum, [Counted(api, "shared", 100), Counted(api, "own", 3)]));
        Assert.Equal(50, await usage.AggregateAsync(storage, MeterAggregation.Sum));
        Assert.Equal(["own"], (await usage.ListAsync(api)).Select(e => e.IdempotencyKey));
    }

    /// <summary>
    /// One key raced on two meters of one customer, many times: each race ends as one accepted and one duplicate
    /// that reports the accepted event's total, and the key is stored once.
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_key_raced_on_two_meters_is_accepted_once(BillingDatabaseProvider provider)
    {
        var (_, usage, counter) = await NewAsync(provider);
        var customer = NewCustomer();
        var a = new UsageCounterKey(customer, "meter_a", PeriodStart);
        var b = new UsageCounterKey(customer, "meter_b", PeriodStart);
        for (var i = 0; i < 200; i++)
        {
            var key = string.Create(CultureInfo.InvariantCulture, $"race_{i}");
            using var start = new Barrier(2);
            var one = Task.Run(async () => { start.SignalAndWait(); return await counter.RecordAsync(Counted(a, key, 1)); });
            var two = Task.Run(async () => { start.SignalAndWait(); return await counter.RecordBatchAsync([Counted(b, "other_" + key, 2), Counted(b, key, 1)]); });
            var first = await one;
            var second = (await two)[1];
            Assert.Equal(1, new[] { first, second }.Count(r => r.Outcome == UsageOutcome.Accepted));
            var accepted = first.Outcome == UsageOutcome.Accepted ? first : second;
            var duplicate = first.Outcome == UsageOutcome.Accepted ? second : first;
            Assert.Equal(UsageOutcome.Duplicate, duplicate.Outcome);
            Assert.Equal(accepted.Total, duplicate.Total);
        }

        var onA = (await usage.ListAsync(a)).Count;
        var onB = (await usage.ListAsync(b)).Count(e => e.IdempotencyKey.StartsWith("race_", StringComparison.Ordinal));
        Assert.Equal(200, onA + onB);
        Assert.Equal(onA, await counter.GetTotalAsync(a));
        Assert.Equal(onB + 400, await counter.GetTotalAsync(b));
    }

    /// <summary>
    /// The event store and the counter taking the same keys at once: each key is stored exactly once, the counter
    /// counts exactly the keys it accepted, and every key was taken by one of them (the store reports a key the counter
    /// took and it appended after as stored by the append, completing it).
    /// </summary>
    [Fact]
    public async Task The_event_store_and_the_counter_racing_on_keys_store_each_once_on_PostgreSql()
    {
        var (_, usage, counter) = await NewAsync(BillingDatabaseProvider.PostgreSql);
        var key = new UsageCounterKey(NewCustomer(), "api_calls", PeriodStart);
        var keys = Enumerable.Range(0, 2_000).Select(i => string.Create(CultureInfo.InvariantCulture, $"k{i}")).ToArray();
        var stored = new System.Collections.Concurrent.ConcurrentBag<string>();
        var counted = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Task.WhenAll(
            Task.Run(async () =>
            {
                foreach (var chunk in keys.Chunk(100))
                {
                    var results = await usage.AppendAsync(chunk.Select(k => Stored(key, k, 1)).ToList());
                    foreach (var k in chunk.Where((_, i) => results[i]))
                    {
                        stored.Add(k);
                    }
                }
            }),
            Task.Run(async () =>
            {
                foreach (var chunk in keys.Reverse().Chunk(10))
                {
                    var results = await counter.RecordBatchAsync(chunk.Select(k => Counted(key, k, 1)).ToList());
                    foreach (var k in chunk.Where((_, i) => results[i].Outcome == UsageOutcome.Accepted))
                    {
                        counted.Add(k);
                    }
                }
            }));
        Assert.Equal(keys.Length, stored.Distinct().Count() + counted.Except(stored).Count());
        Assert.Equal(stored.Count, stored.Distinct().Count());
        Assert.Equal(counted.Count, counted.Distinct().Count());
        Assert.Equal(keys.Length, (await usage.ListAsync(key)).Count);
        Assert.Equal(counted.Count, await counter.GetTotalAsync(key));
        Assert.Empty(await usage.AppendAsync(counted.Select(k => Stored(key, k, 1)).ToList()) is var again && again.Any(x => x) ? ["stored again"] : Array.Empty<string>());
    }

    /// <summary>Events with a non-ASCII key and unique value round-trip, and a Last tie is broken the same way by the counter and the store.</summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Counter_and_store_agree_on_last_and_unique_count(BillingDatabaseProvider provider)
    {
        var (_, usage, counter) = await NewAsync(provider);
        var customer = NewCustomer();
        var gauge = new UsageCounterKey(customer, "gauge", PeriodStart);
        var users = new UsageCounterKey(customer, "users", PeriodStart);
        UsageCounterEvent G(string k, long q, int minute) => Counted(gauge, k, q) with { Aggregation = MeterAggregation.Last, Timestamp = PeriodStart.AddMinutes(minute) };
        UsageCounterEvent U(string k, string user) => Counted(users, k, 1) with { Aggregation = MeterAggregation.UniqueCount, UniqueValue = user };
        await counter.RecordBatchAsync([G("b", 7, 10), G("é", 3, 10), G("a", 9, 10), G("z", 1, 9)]);
        await counter.RecordBatchAsync([U("1", "ünï"), U("2", "uni"), U("3", "ünï"), U("4", "UNI")]);
        Assert.Equal(3, await counter.GetTotalAsync(gauge));
        Assert.Equal(3, await usage.AggregateAsync(gauge, MeterAggregation.Last));
        Assert.Equal(3, await counter.GetTotalAsync(users));
        Assert.Equal(3, await usage.AggregateAsync(users, MeterAggregation.UniqueCount));
        Assert.Equal(["z", "a", "b", "é"], (await usage.ListAsync(gauge)).Select(e => e.IdempotencyKey));
        Assert.Equal(3, await counter.RebuildAsync(gauge, MeterAggregation.Last, [G("b", 7, 10), G("é", 3, 10), G("a", 9, 10)]));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 3), await counter.RecordAsync(G("c", 5, 10)));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 5), await counter.RecordAsync(G("f", 5, 10) with { Quantity = 5, IdempotencyKey = "\u00ea\u00ea" }));
    }

    /// <summary>A counter sum past the largest long is an <see cref="OverflowException"/>, and the batch records nothing.</summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task A_counter_sum_past_the_largest_long_overflows_and_records_nothing_of_the_batch(BillingDatabaseProvider provider)
    {
        var (_, usage, counter) = await NewAsync(provider);
        var key = new UsageCounterKey(NewCustomer(), "api_calls", PeriodStart);
        await counter.RecordAsync(Counted(key, "big", long.MaxValue - 1));
        await Assert.ThrowsAsync<OverflowException>(async () => await counter.RecordBatchAsync([Counted(key, "one", 1), Counted(key, "two", 1)]));
        Assert.Equal(long.MaxValue - 1, await counter.GetTotalAsync(key));
        Assert.Equal(["big"], (await usage.ListAsync(key)).Select(e => e.IdempotencyKey));
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, long.MaxValue), await counter.RecordAsync(Counted(key, "one", 1)));
    }

    /// <summary>The usage tables map into a host's own context.</summary>
    [Fact]
    public async Task ApplyBillingConfiguration_maps_the_usage_tables()
    {
        var (cs, schema) = await NewPostgresSchemaAsync();
        var usage = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        var key = new UsageCounterKey(NewCustomer(), "api_calls", PeriodStart);
        await usage.AppendAsync([Stored(key, "e1", 4) with { Properties = new Dictionary<string, string> { ["region"] = "eu" } }]);
        await EntityFrameworkUsageCounter.ForPostgreSql(cs, schema).RecordAsync(Counted(key, "e2", 3));

        await using var host = new HostContext(new DbContextOptionsBuilder<HostContext>().UseNpgsql(cs).Options, schema);
        var rows = await host.Set<UsageEventRow>().OrderBy(r => r.IdempotencyKey).ToListAsync();
        Assert.Equal(["e1", "e2"], rows.Select(r => r.IdempotencyKey));
        Assert.Equal(PeriodStart, rows[0].PeriodStart);
        Assert.Contains("\"region\"", rows[0].Properties, StringComparison.Ordinal);
        Assert.Equal([null, 3L], rows.Select(r => r.TotalAfter));
        Assert.Equal(3, (await host.Set<UsageCounterRow>().SingleAsync()).Total);
    }

    /// <summary>
    /// <c>AddEntityFrameworkCore</c> registers the event store and the durable counter in place of the in-memory
    /// defaults of <c>AddBilling</c>; a counter registered explicitly stays the <see cref="IUsageCounter"/>, and the
    /// metering service runs on what is registered.
    /// </summary>
    [Fact]
    public async Task AddEntityFrameworkCore_registers_the_usage_event_store_and_counter()
    {
        var cs = _sqlite.NewConnectionString();
        var services = new ServiceCollection();
        services.AddBilling().AddEntityFrameworkCore(o => o.UseSqlite(cs)).AddFakePaymentGateway();
        await using (var provider = services.BuildServiceProvider())
        {
            await provider.GetRequiredService<Billing.EntityFrameworkCore.Migrations.BillingMigrator>().MigrateAsync();
            var events = Assert.IsType<EntityFrameworkUsageEventStore>(provider.GetRequiredService<IUsageEventStore>());
            Assert.Same(events, provider.GetRequiredService<EntityFrameworkUsageEventStore>());
            Assert.Same(provider.GetRequiredService<EntityFrameworkUsageCounter>(), provider.GetRequiredService<IUsageCounter>());
            var key = new UsageCounterKey(NewCustomer(), "api_calls", PeriodStart);
            Assert.Equal(UsageOutcome.Accepted, (await provider.GetRequiredService<IUsageCounter>().RecordAsync(Counted(key, "k", 2))).Outcome);
            Assert.Equal(2, await events.AggregateAsync(key, MeterAggregation.Sum));
            Assert.Single(services, d => d.ServiceType == typeof(IUsageCounter));
            Assert.Single(services, d => d.ServiceType == typeof(IUsageEventStore));
            Assert.NotNull(provider.GetRequiredService<UsageMeteringService>());
        }

        var fast = new Billing.InMemory.InMemoryUsageCounter();
        var withFast = new ServiceCollection();
        withFast.AddSingleton<IUsageCounter>(fast);
        withFast.AddBilling().AddEntityFrameworkCore(o => o.UseSqlite(cs));
        await using var second = withFast.BuildServiceProvider();
        Assert.Same(fast, second.GetRequiredService<IUsageCounter>());
        Assert.IsType<EntityFrameworkUsageEventStore>(second.GetRequiredService<IUsageEventStore>());
    }

    /// <summary>
    /// Batches of 1,000 on PostgreSQL from one writer, then from 4 writers at once, are stored in full, and a batch of
    /// keys stored already is answered false throughout. (Speed is measured by <c>usage-append-run</c> in the
    /// benchmark console, not here.)
    /// </summary>
    [Fact]
    public async Task Batches_of_1000_from_one_and_four_writers_are_stored_once_on_PostgreSql()
    {
        var (cs, schema) = await NewPostgresSchemaAsync();
        var usage = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
        var customers = Enumerable.Range(0, 100).Select(_ => NewCustomer()).ToArray();
        List<StoredUsageEvent> Batch(int b) => Enumerable.Range(0, 1_000).Select(i =>
        {
            var key = new UsageCounterKey(customers[i % customers.Length], i % 2 == 0 ? "api_calls" : "storage", PeriodStart);
            return Stored(key, string.Create(CultureInfo.InvariantCulture, $"evt_{b}_{i}"), i % 7) with
            {
                Timestamp = PeriodStart.AddSeconds(i),
                Properties = new Dictionary<string, string> { ["region"] = "eu-west-1", ["path"] = "/v1/things" },
            };
        }).ToList();

        var batches = Enumerable.Range(0, 61).Select(Batch).ToArray();
        foreach (var batch in batches[..21])
        {
            Assert.All(await usage.AppendAsync(batch), stored => Assert.True(stored));
        }

        await Parallel.ForEachAsync(batches[21..], new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (batch, ct) =>
            Assert.All(await usage.AppendAsync(batch, ct), stored => Assert.True(stored)));
        Assert.All(await usage.AppendAsync(batches[5]), stored => Assert.False(stored));

        var total = 0;
        foreach (var customer in customers)
        {
            total += (await usage.ListAsync(new UsageCounterKey(customer, "api_calls", PeriodStart))).Count;
            total += (await usage.ListAsync(new UsageCounterKey(customer, "storage", PeriodStart))).Count;
        }

        Assert.Equal(61_000, total);
    }

    private async Task<(EntityFrameworkBillingStore Store, EntityFrameworkUsageEventStore Usage, EntityFrameworkUsageCounter Counter)> NewAsync(BillingDatabaseProvider provider, bool migrate = true)
    {
        EntityFrameworkBillingStore store;
        EntityFrameworkUsageEventStore usage;
        EntityFrameworkUsageCounter counter;
        if (provider == BillingDatabaseProvider.PostgreSql)
        {
            var cs = await _database.ConnectionString.Value;
            var schema = string.Create(CultureInfo.InvariantCulture, $"usage_behaviour_{Interlocked.Increment(ref _schemas)}");
            store = EntityFrameworkBillingStore.ForPostgreSql(cs, schema);
            usage = EntityFrameworkUsageEventStore.ForPostgreSql(cs, schema);
            counter = EntityFrameworkUsageCounter.ForPostgreSql(cs, schema);
        }
        else
        {
            var cs = _sqlite.NewConnectionString();
            store = EntityFrameworkBillingStore.ForSqlite(cs);
            usage = EntityFrameworkUsageEventStore.ForSqlite(cs);
            counter = EntityFrameworkUsageCounter.ForSqlite(cs);
        }

        if (migrate)
        {
            await usage.MigrateAsync();
        }

        return (store, usage, counter);
    }

    private async Task<(string ConnectionString, string Schema)> NewPostgresSchemaAsync()
    {
        var (_, usage, _) = await NewAsync(BillingDatabaseProvider.PostgreSql);
        return (await _database.ConnectionString.Value, usage.Schema!);
    }

    /// <summary>Inserts events into usage_events as a store of schema version 3 did (no acceptance token column yet).</summary>
    private static async Task InsertAtVersion3Async(bool postgreSql, string connectionString, string schema, IEnumerable<StoredUsageEvent> events)
    {
        var table = postgreSql ? $"{schema}.usage_events" : "usage_events";
        var sql = $"INSERT INTO {table} (customer_id, idempotency_key, meter_key, period_start, quantity, timestamp, unique_value, received_at) VALUES (@customer, @key, @meter, @period, @quantity, @timestamp, @unique, @received)";
        System.Data.Common.DbConnection connection = postgreSql ? new NpgsqlConnection(connectionString) : new Microsoft.Data.Sqlite.SqliteConnection(connectionString);
        await using (connection)
        {
            await connection.OpenAsync();
            foreach (var e in events)
            {
                await using var command = connection.CreateCommand();
                command.CommandText = sql;
                void Add(string name, object? value)
                {
                    var parameter = command.CreateParameter();
                    parameter.ParameterName = name;
                    parameter.Value = value ?? DBNull.Value;
                    command.Parameters.Add(parameter);
                }

                object Instant(DateTimeOffset t) => postgreSql ? t.UtcDateTime : t.UtcTicks;
                Add("@customer", e.Counter.CustomerId);
                Add("@key", e.IdempotencyKey);
                Add("@meter", e.Counter.MeterKey);
                Add("@period", Instant(e.Counter.PeriodStart));
                Add("@quantity", e.Quantity);
                Add("@timestamp", Instant(e.Timestamp));
                Add("@unique", e.UniqueValue);
                Add("@received", Instant(e.ReceivedAt));
                Assert.Equal(1, await command.ExecuteNonQueryAsync());
            }
        }
    }

    /// <summary>The indexes on usage_events, by name, with their columns in order.</summary>
    private static async Task<SortedDictionary<string, string[]>> UsageEventIndexesAsync(bool postgreSql, string connectionString, string schema)
    {
        var indexes = new SortedDictionary<string, string[]>(StringComparer.Ordinal);
        if (postgreSql)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                """
                SELECT i.relname, array_agg(a.attname::text ORDER BY k.ordinality)
                FROM pg_index x
                JOIN pg_class i ON i.oid = x.indexrelid
                JOIN pg_class t ON t.oid = x.indrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ordinality)
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                WHERE n.nspname = @schema AND t.relname = 'usage_events'
                GROUP BY i.relname
                """,
                connection);
            command.Parameters.AddWithValue("schema", schema);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                indexes[reader.GetString(0)] = reader.GetFieldValue<string[]>(1);
            }

            return indexes;
        }

        await using var lite = new Microsoft.Data.Sqlite.SqliteConnection(connectionString);
        await lite.OpenAsync();
        var names = new List<string>();
        await using (var list = lite.CreateCommand())
        {
            // The primary key's automatic index is sqlite_autoindex_usage_events_1; it is reported as pk_usage_events.
            list.CommandText = "SELECT name FROM pragma_index_list('usage_events')";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                names.Add(reader.GetString(0));
            }
        }

        foreach (var name in names)
        {
            await using var info = lite.CreateCommand();
            info.CommandText = "SELECT name FROM pragma_index_info(@name) ORDER BY seqno";
            info.Parameters.AddWithValue("@name", name);
            var columns = new List<string>();
            await using var reader = await info.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                columns.Add(reader.GetString(0));
            }

            indexes[name.StartsWith("sqlite_autoindex_usage_events", StringComparison.Ordinal) ? "pk_usage_events" : name] = [.. columns];
        }

        return indexes;
    }

    private static string NewCustomer() => "cus_" + Guid.NewGuid().ToString("N")[..16];

    private static Customer Customer(string id) => new()
    {
        Id = id, Name = "Ada", Email = "ada@example.com", Currency = Currency.USD, TimeZoneId = "Etc/UTC",
        CreditBalance = Money.Zero(Currency.USD), DefaultPaymentMethod = FakePaymentGateway.Visa, CreatedAt = PeriodStart,
    };

    private static StoredUsageEvent Stored(UsageCounterKey key, string idempotencyKey, long quantity) => new()
    {
        Counter = key,
        Quantity = quantity,
        IdempotencyKey = idempotencyKey,
        Timestamp = PeriodStart.AddDays(1),
        ReceivedAt = Now,
    };

    private static UsageCounterEvent Counted(UsageCounterKey key, string idempotencyKey, long quantity) => new()
    {
        Counter = key,
        Aggregation = MeterAggregation.Sum,
        Quantity = quantity,
        IdempotencyKey = idempotencyKey,
        Timestamp = PeriodStart.AddDays(1),
        Now = Now,
        DedupWindow = TimeSpan.FromDays(35),
    };

    private sealed class HostContext(DbContextOptions<HostContext> options, string schema) : DbContext(options)
    {
        private readonly string _schema = schema;

        protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.ApplyBillingConfiguration(Database, _schema);
    }

    /// <summary>One PostgreSQL database for the class (a schema per test).</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("usage_behaviour"));
    }
}
