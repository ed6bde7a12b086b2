using Billing.Customers;
using Billing.Dunning;
using Billing.Engine;
using Billing.EntityFrameworkCore.Model;
using Billing.EntityFrameworkCore.Storage;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.Events;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Billing.EntityFrameworkCore.Tests.Storage;

/// <summary>What the database adds beyond the shared contract, on both providers.</summary>
public sealed class StoreBehaviourTests : IClassFixture<StoreBehaviourTests.Database>, IClassFixture<SqliteFiles>
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly Database _database;
    private readonly SqliteFiles _sqlite;

    /// <summary>Creates the test class.</summary>
    public StoreBehaviourTests(Database database, SqliteFiles sqlite)
    {
        _database = database;
        _sqlite = sqlite;
    }

    /// <summary>A negative amount paid, rejected by a CHECK constraint, surfaces as the engine's validation error naming the field, and nothing is saved.</summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task An_amount_the_database_rejects_is_a_validation_error_naming_the_field(BillingDatabaseProvider provider)
    {
        var store = await NewStoreAsync(provider);
        var error = await Assert.ThrowsAsync<BillingValidationException>(() => CommitAsync(store, s =>
        {
            s.Customers.Add(Customer("cus_1"));
            s.Invoices.Add(Invoice("inv_1") with { AmountPaid = new Money(-1, Currency.USD) });
        }));
        Assert.Equal("amount_paid", error.Field);
        await using var session = await store.BeginAsync();
        Assert.Null(await session.Customers.GetAsync("cus_1"));
        Assert.Null(await session.Invoices.GetAsync("inv_1"));
    }

    /// <summary>A name longer than the column allows is a validation error naming the field.</summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task A_string_longer_than_the_column_allows_is_a_validation_error_naming_the_field(BillingDatabaseProvider provider)
    {
        var store = await NewStoreAsync(provider);
        var error = await Assert.ThrowsAsync<BillingValidationException>(() => CommitAsync(store, s => s.Customers.Add(Customer("cus_1") with { Name = new string('x', 10_000) })));
        Assert.Equal("name", error.Field);
    }

    /// <summary>A currency code the database rejects (written behind the engine's back) is translated to a validation error naming the field.</summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task A_currency_code_the_database_rejects_is_a_validation_error_naming_the_field(BillingDatabaseProvider provider)
    {
        var pg = provider == BillingDatabaseProvider.PostgreSql;
        var raw = pg ? await _database.ConnectionString.Value : _sqlite.NewConnectionString();
        var store = pg ? EntityFrameworkBillingStore.ForPostgreSql(raw, "currency_check") : EntityFrameworkBillingStore.ForSqlite(raw);
        await store.MigrateAsync();
        var sql = $"""
            INSERT INTO {(store.Schema is { } s ? s + "." : "")}payments (id, invoice_id, customer_id, attempt, idempotency_key, amount_minor, currency,
                payment_method, status, amount_refunded_minor, refund_count, created_at, version)
            VALUES ('pay_1', 'inv_1', 'cus_1', 1, 'k1', 100, 'usd', 'pm', 'pending', 0, 0, {(provider == BillingDatabaseProvider.PostgreSql ? "now()" : "0")}, 1)
            """;
        Exception thrown = provider == BillingDatabaseProvider.PostgreSql
            ? await Assert.ThrowsAsync<PostgresException>(() => ExecutePostgresAsync(raw, sql))
            : await Assert.ThrowsAsync<SqliteException>(() => ExecuteSqliteAsync(raw, sql));
        var translated = Assert.IsType<BillingValidationException>(DatabaseErrors.Translate(thrown));
        Assert.Equal("currency", translated.Field);
    }

    /// <summary>
    /// The outbox row is written in the state change's transaction: when the event insert fails after the
    /// subscription update has been sent, neither is kept.
    /// </summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task A_failure_after_the_state_change_rolls_back_the_state_change_and_its_event(BillingDatabaseProvider provider)
    {
        var store = await NewStoreAsync(provider);
        await CommitAsync(store, s =>
        {
            s.Subscriptions.Add(Subscription("sub_1"));
            s.Outbox.Append(Event("evt_1"));
        });

        await using (var session = await store.BeginAsync())
        {
            var sub = await session.Subscriptions.GetAsync("sub_1");
            session.Subscriptions.Update(sub! with { Quantity = 5 });
            session.Outbox.Append(Event("evt_2"));
            session.Outbox.Append(Event("evt_1")); // already in the outbox: the insert fails after the update
            await Assert.ThrowsAsync<DuplicateKeyException>(async () => await session.CommitAsync());
        }

        await using var after = await store.BeginAsync();
        var stored = await after.Subscriptions.GetAsync("sub_1");
        Assert.Equal(1, stored!.Quantity);
        Assert.Equal(1, stored.Version);
        Assert.Equal(["evt_1"], (await after.Outbox.ReadAsync(0, 10)).Select(e => e.Event.Id));
    }

    /// <summary>
    /// On PostgreSQL a session's writes go out as one statement batch: a stale update placed after inserts aborts the
    /// whole batch, so the inserts are not kept either, and the conflict names the record and the version read.
    /// </summary>
    [Fact]
    public async Task A_stale_update_after_inserts_in_one_batch_keeps_none_of_them()
    {
        var store = await NewStoreAsync(BillingDatabaseProvider.PostgreSql);
        await CommitAsync(store, s => s.Subscriptions.Add(Subscription("sub_1")));
        await using var stale = await store.BeginAsync();
        var read = await stale.Subscriptions.GetAsync("sub_1");
        await using (var other = await store.BeginAsync())
        {
            other.Subscriptions.Update((await other.Subscriptions.GetAsync("sub_1"))! with { Quantity = 7 });
            await other.CommitAsync();
        }

        stale.Customers.Add(Customer("cus_batch"));
        stale.Outbox.Append(Event("evt_batch"));
        stale.Subscriptions.Update(read! with { Quantity = 9 });
        var conflict = await Assert.ThrowsAsync<ConcurrencyConflictException>(async () => await stale.CommitAsync());
        Assert.Equal(("subscription", "sub_1", 1L), (conflict.ObjectType, conflict.Id, conflict.ExpectedVersion));

        await using var after = await store.BeginAsync();
        Assert.Null(await after.Customers.GetAsync("cus_batch"));
        Assert.Empty(await after.Outbox.ReadAsync(0, 10));
        Assert.Equal((7L, 2L), ((await after.Subscriptions.GetAsync("sub_1"))!.Quantity, (await after.Subscriptions.GetAsync("sub_1"))!.Version));
    }

    /// <summary>
    /// The PostgreSQL defaults: statement preparation and no connection reset are added unless the connection string
    /// already says otherwise.
    /// </summary>
    [Fact]
    public void The_PostgreSQL_connection_defaults_leave_explicit_settings_alone()
    {
        var tuned = new NpgsqlConnectionStringBuilder(NpgsqlDefaults.Tuned("Host=h;Username=u"));
        Assert.Equal((32, 2, true), (tuned.MaxAutoPrepare, tuned.AutoPrepareMinUsages, tuned.NoResetOnClose));
        var explicitSettings = new NpgsqlConnectionStringBuilder(NpgsqlDefaults.Tuned("Host=h;Username=u;Max Auto Prepare=5;No Reset On Close=false"));
        Assert.Equal((5, false), (explicitSettings.MaxAutoPrepare, explicitSettings.NoResetOnClose));
    }

    /// <summary>The database allows one period invoice per (subscription, period start), whatever the dedup key.</summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task A_second_period_invoice_for_the_same_subscription_and_period_is_rejected(BillingDatabaseProvider provider)
    {
        var store = await NewStoreAsync(provider);
        await CommitAsync(store, s => s.Invoices.Add(Invoice("inv_1") with { SubscriptionId = "sub_1", Reason = BillingReason.SubscriptionCycle }));
        var error = await Assert.ThrowsAsync<DuplicateKeyException>(() => CommitAsync(store, s => s.Invoices.Add(Invoice("inv_2") with { SubscriptionId = "sub_1", Reason = BillingReason.SubscriptionCycle })));
        Assert.Equal("subscription_period", error.KeyName);

        // Other reasons (an update invoice in the same period) are not period invoices.
        await CommitAsync(store, s => s.Invoices.Add(Invoice("inv_3") with { SubscriptionId = "sub_1", Reason = BillingReason.SubscriptionUpdate }));
    }

    /// <summary>Invoice lines keep their money, order and details; rewriting the lines of an updated invoice replaces them.</summary>
    [Theory]
    [InlineData(BillingDatabaseProvider.PostgreSql)]
    [InlineData(BillingDatabaseProvider.Sqlite)]
    public async Task Invoice_lines_round_trip_and_are_replaced_when_the_invoice_gets_new_lines(BillingDatabaseProvider provider)
    {
        var store = await NewStoreAsync(provider);
        var period = new BillingPeriod(T0, T0.AddMonths(1));
        IReadOnlyList<InvoiceLine> lines =
        [
            new(InvoiceLineKind.Plan, "Pro × 2", new Money(5_800, Currency.USD)) { Quantity = 2, Period = period },
            new(InvoiceLineKind.Usage, "API calls", new Money(1_234, Currency.USD)) { Quantity = 12_340, Period = period, MeterKey = "api_calls" },
            new(InvoiceLineKind.Tax, "VAT 19%", new Money(1_336, Currency.USD)) { TaxRate = new TaxRate("VAT", 190_000) },
        ];
        await CommitAsync(store, s => s.Invoices.Add(Invoice("inv_1") with { Lines = lines }));
        await using (var session = await store.BeginAsync())
        {
            var read = await session.Invoices.GetAsync("inv_1");
            Assert.Equal(lines, read!.Lines);
            session.Invoices.Update(read with { Lines = [lines[0]] });
            await session.CommitAsync();
        }

        await using var after = await store.BeginAsync();
        Assert.Equal([lines[0]], (await after.Invoices.GetAsync("inv_1"))!.Lines);
    }

    /// <summary>
    /// <c>AddBilling().AddEntityFrameworkCore(o =&gt; o.UseSqlite(...))</c> replaces the in-memory store, and the
    /// engine runs a customer's first subscription end to end on it.
    /// </summary>
    [Fact]
    public async Task AddEntityFrameworkCore_registers_the_store_and_the_engine_runs_on_it()
    {
        var services = new ServiceCollection();
        services.AddBilling().AddEntityFrameworkCore(o => o.UseSqlite(_sqlite.NewConnectionString())).AddFakePaymentGateway();
        await using var provider = services.BuildServiceProvider();
        Assert.IsType<EntityFrameworkBillingStore>(provider.GetRequiredService<IBillingStore>());
        await provider.GetRequiredService<Billing.EntityFrameworkCore.Migrations.BillingMigrator>().MigrateAsync();

        var engine = provider.GetRequiredService<BillingEngine>();
        var plan = await engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(new Money(2_900, Currency.USD)), BillingInterval.Monthly));
        var customer = await engine.CreateCustomerAsync(new NewCustomer("Ada", "ada@example.com", Currency.USD) { PaymentMethod = Billing.Testing.Payments.FakePaymentGateway.Visa });
        var subscription = await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        Assert.Equal(SubscriptionStatus.Active, subscription.Status);
        var invoices = await engine.ListInvoicesAsync(subscription.Id);
        Assert.Equal(InvoiceStatus.Paid, Assert.Single(invoices).Status);
    }

    /// <summary>The tables map into a host's own context too, with the schema the host chooses.</summary>
    [Fact]
    public async Task ApplyBillingConfiguration_maps_the_tables_into_a_hosts_own_context()
    {
        var cs = await _database.ConnectionString.Value;
        var store = EntityFrameworkBillingStore.ForPostgreSql(cs, "host_schema");
        await store.MigrateAsync();
        await CommitAsync(store, s => s.Customers.Add(Customer("cus_host")));

        await using var host = new HostContext(new DbContextOptionsBuilder<HostContext>().UseNpgsql(cs).Options);
        var customers = host.Model.FindEntityType(typeof(CustomerRow))!;
        Assert.Equal("customers", customers.GetTableName());
        Assert.Equal("host_schema", customers.GetSchema());
        Assert.Equal("credit_balance_minor", customers.FindProperty(nameof(CustomerRow.CreditBalanceMinor))!.GetColumnName());
        Assert.Equal("cus_host", (await host.Set<CustomerRow>().SingleAsync()).Id);
    }

    private async Task<EntityFrameworkBillingStore> NewStoreAsync(BillingDatabaseProvider provider) =>
        provider == BillingDatabaseProvider.PostgreSql
            ? await TestDatabases.NewPostgresStoreAsync(await _database.ConnectionString.Value)
            : await _sqlite.NewStoreAsync();

    private static async Task CommitAsync(EntityFrameworkBillingStore store, Action<IBillingSession> write)
    {
        await using var session = await store.BeginAsync();
        write(session);
        await session.CommitAsync();
    }

    private static async Task ExecutePostgresAsync(string cs, string sql)
    {
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task ExecuteSqliteAsync(string cs, string sql)
    {
        await using var connection = new SqliteConnection(cs);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    private static Customer Customer(string id) => new()
    {
        Id = id, Name = "Ada", Email = "ada@example.com", Currency = Currency.USD, TimeZoneId = "Etc/UTC",
        CreditBalance = Money.Zero(Currency.USD), CreatedAt = T0,
    };

    private static Subscription Subscription(string id) => new()
    {
        Id = id, CustomerId = "cus_1", PlanId = "plan_1", Quantity = 1, Status = SubscriptionStatus.Active, ScheduleStart = T0,
        AnchorLocal = new DateTime(2025, 3, 1, 12, 0, 0, DateTimeKind.Unspecified), CurrentPeriod = new BillingPeriod(T0, T0.AddMonths(1)), CreatedAt = T0,
    };

    private static Invoice Invoice(string id)
    {
        var zero = Money.Zero(Currency.USD);
        return new Invoice
        {
            Id = id, CustomerId = "cus_1", DedupKey = $"dk_{id}", Reason = BillingReason.Manual, Status = InvoiceStatus.Draft, Currency = Currency.USD,
            Period = new BillingPeriod(T0, T0.AddMonths(1)), Lines = [], Subtotal = zero, Discount = zero, Tax = zero, Total = zero,
            CreditApplied = zero, AmountDue = zero, AmountPaid = zero, Dunning = DunningState.Initial(1), CreatedAt = T0,
        };
    }

    private static BillingEvent Event(string id) => new() { Id = id, Type = "subscription.updated", OccurredAt = T0, ObjectType = "subscription", ObjectId = "sub_1" };

    /// <summary>A host's own context with the billing tables mapped in.</summary>
    private sealed class HostContext(DbContextOptions<HostContext> options) : DbContext(options)
    {
        protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.ApplyBillingConfiguration(Database, "host_schema");
    }

    /// <summary>One database for the class.</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("behaviour"));
    }
}
