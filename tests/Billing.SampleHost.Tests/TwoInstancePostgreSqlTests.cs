using System.Globalization;
using System.Net;
using Billing.Payments;
using Billing.SampleHost.Tests.Support;
using Billing.SampleHost.Workers;
using Billing.Testing.Payments;
using Billing.Testing.Servers;
using Billing.Testing.Time;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;
using Xunit.Abstractions;

namespace Billing.SampleHost.Tests;

/// <summary>
/// Two host instances on one PostgreSQL database, both running the billing-run worker and the outbox dispatcher.
/// They share the clock (a fake <see cref="TimeProvider"/> moved a period at a time) and the payment gateway (one
/// fake "Stripe account"), so a duplicate renewal or charge by the two workers would show in the database or at the
/// gateway.
/// </summary>
public sealed class TwoInstancePostgreSqlTests(ITestOutputHelper output)
{
    private const int Subscriptions = 500;
    private const int Periods = 3;
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task Two_instances_advance_500_subscriptions_three_periods_without_a_duplicate_invoice_charge_or_event()
    {
        var server = await LocalPostgresServer.SharedAsync();
        var connectionString = await server.CreateDatabaseAsync("twohosts");
        var shared = new Shared(new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero)), new FakePaymentGateway(), new RecordingSink());
        await using var a = new InstanceFactory(connectionString, shared);
        await using var b = new InstanceFactory(connectionString, shared);
        _ = a.Server; // one after the other: migrations and the bootstrap key
        _ = b.Server;
        HttpClient[] clients = [a.Client(), b.Client()];

        // 500 customers with a card, each subscribed (the first invoice is charged at creation), through both instances.
        var plan = (await clients[0].Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var start = shared.Clock.GetUtcNow();
        await Parallel.ForEachAsync(Enumerable.Range(0, Subscriptions), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            var client = clients[i % 2];
            var customer = (await client.Post("/v1/customers", new { name = $"C{i}", email = $"c{i}@example.com", currency = "USD", paymentMethod = "pm_card_visa" }))
                .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
            (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created);
        });
        Assert.Equal(Subscriptions, await Scalar(connectionString, "SELECT count(*) FROM billing.invoices WHERE lower(status) = 'paid'"));

        // Period by period: move the shared clock past the renewal and the draft's hour; the workers do the rest.
        for (var period = 1; period <= Periods; period++)
        {
            shared.Clock.SetUtcNow(start.AddMonths(period).AddHours(2));
            var expected = Subscriptions * (period + 1);
            await Wait.Until(async () => await Scalar(connectionString, "SELECT count(*) FROM billing.invoices WHERE lower(status) = 'paid'") >= expected, Timeout, $"period {period}: {expected} paid invoices");
        }

        // Both workers drained: each finishes two more runs with nothing left to do.
        var runs = (a.Status.BillingRun.Runs, b.Status.BillingRun.Runs);
        await Wait.Until(() => a.Status.BillingRun.Runs >= runs.Item1 + 2 && b.Status.BillingRun.Runs >= runs.Item2 + 2, Timeout, "both workers to run twice more");
        Assert.All([a.Status.BillingRun.Last!, b.Status.BillingRun.Last!], r => Assert.Equal(0, r.SubscriptionsProcessed + r.InvoicesFinalized + r.PaymentsAttempted));

        // The database: exactly one invoice per subscription and period, all paid; one successful payment per invoice.
        const int invoices = Subscriptions * (Periods + 1);
        Assert.Equal(invoices, await Scalar(connectionString, "SELECT count(*) FROM billing.invoices"));
        Assert.Equal(invoices, await Scalar(connectionString, "SELECT count(*) FROM billing.invoices WHERE lower(status) = 'paid' AND amount_paid_minor = total_minor"));
        Assert.Equal(0, await Scalar(connectionString, "SELECT count(*) FROM (SELECT 1 FROM billing.invoices GROUP BY subscription_id, period_start HAVING count(*) > 1) d"));
        Assert.Equal(0, await Scalar(connectionString, "SELECT count(*) FROM (SELECT 1 FROM billing.invoices GROUP BY subscription_id HAVING count(*) <> " + (Periods + 1).ToString(CultureInfo.InvariantCulture) + ") d"));
        Assert.Equal(invoices, await Scalar(connectionString, "SELECT count(*) FROM billing.payments WHERE lower(status) = 'succeeded'"));
        Assert.Equal(0, await Scalar(connectionString, "SELECT count(*) FROM (SELECT 1 FROM billing.payments WHERE lower(status) = 'succeeded' GROUP BY invoice_id HAVING count(*) > 1) d"));
        Assert.Equal(invoices, await Scalar(connectionString, "SELECT count(DISTINCT invoice_id) FROM billing.payments"));

        // The gateway: one charge (idempotency key) per invoice, each captured once.
        var charges = shared.Gateway.Charges;
        Assert.Equal(invoices, charges.Count);
        Assert.Equal(invoices, charges.Select(c => c.Request.InvoiceId).Distinct(StringComparer.Ordinal).Count());
        Assert.All(charges, c => Assert.Equal(PaymentOutcome.Succeeded, c.Result.Outcome));
        var replays = shared.Gateway.Calls.Count - charges.Count;

        // Both instances did part of the renewals, and together exactly one per subscription and period.
        var (ra, rb) = (a.Status.BillingRun, b.Status.BillingRun);
        output.WriteLine($"instance A: {ra}");
        output.WriteLine($"instance B: {rb}");
        var replayed = shared.Gateway.Calls.GroupBy(c => c.IdempotencyKey, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.First().InvoiceId).ToList();
        output.WriteLine($"gateway replays (same key sent again): {replays}, on invoices of reason: {await Reasons(connectionString, replayed)}");
        Assert.Equal(0, replays); // the request that finalizes an invoice leases it until it has charged it
        Assert.True(ra.InvoicesCreated > 0 && rb.InvoicesCreated > 0, $"both instances renewed: A {ra.InvoicesCreated}, B {rb.InvoicesCreated}");
        Assert.Equal(Subscriptions * Periods, ra.InvoicesCreated + rb.InvoicesCreated);
        Assert.Equal(Subscriptions * Periods, ra.InvoicesFinalized + rb.InvoicesFinalized);
        Assert.Equal(0, ra.Failures + rb.Failures);

        // The outbox: every event dispatched once, by one instance or the other.
        var outbox = await OutboxReader.ReadAllAsync(a.Services);
        // The sink sees an event before its batch's checkpoint (and the instance's totals) are stored: wait for both.
        await Wait.Until(() => shared.Sink.Entries.Count >= outbox.Count && a.Status.Outbox.Dispatched + b.Status.Outbox.Dispatched >= outbox.Count, Timeout, $"{outbox.Count} events dispatched");
        var dispatched = shared.Sink.Entries;
        Assert.Equal(outbox.Count, dispatched.Select(e => e.Event.Id).Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(outbox.Select(e => e.Event.Id).Order(StringComparer.Ordinal), dispatched.Select(e => e.Event.Id).Order(StringComparer.Ordinal));
        Assert.Equal(outbox.Count, a.Status.Outbox.Dispatched + b.Status.Outbox.Dispatched);
        output.WriteLine($"outbox: {outbox.Count} events; A dispatched {a.Status.Outbox.Dispatched} (skipped {a.Status.Outbox.Skipped}), B {b.Status.Outbox.Dispatched} (skipped {b.Status.Outbox.Skipped})");
    }

    private static async Task<long> Scalar(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    private static async Task<string> Reasons(string connectionString, List<string> invoiceIds)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT reason, count(*) FROM billing.invoices WHERE id = ANY(@ids) GROUP BY reason", connection);
        command.Parameters.AddWithValue("ids", invoiceIds.ToArray());
        var parts = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            parts.Add($"{reader.GetString(0)} {reader.GetInt64(1)}");
        }

        return string.Join(", ", parts);
    }

    private sealed record Shared(FakeTimeProvider Clock, FakePaymentGateway Gateway, RecordingSink Sink);

    private sealed class InstanceFactory(string connectionString, Shared shared) : SampleHostFactory
    {
        internal WorkerStatus Status => Services.GetRequiredService<WorkerStatus>();

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.UseSetting("Billing:Database:Provider", "postgresql");
            builder.UseSetting("Billing:Database:ConnectionString", connectionString);
            builder.UseSetting("Billing:Workers:BillingRun:Enabled", "true");
            builder.UseSetting("Billing:Workers:BillingRun:Interval", "00:00:00.100");
            builder.UseSetting("Billing:Workers:Outbox:Enabled", "true");
            builder.UseSetting("Billing:Workers:Outbox:Interval", "00:00:00.100");
            builder.UseSetting("Billing:Workers:Outbox:BatchSize", "50");

            // Small claims so that both instances get a share of each period's work.
            builder.UseSetting("Billing:Engine:RunBatchSize", "25");
            builder.UseSetting("Billing:Engine:RunParallelism", "4");
        }

        protected override void ConfigureServices(IServiceCollection services)
        {
            services.Replace(ServiceDescriptor.Singleton<TimeProvider>(shared.Clock));
            services.Replace(ServiceDescriptor.Singleton<IPaymentGateway>(shared.Gateway));
            services.Replace(ServiceDescriptor.Singleton<IOutboxSink>(shared.Sink));
        }
    }
}
