using System.Globalization;
using Billing.Catalog;
using Billing.Dunning;
using Billing.Engine;
using Billing.EntityFrameworkCore.Model;
using Billing.EntityFrameworkCore.Storage;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Testing;
using Billing.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.EntityFrameworkCore.Tests.Usage;

/// <summary>
/// What a draft needs to price its usage again at finalization, stored by the EF Core store on both providers: the
/// invoice's coupon, each usage line's plan and its tier breakdown (as JSON), kept exactly and replaced when a draft
/// gets new lines; and the late-usage scenario end to end on PostgreSQL.
/// </summary>
public sealed class InvoiceUsageDetailsStorageTests : IClassFixture<InvoiceUsageDetailsStorageTests.Database>, IClassFixture<SqliteFiles>
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly BillingPeriod January = new(T0, T0.AddMonths(1));
    private static int _schemas;
    private readonly Database _database;
    private readonly SqliteFiles _sqlite;

    /// <summary>Creates the test class.</summary>
    public InvoiceUsageDetailsStorageTests(Database database, SqliteFiles sqlite)
    {
        _database = database;
        _sqlite = sqlite;
    }

    private static GraduatedPrice Graduated => new(Currency.USD, [PriceTier.Until(1_000, 0, 500), PriceTier.Until(5_000, 2), PriceTier.Unbounded(1, 250)]);

    /// <summary>The coupon, the plan id and the breakdown (flat fees, bounded and open-ended tiers) round-trip; new lines replace old ones.</summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task A_drafts_coupon_and_usage_line_breakdowns_round_trip_and_are_replaced_with_new_lines(BillingDatabaseProvider provider)
    {
        var store = provider == BillingDatabaseProvider.PostgreSql
            ? await TestDatabases.NewPostgresStoreAsync(await _database.ConnectionString.Value)
            : await _sqlite.NewStoreAsync();
        var coupon = Coupon.PercentOff("TENOFF", 100_000, CouponDuration.Repeating, 3);
        var price = new MeteredPrice { Meter = new Meter { Key = "api_calls" }, Description = "API calls", Price = Graduated };
        IReadOnlyList<InvoiceLine> lines =
        [
            new(InvoiceLineKind.Plan, "Pro", Usd(1_000)) { Period = January.Next() },
            MeteredUsageCharges(price, 3_000),
            MeteredUsageCharges(price with { Meter = new Meter { Key = "jobs" }, Price = new PackagePrice(Usd(900), 10) }, 21),
        ];
        Assert.Equal(3, lines[1].Breakdown!.Components.Count); // tier 1 flat fee + units, tier 2 units

        await using (var session = await store.BeginAsync())
        {
            session.Invoices.Add(Draft("in_1", lines, coupon));
            await session.CommitAsync();
        }

        await using (var session = await store.BeginAsync())
        {
            var read = (await session.Invoices.GetAsync("in_1"))!;
            Assert.Equal(lines, read.Lines); // record equality: plan id and breakdown included
            Assert.Equal((1, 1_001L, (long?)5_000L, 2_000L), read.Lines[1].Breakdown!.Components[2] is var c ? (c.TierIndex, c.TierFrom!.Value, c.TierUpTo, c.Quantity) : default);
            Assert.Equal(coupon, read.Coupon);
            Assert.Equal("plan_p", read.Lines[1].PlanId);
            Assert.Null(read.Lines[0].Breakdown);

            // A draft priced again gets new usage lines: they replace the old ones.
            session.Invoices.Update(read with { Lines = [lines[0], MeteredUsageCharges(price, 6_500)], Coupon = null });
            await session.CommitAsync();
        }

        await using var after = await store.BeginAsync();
        var updated = (await after.Invoices.GetAsync("in_1"))!;
        Assert.Null(updated.Coupon);
        var usage = updated.Lines[1];
        Assert.Equal((6_500L, Usd(500 + 8_000 + 250 + 1_500)), (usage.Quantity, usage.Amount));
        Assert.Equal(Graduated.Calculate(6_500), usage.Breakdown);
        Assert.Equal(
            [(0, 1L, (long?)1_000L, 1L, 500L), (0, 1L, 1_000L, 1_000L, 0L), (1, 1_001L, 5_000L, 4_000L, 8_000L), (2, 5_001L, null, 1L, 250L), (2, 5_001L, null, 1_500L, 1_500L)],
            usage.Breakdown!.Components.Select(c => (c.TierIndex, c.TierFrom!.Value, c.TierUpTo, c.Quantity, c.Amount.MinorUnits)));
        Assert.Equal(2, updated.Lines.Count);
    }

    /// <summary>
    /// On PostgreSQL with the durable counter and events of <c>AddEntityFrameworkCore</c>: an event accepted after the
    /// renewal draft was created is on the finalized invoice (lines rewritten in the database, coupon reapplied), and
    /// an event for that period afterwards is rejected without being counted.
    /// </summary>
    [Fact]
    public async Task A_late_event_accepted_while_the_invoice_is_a_draft_is_on_the_stored_finalized_invoice()
    {
        var services = new ServiceCollection();
        var schema = string.Create(CultureInfo.InvariantCulture, $"late_usage_{Interlocked.Increment(ref _schemas)}");
        var cs = await _database.ConnectionString.Value;
        services.AddBilling().AddEntityFrameworkCore(o => o.UseNpgsql(cs), schema).AddFakePaymentGateway();
        await using var container = services.BuildServiceProvider();
        await container.GetRequiredService<Billing.EntityFrameworkCore.Migrations.BillingMigrator>().MigrateAsync();
        var engine = container.GetRequiredService<BillingEngine>();
        var metering = container.GetRequiredService<UsageMeteringService>();

        var plan = await engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(Usd(1_000)), BillingInterval.Monthly)
        {
            MeteredPrices = [new MeteredPrice { Meter = new Meter { Key = "api_calls" }, Description = "API calls", Price = Graduated }],
        });
        var clock = await engine.CreateTestClockAsync(T0);
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa, TestClockId = clock.Id, TimeZoneId = "Etc/UTC" });
        var subscription = await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id) { Coupon = Coupon.PercentOff("TENOFF", 100_000, CouponDuration.Forever) });
        UsageEventInput Call(string key, long quantity, DateTimeOffset at) => new() { CustomerId = customer.Id, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key };

        await engine.AdvanceTestClockAsync(clock.Id, T0.AddDays(20));
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call("e1", 3_000, T0.AddDays(10)))).Status);
        await engine.AdvanceTestClockAsync(clock.Id, January.End.AddHours(3));
        var draft = (await engine.ListInvoicesAsync(subscription.Id)).Single(i => i.Period!.Value.Start == January.End);
        Assert.Equal(InvoiceStatus.Draft, draft.Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await metering.RecordAsync(Call("e2", 3_500, January.End.AddMinutes(-1)))).Status);

        await engine.AdvanceTestClockAsync(clock.Id, January.End.AddHours(26));
        var invoice = await engine.GetInvoiceAsync(draft.Id);
        Assert.Equal(InvoiceStatus.Paid, invoice.Status);
        var usage = Assert.Single(invoice.Lines, l => l.Kind == InvoiceLineKind.Usage);
        // 6,500 calls: 5.00 flat + 1,000 free, 4,000 × 0.02, 2.50 flat + 1,500 × 0.01 = 102.50; plan 10.00; −10 % = 101.25
        Assert.Equal((6_500L, Usd(10_250), plan.Id), (usage.Quantity, usage.Amount, usage.PlanId));
        Assert.Equal(Graduated.Calculate(6_500), usage.Breakdown);
        Assert.Equal((Usd(11_250), Usd(-1_125), Usd(10_125)), (invoice.Subtotal, invoice.Discount, invoice.Total));
        Assert.Equal(invoice.Total, invoice.AmountPaid);

        var late = await metering.RecordAsync(Call("e3", 10, January.End.AddMinutes(-1)));
        Assert.Equal("timestamp_too_old", late.Reason);
        var counter = new UsageCounterKey(customer.Id, "api_calls", T0);
        Assert.Equal(6_500, await metering.GetTotalAsync(counter));
        Assert.Equal(6_500, await metering.GetDurableTotalAsync(counter, MeterAggregation.Sum));

        // Straight from the tables: the rewritten usage line and the coupon are there.
        await using var db = new HostContext(new DbContextOptionsBuilder<HostContext>().UseNpgsql(cs).Options, schema);
        var row = await db.Set<InvoiceLineRow>().SingleAsync(l => l.InvoiceId == invoice.Id && l.Kind == "usage");
        Assert.Equal((6_500L, 10_250L, plan.Id), (row.Quantity, row.AmountMinor, row.PlanId!));
        using (var json = System.Text.Json.JsonDocument.Parse(row.Breakdown!))
        {
            var tier = json.RootElement.GetProperty("components")[2];
            Assert.Equal((1_001L, 5_000L, 4_000L, "units"), (tier.GetProperty("from").GetInt64(), tier.GetProperty("up_to").GetInt64(), tier.GetProperty("quantity").GetInt64(), tier.GetProperty("kind").GetString()));
        }

        Assert.Contains("TENOFF", (await db.Set<InvoiceRow>().SingleAsync(i => i.Id == invoice.Id)).Coupon!, StringComparison.Ordinal);
    }

    private static Money Usd(long minor) => new(minor, Currency.USD);

    private static InvoiceLine MeteredUsageCharges(MeteredPrice price, long quantity)
    {
        var breakdown = price.Price.Calculate(quantity);
        return new InvoiceLine(InvoiceLineKind.Usage, price.Description ?? price.Meter.Key, breakdown.Total) { Quantity = quantity, Period = January, MeterKey = price.Meter.Key, PlanId = "plan_p", Breakdown = breakdown };
    }

    private static Invoice Draft(string id, IReadOnlyList<InvoiceLine> lines, Coupon coupon)
    {
        var zero = Money.Zero(Currency.USD);
        var total = new Money(lines.Sum(l => l.Amount.MinorUnits), Currency.USD);
        return new Invoice
        {
            Id = id, CustomerId = "cus_1", DedupKey = $"dk_{id}", Reason = BillingReason.Manual, Status = InvoiceStatus.Draft, Currency = Currency.USD,
            Period = January.Next(), Lines = lines, Coupon = coupon, Subtotal = total, Discount = zero, Tax = zero, Total = total,
            CreditApplied = zero, AmountDue = total, AmountPaid = zero, Dunning = DunningState.Initial(1), CreatedAt = T0,
        };
    }

    /// <summary>A context on the billing tables of one schema, to read rows directly.</summary>
    private sealed class HostContext(DbContextOptions<HostContext> options, string schema) : DbContext(options)
    {
        protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.ApplyBillingConfiguration(Database, schema);
    }

    /// <summary>One PostgreSQL database for the class.</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("invoice_usage"));
    }
}

/// <summary>Period helpers for the tests.</summary>
internal static class PeriodExtensions
{
    /// <summary>The month after a monthly period.</summary>
    public static BillingPeriod Next(this BillingPeriod period) => new(period.End, period.End.AddMonths(1));
}
