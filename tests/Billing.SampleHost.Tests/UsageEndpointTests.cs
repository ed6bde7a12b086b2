using System.Net;
using System.Text.Json;
using Billing.Engine;
using Billing.SampleHost.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.SampleHost.Tests;

public sealed class UsageEndpointTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    /// <summary>An active subscription to a 10.00 USD plan with metered api_calls (graduated: 10 at 0.05, then 0.02),
    /// a hard limit of 100 api_calls per period and the boolean feature sso.</summary>
    private static async Task<JsonElement> Subscribe(HttpClient client)
    {
        var plan = (await client.Post("/v1/plans", new
        {
            name = "Metered",
            currency = "USD",
            price = new { model = "flat", amount = 1000 },
            interval = new { unit = "month" },
            meteredPrices = new[] { new { meter = new { key = "api_calls" }, price = new { model = "graduated", tiers = new object[] { new { upTo = 10, unitAmount = 5 }, new { unitAmount = 2 } } } } },
            entitlements = new object[] { new { feature = "sso" }, new { feature = "api_limit", kind = "metered_limit", limit = 100, meterKey = "api_calls", enforcement = "hard" } },
        })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod = "pm_card_visa" }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        return (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
    }

    [Fact]
    public async Task One_event_is_accepted_once_and_a_retry_is_a_duplicate()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var customer = sub.GetProperty("customerId").GetString();
        var accepted = (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 3, idempotencyKey = "evt_1" })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal("accepted", accepted.GetProperty("status").GetString());
        Assert.Equal(3, accepted.GetProperty("total").GetInt64());
        Assert.Equal(sub.GetProperty("id").GetString(), accepted.GetProperty("subscriptionId").GetString());
        Assert.Equal("api_calls", accepted.GetProperty("meter").GetString());
        Assert.Equal(sub.GetProperty("currentPeriod").GetProperty("start").GetDateTimeOffset(), accepted.GetProperty("periodStart").GetDateTimeOffset());

        var duplicate = (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 3, idempotencyKey = "evt_1" })).Ok().Data;
        Assert.Equal("duplicate", duplicate.GetProperty("status").GetString());
        var bySubscription = (await client.Post("/v1/usage", new { subscriptionId = sub.GetProperty("id").GetString(), meter = "api_calls", idempotencyKey = "evt_2", timestamp = host.Clock.GetUtcNow() })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal(4, bySubscription.GetProperty("total").GetInt64());
    }

    [Theory]
    [InlineData("""{"customerId":"cus_x","meter":"api_calls"}""", "idempotencyKey")]
    [InlineData("""{"meter":"api_calls","idempotencyKey":"k"}""", "customerId")]
    [InlineData("""{"customerId":"cus_x","meter":"Bad Meter","idempotencyKey":"k"}""", "meter")]
    [InlineData("""{"customerId":"cus_x","meter":"api_calls","quantity":-1,"idempotencyKey":"k"}""", "quantity")]
    [InlineData("""{"customerId":"cus_x","meter":"api_calls","quantity":1.5,"idempotencyKey":"k"}""", "quantity")]
    [InlineData("""{"customerId":"cus_x","meter":"api_calls","timestamp":"yesterday","idempotencyKey":"k"}""", "timestamp")]
    [InlineData("""{"customerId":"cus_x","meter":"api_calls","idempotencyKey":"k\u0000"}""", "idempotencyKey")]
    [InlineData("""{"customerId":"cus_x","meter":"api_calls","idempotencyKey":"k","properties":{"region":"eu\u0000"}}""", "properties")]
    public async Task Bad_events_are_validation_errors_naming_the_field(string body, string field)
    {
        var client = host.Client();
        (await client.Post("/v1/usage", body)).ValidationError(field);
    }

    [Fact]
    public async Task Rejections_unknown_customer_404_future_400_unpriced_meter_409_hard_limit_409_canceled_409()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var customer = sub.GetProperty("customerId").GetString();
        (await client.Post("/v1/usage", new { customerId = "cus_missing", meter = "api_calls", idempotencyKey = "r1" })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/usage", new { subscriptionId = "sub_missing", meter = "api_calls", idempotencyKey = "r2" })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", idempotencyKey = "r3", timestamp = host.Clock.GetUtcNow().AddHours(1) })).ValidationError("timestamp");
        (await client.Post("/v1/usage", new { customerId = customer, meter = "storage_gb", idempotencyKey = "r4" })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 101, idempotencyKey = "r5" })).Problem(HttpStatusCode.Conflict, "conflict");

        (await client.Post($"/v1/subscriptions/{sub.GetProperty("id").GetString()}/cancel")).Ok();
        (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", idempotencyKey = "r6" })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
    }

    [Fact]
    public async Task A_batch_gets_one_result_per_event()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var customer = sub.GetProperty("customerId").GetString();
        (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 2, idempotencyKey = "b0" })).Ok(HttpStatusCode.Created);

        var results = (await client.Post("/v1/usage/batch", new
        {
            events = new object[]
            {
                new { customerId = customer, meter = "api_calls", quantity = 5, idempotencyKey = "b1" },
                new { customerId = customer, meter = "api_calls", quantity = 2, idempotencyKey = "b0" },
                new { customerId = "cus_missing", meter = "api_calls", idempotencyKey = "b2" },
                new { customerId = customer, meter = "api_calls", quantity = 1000, idempotencyKey = "b3" },
            },
        })).Ok().Data;
        Assert.Equal(4, results.GetArrayLength());
        Assert.Equal(["accepted", "duplicate", "rejected", "rejected"], results.EnumerateArray().Select(r => r.GetProperty("status").GetString()));
        Assert.Equal(7, results[0].GetProperty("total").GetInt64());
        Assert.Equal("customer_not_found", results[2].GetProperty("reason").GetString());
        Assert.Equal("customerId", results[2].GetProperty("field").GetString());
        Assert.Equal("over_limit", results[3].GetProperty("reason").GetString());
        Assert.Equal([0, 1, 2, 3], results.EnumerateArray().Select(r => r.GetProperty("index").GetInt32()));

        (await client.Post("/v1/usage/batch", new { events = Array.Empty<object>() })).ValidationError("events");
        (await client.Post("/v1/usage/batch", """{"events":[{"customerId":"cus_x","meter":"api_calls","idempotencyKey":"x"},{"customerId":"cus_x","meter":"api_calls"}]}""")).ValidationError("events[1].idempotencyKey");
        (await client.Post("/v1/usage/batch", """{"events":[null]}""")).ValidationError("events[0]");
        (await client.Post("/v1/usage/batch", new { })).ValidationError("events");
    }

    [Fact]
    public async Task Summary_and_the_renewal_invoice_show_the_usage_with_its_breakdown()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var id = sub.GetProperty("id").GetString();
        var customer = sub.GetProperty("customerId").GetString();
        for (var i = 0; i < 3; i++)
        {
            (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 5, idempotencyKey = $"s{i}" })).Ok(HttpStatusCode.Created);
        }

        var summary = (await client.Get($"/v1/usage/summary?subscription={id}")).Ok().Data;
        Assert.Equal("usage_summary", summary.GetProperty("object").GetString());
        Assert.Equal(sub.GetProperty("currentPeriod").GetProperty("start").GetDateTimeOffset(), summary.GetProperty("periodStart").GetDateTimeOffset());
        var meter = summary.GetProperty("meters")[0];
        Assert.Equal("api_calls", meter.GetProperty("meter").GetString());
        Assert.Equal("sum", meter.GetProperty("aggregation").GetString());
        Assert.Equal(15, meter.GetProperty("total").GetInt64());
        Assert.Equal(15, meter.GetProperty("counterTotal").GetInt64());
        Assert.Equal(1, (await client.Get($"/v1/usage/summary?subscription={id}&meter=api_calls")).Ok().Data.GetProperty("meters").GetArrayLength());
        (await client.Get($"/v1/usage/summary?subscription={id}&meter=storage")).ValidationError("meter");
        (await client.Get($"/v1/usage/summary?subscription={id}&period_start=soon")).ValidationError("period_start");
        (await client.Get("/v1/usage/summary")).ValidationError("subscription");
        (await client.Get("/v1/usage/summary?subscription=sub_missing")).Problem(HttpStatusCode.NotFound, "not_found");

        // Renewal: the draft bills the next period's plan charge and this period's usage, tier by tier.
        host.Clock.Advance(sub.GetProperty("currentPeriod").GetProperty("end").GetDateTimeOffset() - host.Clock.GetUtcNow());
        await host.Services.GetRequiredService<BillingEngine>().AdvanceAsync(host.Clock.GetUtcNow());
        var invoice = (await client.Get($"/v1/invoices?subscription={id}&status=draft")).Ok().Data[0];
        var usage = invoice.GetProperty("lines").EnumerateArray().Single(l => l.GetProperty("kind").GetString() == "usage");
        Assert.Equal("api_calls", usage.GetProperty("meterKey").GetString());
        Assert.Equal(15, usage.GetProperty("quantity").GetInt64());
        Assert.Equal(60, usage.GetProperty("amount").GetInt64()); // 10 × 5 + 5 × 2
        var components = usage.GetProperty("breakdown").GetProperty("components");
        Assert.Equal([10L, 5L], components.EnumerateArray().Select(c => c.GetProperty("quantity").GetInt64()));
        Assert.Equal([5L, 2L], components.EnumerateArray().Select(c => c.GetProperty("unitAmount").GetInt64()));
        Assert.Equal(1060, invoice.GetProperty("total").GetInt64());
    }

    [Fact]
    public async Task Entitlement_checks_report_limits_and_reasons()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var customer = sub.GetProperty("customerId").GetString();
        (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 40, idempotencyKey = "e1" })).Ok(HttpStatusCode.Created);

        var sso = (await client.Get($"/v1/customers/{customer}/entitlements/sso")).Ok().Data;
        Assert.True(sso.GetProperty("entitled").GetBoolean());
        Assert.Equal("boolean", sso.GetProperty("kind").GetString());
        var limit = (await client.Get($"/v1/customers/{customer}/entitlements/api_limit")).Ok().Data;
        Assert.True(limit.GetProperty("entitled").GetBoolean());
        Assert.Equal(100, limit.GetProperty("limit").GetInt64());
        Assert.Equal(40, limit.GetProperty("used").GetInt64());
        Assert.Equal(60, limit.GetProperty("remaining").GetInt64());
        var missing = (await client.Get($"/v1/customers/{customer}/entitlements/audit_log")).Ok().Data;
        Assert.False(missing.GetProperty("entitled").GetBoolean());
        Assert.Equal("not_in_plan", missing.GetProperty("reason").GetString());

        (await client.Get($"/v1/customers/{customer}/entitlements/Bad%20Feature")).ValidationError("feature");
        (await client.Get("/v1/customers/cus_missing/entitlements/sso")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post($"/v1/subscriptions/{sub.GetProperty("id").GetString()}/cancel")).Ok();
        Assert.Equal("no_subscription", (await client.Get($"/v1/customers/{customer}/entitlements/sso")).Ok().Data.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Needs_a_key_and_the_right_scope()
    {
        var admin = host.Client();
        var sub = await Subscribe(admin);
        var customer = sub.GetProperty("customerId").GetString();
        var anonymous = host.Client(null);
        (await anonymous.Post("/v1/usage", new { customerId = customer, meter = "api_calls", idempotencyKey = "a1" })).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Get($"/v1/usage/summary?subscription={sub.GetProperty("id").GetString()}")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Get($"/v1/customers/{customer}/entitlements/sso")).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        var reader = host.Client(await admin.CreateKey("billing:read"));
        (await reader.Post("/v1/usage", new { customerId = customer, meter = "api_calls", idempotencyKey = "a2" })).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Post("/v1/usage/batch", new { events = new[] { new { customerId = customer, meter = "api_calls", idempotencyKey = "a3" } } })).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Get($"/v1/usage/summary?subscription={sub.GetProperty("id").GetString()}")).Ok();
        (await reader.Get($"/v1/customers/{customer}/entitlements/sso")).Ok();
        Assert.Equal(0, (await admin.Get($"/v1/usage/summary?subscription={sub.GetProperty("id").GetString()}")).Ok().Data.GetProperty("meters")[0].GetProperty("total").GetInt64());
    }
}
