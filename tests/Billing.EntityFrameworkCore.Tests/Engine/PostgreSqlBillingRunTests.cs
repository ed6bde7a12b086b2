using Billing.Engine;
using Billing.EntityFrameworkCore.Storage;
using Billing.EntityFrameworkCore.Tests.Support;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using Billing.Testing.Time;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Billing.EntityFrameworkCore.Tests.Engine;

/// <summary>The billing run on real PostgreSQL: several runs at once, and a run that crashes half-way.</summary>
public sealed class PostgreSqlBillingRunTests : IClassFixture<PostgreSqlBillingRunTests.Database>
{
    private readonly Database _database;

    /// <summary>Creates the test class.</summary>
    public PostgreSqlBillingRunTests(Database database) => _database = database;

    /// <summary>
    /// Four runs in parallel, each with its own engine, store and connections, over 2,000 subscriptions through 12
    /// monthly periods: exactly 24,000 invoices, one per (subscription, period), numbered 1..24,000 without a gap or
    /// a repeat, all paid, and the gateway never saw one idempotency key twice.
    /// </summary>
    [Fact]
    public async Task Four_parallel_runs_over_2000_subscriptions_and_12_periods_make_exactly_24000_invoices()
    {
        const int Subscriptions = 2_000;
        const int Months = 12;
        var cs = await _database.ConnectionString.Value;
        var seedStore = await TestDatabases.NewPostgresStoreAsync(cs);
        await Seed.ActiveMonthlySubscriptionsAsync(seedStore, Subscriptions);
        var gateway = new FakePaymentGateway();
        var time = new FakeTimeProvider(Seed.Start);
        var engines = Enumerable.Range(0, 4)
            .Select(_ => NewEngine(EntityFrameworkBillingStore.ForPostgreSql(cs, seedStore.Schema), gateway, time))
            .ToList();

        var results = new List<BillingRunResult>();
        for (var month = 1; month <= Months; month++)
        {
            // Renewals are due at the month boundary; their drafts finalize and are charged an hour later.
            var now = Seed.Start.AddMonths(month).AddHours(2);
            time.SetUtcNow(now);
            results.AddRange(await Task.WhenAll(engines.Select(e => Task.Run(() => e.AdvanceAsync(now)))));
        }

        Assert.Equal(Subscriptions * Months, results.Sum(r => r.InvoicesCreated));
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        var s = seedStore.Schema;
        Assert.Equal(Subscriptions * Months, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoices"));
        Assert.Equal(Subscriptions * Months, await ScalarAsync(connection, $"SELECT count(DISTINCT (subscription_id, period_start)) FROM {s}.invoices"));
        Assert.Equal(Subscriptions * Months, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoices WHERE status = 'paid' AND amount_paid_minor = 2900"));
        Assert.Equal(Subscriptions * Months, await ScalarAsync(connection, $"SELECT count(DISTINCT number) FROM {s}.invoices"));
        Assert.Equal(Subscriptions * Months, await ScalarAsync(connection, $"SELECT max(substring(number from 5)::bigint) FROM {s}.invoices"));
        Assert.Equal(1, await ScalarAsync(connection, $"SELECT min(substring(number from 5)::bigint) FROM {s}.invoices"));
        Assert.Equal(Subscriptions * Months, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoice_lines"));
        Assert.Equal(Subscriptions, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.subscriptions WHERE current_period_start = '2026-01-01T00:00:00Z' AND status = 'active'"));

        Assert.Equal(Subscriptions * Months, gateway.Calls.Count);
        Assert.Equal(Subscriptions * Months, gateway.Calls.Select(c => c.IdempotencyKey).Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(new Money(2_900L * Subscriptions * Months, Currency.USD), gateway.TotalCaptured(Currency.USD));
    }

    /// <summary>
    /// A run that crashes part-way through a batch leaves every renewal either whole (subscription moved on, its
    /// invoice with its line) or not started; after the crashed run's claims expire, a second run completes the
    /// batch and every subscription has exactly one invoice for the period.
    /// </summary>
    [Fact]
    public async Task A_run_that_crashes_mid_batch_leaves_no_half_written_invoice_and_a_rerun_completes_it_without_duplicates()
    {
        const int Subscriptions = 300;
        var cs = await _database.ConnectionString.Value;
        var store = await TestDatabases.NewPostgresStoreAsync(cs);
        await Seed.ActiveMonthlySubscriptionsAsync(store, Subscriptions);
        var renewal = Seed.Start.AddMonths(1);
        var time = new FakeTimeProvider(renewal);
        var crashing = new CrashingUsage(crashAfter: 120);
        var options = new BillingOptions { RunBatchSize = 200, RunParallelism = 4 };
        var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(options), new RandomIdGenerator(), crashing);

        await Assert.ThrowsAsync<InvalidOperationException>(() => engine.AdvanceAsync(renewal));

        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        var s = store.Schema;
        var invoices = await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoices");
        Assert.InRange(invoices, 1, Subscriptions - 1);
        Assert.Equal(invoices, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoice_lines"));
        Assert.Equal(invoices, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.subscriptions WHERE current_period_start = '{renewal:O}' AND latest_invoice_id IS NOT NULL"));
        Assert.Equal(Subscriptions - invoices, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.subscriptions WHERE current_period_start = '{Seed.Start:O}' AND latest_invoice_id IS NULL"));
        Assert.Equal(invoices, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoices i JOIN {s}.subscriptions x ON x.latest_invoice_id = i.id"));

        // Right away, the crashed run's claims still hold: a new run does not touch its batch.
        var rerun = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(options), new RandomIdGenerator(), new NoUsageCharges());
        var early = await rerun.AdvanceAsync(renewal);
        Assert.True(early.InvoicesCreated < Subscriptions - invoices);

        // After the lease the rest is claimable: the re-run completes the batch, once.
        time.Advance(options.RunClaimLease + TimeSpan.FromSeconds(1));
        await rerun.AdvanceAsync(renewal);
        await rerun.AdvanceAsync(renewal);
        Assert.Equal(Subscriptions, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.invoices"));
        Assert.Equal(Subscriptions, await ScalarAsync(connection, $"SELECT count(DISTINCT subscription_id) FROM {s}.invoices"));
        Assert.Equal(Subscriptions, await ScalarAsync(connection, $"SELECT count(*) FROM {s}.subscriptions WHERE current_period_start = '{renewal:O}'"));
    }

    private static BillingEngine NewEngine(IBillingStore store, FakePaymentGateway gateway, TimeProvider time) =>
        new(store, gateway, time, Options.Create(new BillingOptions { RunBatchSize = 250, RunParallelism = 4 }), new RandomIdGenerator(), new NoUsageCharges());

    private static async Task<long> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>A usage source that throws once it has been asked <c>crashAfter</c> times: the run dies mid-batch.</summary>
    private sealed class CrashingUsage(int crashAfter) : IUsageChargeSource
    {
        private int _calls;

        public ValueTask<IReadOnlyList<InvoiceLine>> GetUsageLinesAsync(Subscription subscription, Catalog.Plan plan, BillingPeriod period, CancellationToken cancellationToken = default) =>
            Interlocked.Increment(ref _calls) > crashAfter
                ? throw new InvalidOperationException("Simulated crash in the middle of a batch.")
                : ValueTask.FromResult<IReadOnlyList<InvoiceLine>>([]);
    }

    /// <summary>One database for the class.</summary>
    public sealed class Database
    {
        /// <summary>The database's connection string.</summary>
        public Lazy<Task<string>> ConnectionString { get; } = new(() => TestDatabases.NewPostgresDatabaseAsync("run"));
    }
}
