using System.Net;
using Billing.SampleHost.Tests.Support;
using Billing.SampleHost.Workers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.SampleHost.Tests;

/// <summary>The background workers on the embedded SQLite host.</summary>
public sealed class WorkerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_billing_run_worker_renews_and_charges_a_due_subscription_without_any_api_call_to_run()
    {
        await using var host = new WorkerHostFactory { OutboxEnabled = false };
        var client = host.Client();
        var plan = (await client.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod = "pm_card_visa" }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var sub = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
        var subId = sub.GetProperty("id").GetString();
        var periodEnd = sub.GetProperty("currentPeriod").GetProperty("end").GetDateTimeOffset();
        Assert.Equal(1, (await client.Get($"/v1/invoices?subscription={subId}")).Ok().Data.GetArrayLength());

        // Nothing is due yet: the worker runs but leaves the subscription alone. (A run during the creation request may
        // have sent the first invoice's charge again: it is due between its finalization and the request's charge,
        // and the payment's idempotency key makes both one charge. Hence the totals are compared from here on.)
        var runs = host.Status.BillingRun.Runs;
        await Wait.Until(() => host.Status.BillingRun.Runs >= runs + 2, Timeout, "two more billing runs");
        var before = host.Status.BillingRun;
        Assert.Equal(0, before.SubscriptionsProcessed);

        // Past the renewal and the draft's hour: the worker renews, finalizes and charges on its own.
        host.Clock.SetUtcNow(periodEnd.AddHours(2));
        await Wait.Until(
            async () =>
            {
                var invoices = (await client.Get($"/v1/invoices?subscription={subId}")).Ok().Data;
                return invoices.GetArrayLength() == 2 && invoices.EnumerateArray().All(i => i.GetProperty("status").GetString() == "paid");
            },
            Timeout,
            "the renewal invoice to be paid");

        var renewal = (await client.Get($"/v1/invoices?subscription={subId}")).Ok().Data[0];
        Assert.Equal(periodEnd, renewal.GetProperty("period").GetProperty("start").GetDateTimeOffset());
        Assert.Equal(2000, renewal.GetProperty("amountPaid").GetInt64());
        var payments = (await client.Get($"/v1/invoices/{renewal.GetProperty("id").GetString()}/payments")).Ok().Data;
        Assert.Equal("succeeded", Assert.Single(payments.EnumerateArray()).GetProperty("status").GetString());
        var renewed = (await client.Get($"/v1/subscriptions/{subId}")).Ok().Data;
        Assert.Equal(periodEnd, renewed.GetProperty("currentPeriod").GetProperty("start").GetDateTimeOffset());

        var totals = host.Status.BillingRun;
        Assert.Equal(1, totals.SubscriptionsProcessed);
        Assert.Equal(1, totals.InvoicesCreated - before.InvoicesCreated);
        Assert.Equal(1, totals.InvoicesFinalized - before.InvoicesFinalized);
        Assert.Equal(1, totals.PaymentsAttempted - before.PaymentsAttempted);
        Assert.Equal(0, totals.Failures);
    }

    [Fact]
    public async Task The_outbox_dispatcher_dispatches_every_event_once_and_resumes_from_its_checkpoint_after_a_restart()
    {
        using var directory = new HostDirectory();
        var sink = new RecordingSink();
        await using (var first = new WorkerHostFactory(directory.Path) { BillingRunEnabled = false, Sink = sink, OutboxBatchSize = 3 })
        {
            var client = first.Client();
            (await client.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created);
            for (var i = 0; i < 4; i++)
            {
                (await client.Post("/v1/customers", Api.NewCustomer($"C{i}", $"c{i}@example.com"))).Ok(HttpStatusCode.Created);
            }

            var outbox = await OutboxReader.ReadAllAsync(first.Services);
            Assert.True(outbox.Count >= 4, $"{outbox.Count} events");
            // The sink sees an event before its batch's checkpoint is stored: wait for both.
            await Wait.Until(() => sink.Entries.Count >= outbox.Count && first.Status.Outbox.Position >= outbox[^1].Position, Timeout, "the first host to dispatch the outbox");
            Assert.Equal(outbox.Select(e => e.Event.Id), sink.Entries.Select(e => e.Event.Id));
            Assert.Equal(outbox[^1].Position, await first.Services.GetRequiredService<OutboxCheckpointStore>().GetAsync(OutboxCheckpointStore.DefaultName, default));
            Assert.True(first.Status.Outbox.Batches >= 2, "batches of 3");
        }

        var before = sink.Entries.Count;
        await using (var second = new WorkerHostFactory(directory.Path) { BillingRunEnabled = false, Sink = sink })
        {
            var client = second.Client();
            (await client.Post("/v1/customers", Api.NewCustomer("Late", "late@example.com"))).Ok(HttpStatusCode.Created);
            var outbox = await OutboxReader.ReadAllAsync(second.Services);
            Assert.True(outbox.Count > before);
            await Wait.Until(() => sink.Entries.Count >= outbox.Count && second.Status.Outbox.Position >= outbox[^1].Position, Timeout, "the restarted host to dispatch the new events");

            // Give the dispatcher a few more rounds: nothing is dispatched twice.
            var checks = second.Status.Outbox.Checks;
            await Wait.Until(() => second.Status.Outbox.Checks >= checks + 3, Timeout, "more dispatcher rounds");
            Assert.Equal(outbox.Select(e => e.Event.Id), sink.Entries.Select(e => e.Event.Id));
            Assert.Equal(outbox.Count - before, second.Status.Outbox.Dispatched);
        }
    }

    [Fact]
    public async Task A_graceful_stop_finishes_the_batch_in_hand_and_starts_no_other()
    {
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sink = new RecordingSink();
        var host = new WorkerHostFactory { BillingRunEnabled = false, OutboxEnabled = false, Sink = sink };
        var directory = host.Directory;
        try
        {
            // Make events with the dispatcher off, then start one on the same database whose first dispatch blocks.
            var client = host.Client();
            for (var i = 0; i < 6; i++)
            {
                (await client.Post("/v1/customers", Api.NewCustomer($"C{i}", $"c{i}@example.com"))).Ok(HttpStatusCode.Created);
            }

            var outbox = await OutboxReader.ReadAllAsync(host.Services);
            Assert.True(outbox.Count >= 6);
            await using var dispatcher = new WorkerHostFactory(directory) { BillingRunEnabled = false, OutboxBatchSize = 4, Sink = sink };
            sink.OnDispatch = async entry =>
            {
                if (entry.Position == outbox[0].Position)
                {
                    held.TrySetResult();
                    await hold.Task;
                }
            };
            _ = dispatcher.Server; // starts the host and its workers
            await held.Task.WaitAsync(Timeout);

            var stopping = Task.Run(async () => await dispatcher.DisposeAsync());
            await Task.Delay(300);
            Assert.False(stopping.IsCompleted, "the stop waits for the batch in hand");
            hold.SetResult();
            await stopping.WaitAsync(Timeout);

            // The batch in hand (4 events) was finished and its checkpoint stored; no further batch started.
            Assert.Equal(outbox.Take(4).Select(e => e.Event.Id), sink.Entries.Select(e => e.Event.Id));
            Assert.Equal(outbox[3].Position, await host.Services.GetRequiredService<OutboxCheckpointStore>().GetAsync(OutboxCheckpointStore.DefaultName, default));
        }
        finally
        {
            hold.TrySetResult();
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_failing_sink_is_retried_after_the_interval_without_losing_or_repeating_events()
    {
        var sink = new RecordingSink();
        var failures = 0;
        sink.OnDispatch = entry =>
        {
            if (entry.Position == 2 && Interlocked.Increment(ref failures) <= 2)
            {
                throw new InvalidOperationException("The sink is down.");
            }

            return Task.CompletedTask;
        };
        await using var host = new WorkerHostFactory { BillingRunEnabled = false, Sink = sink, OutboxBatchSize = 2 };
        var client = host.Client();
        for (var i = 0; i < 4; i++)
        {
            (await client.Post("/v1/customers", Api.NewCustomer($"C{i}", $"c{i}@example.com"))).Ok(HttpStatusCode.Created);
        }

        var outbox = await OutboxReader.ReadAllAsync(host.Services);
        await Wait.Until(() => sink.Entries.Count >= outbox.Count && host.Status.Outbox.Position >= outbox[^1].Position, Timeout, "the outbox to be dispatched after the sink recovered");

        // The event before the failure kept its checkpoint; the failing one was retried until it went through.
        Assert.Equal(3, failures);
        Assert.Equal(outbox.Select(e => e.Event.Id), sink.Entries.Select(e => e.Event.Id));
        Assert.Equal(outbox.Count, host.Status.Outbox.Dispatched);
    }

    [Theory]
    [InlineData("Billing:Workers:BillingRun:Interval", "00:00:00", "Billing:Workers:BillingRun:Interval")]
    [InlineData("Billing:Workers:Outbox:Interval", "2.00:00:00", "Billing:Workers:Outbox:Interval")]
    [InlineData("Billing:Workers:Outbox:BatchSize", "0", "Billing:Workers:Outbox:BatchSize")]
    public void Invalid_worker_settings_stop_the_start(string key, string value, string named)
    {
        using var host = new SettingHostFactory(key, value);
        var e = Assert.ThrowsAny<Exception>(() => host.Server);
        Assert.Contains(named, e.ToString(), StringComparison.Ordinal);
    }

    private sealed class SettingHostFactory(string key, string value) : SampleHostFactory
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.UseSetting(key, value);
        }
    }
}
