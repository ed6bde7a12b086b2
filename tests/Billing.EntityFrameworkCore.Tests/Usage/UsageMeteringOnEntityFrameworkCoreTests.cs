using System.Globalization;
using Billing.Catalog;
using Billing.Engine;
using Billing.EntityFrameworkCore.Model;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.EntityFrameworkCore.Usage;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing;
using Billing.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// The metering service of <c>AddBilling</c> end to end on the durable counter and event store that
/// <c>AddEntityFrameworkCore</c> registers: counted once, stored once (completed by the append), billed on the renewal
/// (usage lines priced from the durable events).
/// </summary>
public sealed class UsageMeteringOnEntityFrameworkCoreTests : IClassFixture<UsageMeteringOnEntityFrameworkCoreTests.Database>, IClassFixture<SqliteFiles>
{
    private static int _schemas;
    private readonly Database _database;
    private readonly SqliteFiles _sqlite;

    /// <summary>Creates the test class.</summary>
    public UsageMeteringOnEntityFrameworkCoreTests(Database database, SqliteFiles sqlite)
    {
        _database = database;
        _sqlite = sqlite;
    }

    /// <summary>A provider.</summary>
    public static TheoryData<BillingDatabaseProvider> Providers => new() { BillingDatabaseProvider.PostgreSql, BillingDatabaseProvider.Sqlite };

    /// <summary>
    /// Events, a repeat and a duplicate inside a batch go through the service: each is accepted once (never turned
    /// into a duplicate by the durable append), stored with its subscription, and the renewal bills the usage.
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers))]
    public async Task The_metering_service_counts_stores_and_bills_usage_on_the_durable_counter(BillingDatabaseProvider provider)
    {
        var services = new ServiceCollection();
        if (provider == BillingDatabaseProvider.PostgreSql)
        {
            var schema = string.Create(CultureInfo.InvariantCulture, $"metering_{Interlocked.Increment(ref _schemas)}");
            var cs = await _database.ConnectionString.Value;
            services.AddBilling().AddEntityFrameworkCore(o => o.UseNpgsql(cs), schema).AddFakePaymentGateway();
        }
        else
        {
            services.AddBilling().AddEntityFrameworkCore(o => o.UseSqlite(_sqlite.NewConnectionString())).AddFakePaymentGateway();
        }

        await using var container = services.BuildServiceProvider();
        await container.GetRequiredService<Billing.EntityFrameworkCore.Migrations.BillingMigrator>().MigrateAsync();
        var counter = Assert.IsType<EntityFrameworkUsageCounter>(container.GetRequiredService<IUsageCounter>());
        var events = Assert.IsType<EntityFrameworkUsageEventStore>(container.GetRequiredService<IUsageEventStore>());
        var engine = container.GetRequiredService<BillingEngine>();
        var metering = container.GetRequiredService<UsageMeteringService>(); // AddBilling's, on the counter and store above

        var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var usd = Currency.USD;
        var plan = await engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(new Money(1_000, usd)), BillingInterval.Monthly)
        {
            MeteredPrices =
            [
                new MeteredPrice
                {
                    Meter = new Meter { Key = "api_calls" },
                    Description = "API calls",
                    Price = new GraduatedPrice(usd, [PriceTier.Until(1_000, 0), PriceTier.Unbounded(2)]),
                },
            ],
        });
        var clock = await engine.CreateTestClockAsync(start);
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", usd) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa, TestClockId = clock.Id, TimeZoneId = "Etc/UTC" });
        var subscription = await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        await engine.AdvanceTestClockAsync(clock.Id, start.AddDays(24));

        UsageEventInput Call(string key, long quantity, int day) => new()
        {
            CustomerId = customer.Id, MeterKey = "api_calls", Quantity = quantity, Timestamp = start.AddDays(day), IdempotencyKey = key,
            Properties = new Dictionary<string, string> { ["path"] = "/v1/things" },
        };

        var first = await metering.RecordAsync(Call("e1", 800, 4));
        Assert.True(first.Status == UsageIngestStatus.Accepted, first.Reason + ": " + first.Message);
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call("e2", 1_500, 19))).Status);
        var repeat = await metering.RecordAsync(Call("e1", 9_999, 4));
        Assert.Equal((UsageIngestStatus.Duplicate, 800L), (repeat.Status, repeat.Total!.Value));
        var batch = await metering.RecordBatchAsync([Call("e3", 700, 9), Call("e3", 700, 9), Call("e4", 0, 10)]);
        Assert.Equal([UsageIngestStatus.Accepted, UsageIngestStatus.Duplicate, UsageIngestStatus.Accepted], batch.Select(r => r.Status));

        var counterKey = new UsageCounterKey(customer.Id, "api_calls", start);
        Assert.Equal(3_000, await counter.GetTotalAsync(counterKey));
        Assert.Equal(3_000, await metering.GetDurableTotalAsync(counterKey, MeterAggregation.Sum));
        var stored = await events.ListAsync(counterKey);
        Assert.Equal(["e1", "e3", "e4", "e2"], stored.Select(e => e.IdempotencyKey));
        Assert.All(stored, e => Assert.Equal((subscription.Id, "/v1/things"), (e.SubscriptionId, e.Properties["path"])));

        await engine.AdvanceTestClockAsync(clock.Id, start.AddMonths(1).AddHours(2));
        var renewal = (await engine.ListInvoicesAsync(subscription.Id)).Single(i => i.Period!.Value.Start == start.AddMonths(1));
        var line = Assert.Single(renewal.Lines, l => l.Kind == InvoiceLineKind.Usage);
        Assert.Equal((3_000L, new Money(4_000, usd)), (line.Quantity, line.Amount)); // 1,000 free, then 2,000 at 2 cents
    }

    /// <summary>One PostgreSQL database for the class (a schema per test).</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("usage_metering"));
    }
}
