using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json;
using Billing.Diagnostics;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

/// <summary>Tests that read the process-wide "Billing" meter and activity source: run alone, so every measurement
/// they see comes from their own operations.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NonParallelDiagnostics
{
    public const string Name = "Diagnostics (not parallel)";
}

/// <summary>The whole journey over HTTP on a test clock: plan with a metered price → customer → trial → usage →
/// three periods invoiced and paid; then a failing card → dunning (past_due) → a new card → recovery. The "Billing"
/// metrics and spans recorded meanwhile match what the API shows.</summary>
[Collection(NonParallelDiagnostics.Name)]
public sealed class JourneyTests
{
    private static readonly DateTimeOffset Start = new(2027, 5, 1, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Trial_usage_three_periods_then_dunning_and_recovery_with_matching_metrics_and_spans()
    {
        using var telemetry = new Telemetry();
        await using var host = new SampleHostFactory();
        var client = host.Client();
        var clock = (await client.Post("/v1/test_clocks", new { frozenTime = Start, name = "journey" })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        async Task Advance(DateTimeOffset to) => (await client.Post($"/v1/test_clocks/{clock}/advance", new { frozenTime = to })).Ok();

        var plan = (await client.Post("/v1/plans", new
        {
            name = "Journey",
            currency = "USD",
            price = new { model = "flat", amount = 2000 },
            interval = new { unit = "month" },
            trialDays = 14,
            meteredPrices = new[] { new { meter = new { key = "api_calls" }, price = new { model = "per_unit", unitAmount = 3 } } },
        })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();

        // 1. A customer on a trial, paying with the subscription's card.
        var ada = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", testClockId = clock })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var sub = (await client.Post("/v1/subscriptions", new { customerId = ada, planId = plan, paymentMethod = "pm_card_visa" })).Ok(HttpStatusCode.Created).Data;
        var subId = sub.GetProperty("id").GetString();
        Assert.Equal("trialing", sub.GetProperty("status").GetString());
        var trialEnd = Start.AddDays(14);
        Assert.Equal(trialEnd, sub.GetProperty("trialEnd").GetDateTimeOffset());

        await Advance(trialEnd.AddHours(2));
        Assert.Equal("active", (await client.Get($"/v1/subscriptions/{subId}")).Ok().Data.GetProperty("status").GetString());

        // Usage in the first paid period: two accepted, one duplicate, one rejected.
        (await client.Post("/v1/usage", new { customerId = ada, meter = "api_calls", quantity = 10, idempotencyKey = "j-1" })).Ok(HttpStatusCode.Created);
        (await client.Post("/v1/usage", new { customerId = ada, meter = "api_calls", quantity = 5, idempotencyKey = "j-2" })).Ok(HttpStatusCode.Created);
        (await client.Post("/v1/usage", new { customerId = ada, meter = "api_calls", quantity = 10, idempotencyKey = "j-1" })).Ok();
        (await client.Post("/v1/usage", new { customerId = ada, meter = "storage_gb", quantity = 1, idempotencyKey = "j-3" })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");

        // Three periods on: the trial-end invoice and three renewals, all finalized and paid by the fake gateway.
        await Advance(trialEnd.AddMonths(3).AddDays(2));
        var invoices = (await client.Get($"/v1/invoices?subscription={subId}")).Ok().Data.EnumerateArray()
            .OrderBy(i => i.GetProperty("period").GetProperty("start").GetDateTimeOffset()).ToList();
        Assert.Equal([trialEnd, trialEnd.AddMonths(1), trialEnd.AddMonths(2), trialEnd.AddMonths(3)], invoices.Select(i => i.GetProperty("period").GetProperty("start").GetDateTimeOffset()));
        foreach (var invoice in invoices)
        {
            Assert.Equal("paid", invoice.GetProperty("status").GetString());
            Assert.StartsWith("INV-", invoice.GetProperty("number").GetString(), StringComparison.Ordinal);
            Assert.Equal(invoice.GetProperty("total").GetInt64(), invoice.GetProperty("amountPaid").GetInt64());
            var planLine = Assert.Single(invoice.GetProperty("lines").EnumerateArray(), l => l.GetProperty("kind").GetString() == "plan");
            Assert.Equal(2000, planLine.GetProperty("amount").GetInt64());
        }

        var usageLine = Assert.Single(invoices[1].GetProperty("lines").EnumerateArray(), l => l.GetProperty("kind").GetString() == "usage");
        Assert.Equal(15, usageLine.GetProperty("quantity").GetInt64());
        Assert.Equal(45, usageLine.GetProperty("amount").GetInt64());
        Assert.Equal(2045, invoices[1].GetProperty("total").GetInt64());
        Assert.All([invoices[0], invoices[2], invoices[3]], i => Assert.Equal(2000, i.GetProperty("total").GetInt64()));

        // 2. A customer whose card starts failing: dunning, then recovery with a new card.
        var now = trialEnd.AddMonths(3).AddDays(2);
        var bob = (await client.Post("/v1/customers", new { name = "Bob", email = "bob@example.com", currency = "USD", paymentMethod = "pm_card_visa", testClockId = clock })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var bobSub = (await client.Post("/v1/subscriptions", new { customerId = bob, planId = plan, trialDays = 0 })).Ok(HttpStatusCode.Created).Data;
        var bobSubId = bobSub.GetProperty("id").GetString();
        Assert.Equal("active", bobSub.GetProperty("status").GetString());
        (await client.Patch($"/v1/customers/{bob}", new { paymentMethod = "pm_card_chargeDeclined" })).Ok();

        // The plan bills usage: the renewal draft waits for late usage (24 hours) and the draft hour, then is charged.
        var renewalAt = now.AddMonths(1);
        await Advance(renewalAt.AddDays(1).AddHours(2));
        Assert.Equal("past_due", (await client.Get($"/v1/subscriptions/{bobSubId}")).Ok().Data.GetProperty("status").GetString());
        var dunned = (await client.Get($"/v1/invoices?subscription={bobSubId}&status=open")).Ok().Data;
        var dunnedId = Assert.Single(dunned.EnumerateArray()).GetProperty("id").GetString();
        var firstFailure = dunned[0].GetProperty("finalizedAt").GetDateTimeOffset();
        Assert.Equal(firstFailure.AddDays(1), dunned[0].GetProperty("nextPaymentAttemptAt").GetDateTimeOffset());

        // The first retry fails too (same card); the customer then updates the card and the next retry succeeds.
        await Advance(firstFailure.AddDays(1).AddHours(1));
        Assert.Equal("past_due", (await client.Get($"/v1/subscriptions/{bobSubId}")).Ok().Data.GetProperty("status").GetString());
        (await client.Patch($"/v1/customers/{bob}", new { paymentMethod = "pm_card_mastercard" })).Ok();
        await Advance(firstFailure.AddDays(3).AddHours(1));

        Assert.Equal("active", (await client.Get($"/v1/subscriptions/{bobSubId}")).Ok().Data.GetProperty("status").GetString());
        var recovered = (await client.Get($"/v1/invoices/{dunnedId}")).Ok().Data;
        Assert.Equal("paid", recovered.GetProperty("status").GetString());
        var attempts = (await client.Get($"/v1/invoices/{dunnedId}/payments")).Ok().Data.EnumerateArray().ToList();
        Assert.Equal(["failed", "failed", "succeeded"], attempts.Select(p => p.GetProperty("status").GetString()));
        Assert.Equal(["pm_card_chargeDeclined", "pm_card_chargeDeclined", "pm_card_mastercard"], attempts.Select(p => p.GetProperty("paymentMethod").GetString()));
        Assert.Equal("generic_decline", attempts[0].GetProperty("declineCode").GetString());

        // 3. The metrics match what the API and the outbox show.
        var allInvoices = new List<JsonElement>();
        foreach (var s in new[] { subId, bobSubId })
        {
            allInvoices.AddRange((await client.Get($"/v1/invoices?subscription={s}")).Ok().Data.EnumerateArray());
        }

        var payments = new List<JsonElement>();
        foreach (var invoice in allInvoices)
        {
            payments.AddRange((await client.Get($"/v1/invoices/{invoice.GetProperty("id").GetString()}/payments")).Ok().Data.EnumerateArray());
        }

        Assert.Equal(allInvoices.Count, telemetry.Sum(BillingDiagnostics.InvoicesCreated));
        Assert.Equal(7, allInvoices.Count); // Ada: trial end + 4 renewals (the clock moved on for Bob); Bob: creation + renewal
        Assert.Equal(payments.Count(p => p.GetProperty("status").GetString() == "succeeded"), telemetry.Sum(BillingDiagnostics.Payments, ("outcome", "succeeded")));
        Assert.Equal(2, telemetry.Sum(BillingDiagnostics.Payments, ("outcome", "declined"), ("decline_type", "soft")));
        Assert.Equal(payments.Count, telemetry.Sum(BillingDiagnostics.Payments));
        Assert.Equal(2, telemetry.Sum(BillingDiagnostics.UsageEvents, ("status", "accepted")));
        Assert.Equal(1, telemetry.Sum(BillingDiagnostics.UsageEvents, ("status", "duplicate")));
        Assert.Equal(1, telemetry.Sum(BillingDiagnostics.UsageEvents, ("status", "rejected"), ("reason", "no_subscription_for_meter")));
        Assert.Equal(4, telemetry.Sum(BillingDiagnostics.UsageEvents));

        var dunningEvents = (await OutboxReader.ReadAllAsync(host.Services)).Select(e => e.Event.Type).Where(t => t.StartsWith("dunning.", StringComparison.Ordinal)).ToList();
        Assert.Equal(1, dunningEvents.Count(t => t == "dunning.started"));
        Assert.Equal(1, dunningEvents.Count(t => t == "dunning.resolved"));
        foreach (var type in dunningEvents.Distinct())
        {
            Assert.Equal(dunningEvents.Count(t => t == type), telemetry.Sum(BillingDiagnostics.DunningTransitions, ("transition", type["dunning.".Length..])));
        }

        Assert.Equal(dunningEvents.Count, telemetry.Sum(BillingDiagnostics.DunningTransitions));

        // Spans: one per usage call, one per payment attempt (tagged with its outcome), run steps inside runs.
        var spans = telemetry.Spans;
        Assert.Equal(4, spans.Count(a => a.OperationName == BillingDiagnostics.UsageIngestActivity));
        var paymentSpans = spans.Where(a => a.OperationName == BillingDiagnostics.PaymentAttemptActivity).ToList();
        Assert.Equal(payments.Count, paymentSpans.Count);
        Assert.Equal(2, paymentSpans.Count(a => (string?)a.GetTagItem("billing.payment.outcome") == "declined"));
        Assert.Equal(["in"], paymentSpans.Select(a => ((string)a.GetTagItem("billing.invoice_id")!)[..2]).Distinct());
        var runs = spans.Where(a => a.OperationName == BillingDiagnostics.RunActivity).ToDictionary(a => a.SpanId);
        var steps = spans.Where(a => a.OperationName == BillingDiagnostics.RunStepActivity).ToList();
        Assert.NotEmpty(runs);
        Assert.NotEmpty(steps);
        Assert.All(steps, s => Assert.True(runs.ContainsKey(s.ParentSpanId), "a step runs inside a billing.run span"));
        Assert.Equal(
            runs.Values.Sum(r => Convert.ToInt64(r.GetTagItem("billing.invoices_created"), System.Globalization.CultureInfo.InvariantCulture)),
            allInvoices.Count(i => i.GetProperty("billingReason").GetString() == "subscription_cycle"));
    }

    /// <summary>Listens to the "Billing" meter and activity source.</summary>
    private sealed class Telemetry : IDisposable
    {
        private readonly Lock _gate = new();
        private readonly List<(string Instrument, long Value, Dictionary<string, string?> Tags)> _measurements = [];
        private readonly List<Activity> _spans = [];
        private readonly MeterListener _meters = new();
        private readonly ActivityListener _activities;

        public Telemetry()
        {
            _meters.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == BillingDiagnostics.MeterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                var map = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (var tag in tags)
                {
                    map[tag.Key] = tag.Value?.ToString();
                }

                lock (_gate)
                {
                    _measurements.Add((instrument.Name, value, map));
                }
            });
            _meters.Start();
            _activities = new ActivityListener
            {
                ShouldListenTo = source => source.Name == BillingDiagnostics.ActivitySourceName,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity =>
                {
                    lock (_gate)
                    {
                        _spans.Add(activity);
                    }
                },
            };
            ActivitySource.AddActivityListener(_activities);
        }

        public IReadOnlyList<Activity> Spans
        {
            get
            {
                lock (_gate)
                {
                    return [.. _spans];
                }
            }
        }

        public long Sum(string instrument, params (string Key, string Value)[] tags)
        {
            lock (_gate)
            {
                return _measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && v == t.Value)).Sum(m => m.Value);
            }
        }

        public void Dispose()
        {
            _meters.Dispose();
            _activities.Dispose();
        }
    }
}
