using System.Net;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

/// <summary>
/// Cases the endpoint audit found missing from the *EndpointTests files (auth is covered for every endpoint by
/// <see cref="EndpointAuthAuditTests"/>, malformed bodies by <see cref="BadInputSweepTests"/>).
/// </summary>
public sealed class CoverageGapTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Fact]
    public async Task List_endpoints_reject_bad_paging_and_an_unknown_cursor()
    {
        var client = host.Client();
        foreach (var list in new[] { "/v1/customers", "/v1/subscriptions", "/v1/invoices", "/v1/api_keys" })
        {
            (await client.Get($"{list}?limit=0")).ValidationError("limit");
            (await client.Get($"{list}?limit=101")).ValidationError("limit");
            (await client.Get($"{list}?limit=ten")).ValidationError("limit");
        }

        (await client.Get("/v1/api_keys?starting_after=key_missing")).ValidationError("starting_after");
        var keys = (await client.Get("/v1/api_keys?limit=1")).Ok();
        Assert.Equal(1, keys.Data.GetArrayLength());
    }

    [Fact]
    public async Task Change_preview_of_a_canceled_subscription_is_409_and_of_an_unknown_plan_404()
    {
        var client = host.Client();
        var plan = (await client.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod = "pm_card_visa" }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var id = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var path = $"/v1/subscriptions/{id}";

        var preview = (await client.Post($"{path}/change_preview", new { quantity = 2 })).Ok().Data;
        Assert.Equal("proration_preview", preview.GetProperty("object").GetString());
        (await client.Post($"{path}/change_preview", new { planId = "plan_missing" })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post($"{path}/change_preview", new { })).ValidationError("planId");

        (await client.Post($"{path}/cancel")).Ok();
        (await client.Post($"{path}/change_preview", new { quantity = 2 })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"{path}/change", new { quantity = 2 })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
    }

    [Fact]
    public async Task A_batch_reports_an_unknown_customer_per_event_and_counts_the_rest()
    {
        var client = host.Client();
        var results = (await client.Post("/v1/usage/batch", new
        {
            events = new[]
            {
                new { customerId = "cus_missing", meter = "api_calls", quantity = 1, idempotencyKey = "gap-1" },
            },
        })).Ok().Data;
        var only = Assert.Single(results.EnumerateArray());
        Assert.Equal("rejected", only.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(only.GetProperty("reason").GetString()));
    }

    [Fact]
    public async Task Credit_balance_adjustments_and_customer_updates_validate_and_find()
    {
        var client = host.Client();
        var id = (await client.Post("/v1/customers", Api.NewCustomer())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        (await client.Post($"/v1/customers/{id}/credit_balance_adjustments", new { amount = 100 })).ValidationError("currency");
        (await client.Post($"/v1/customers/{id}/credit_balance_adjustments", new { currency = "USD" })).ValidationError("amount");
        (await client.Patch($"/v1/customers/{id}", new { timeZone = "Mars/Olympus" })).ValidationError("timeZone");
        (await client.Patch($"/v1/customers/{id}", new { taxRates = new[] { new { name = "VAT", partsPerMillion = 2_000_000 } } })).ValidationError("taxRates[0].partsPerMillion");
        var updated = (await client.Patch($"/v1/customers/{id}", new { timeZone = "Asia/Tokyo" })).Ok().Data;
        Assert.Equal("Asia/Tokyo", updated.GetProperty("timeZone").GetString());
    }
}
