using System.Net;
using Billing.Ports;
using Billing.SampleHost.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.SampleHost.Tests;

public sealed class CrossCuttingTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Fact]
    public async Task A_sane_request_id_is_echoed_and_an_insane_one_replaced()
    {
        var client = host.Client();
        using var sane = new HttpRequestMessage(HttpMethod.Get, "/v1/plans/plan_missing");
        sane.Headers.Add("X-Request-Id", "abc-123_DEF.4:5");
        using var response = await client.SendAsync(sane);
        Assert.Equal("abc-123_DEF.4:5", response.Headers.GetValues("X-Request-Id").Single());
        Assert.Contains("\"requestId\":\"abc-123_DEF.4:5\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var insane = new HttpRequestMessage(HttpMethod.Get, "/health/live");
        insane.Headers.TryAddWithoutValidation("X-Request-Id", "<script>" + new string('x', 200));
        using var replaced = await client.SendAsync(insane);
        var id = replaced.Headers.GetValues("X-Request-Id").Single();
        Assert.Matches("^req_[0-9a-f]{24}$", id);

        using var none = await client.GetAsync("/health/live");
        Assert.NotEqual(id, none.Headers.GetValues("X-Request-Id").Single());
    }

    [Fact]
    public async Task Unknown_routes_and_methods_are_problems()
    {
        var client = host.Client();
        (await client.Get("/v1/nothing-here")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Send(HttpMethod.Delete, "/v1/plans", null)).Problem(HttpStatusCode.MethodNotAllowed, "not_found");
    }

    [Fact]
    public async Task Json_is_camel_case_with_minor_units()
    {
        var body = (await host.Client().Post("/v1/plans", Api.FlatPlan(amount: 1999))).Ok(HttpStatusCode.Created).Body;
        Assert.Contains("\"amount\":1999", body, StringComparison.Ordinal);
        Assert.Contains("\"trialDays\":0", body, StringComparison.Ordinal);
        Assert.Contains("\"createdAt\":", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_live_and_ready()
    {
        var client = host.CreateClient();
        var live = (await client.Get("/health/live")).Ok();
        Assert.Equal("healthy", live.Json.GetProperty("status").GetString());
        var ready = (await client.Get("/health/ready")).Ok();
        Assert.Equal("healthy", ready.Json.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
    }

    [Fact]
    public async Task The_openapi_document_lists_every_endpoint()
    {
        var document = (await host.CreateClient().Get("/openapi/v1.json")).Ok().Json;
        var paths = document.GetProperty("paths");
        var expected = new (string Path, string Method)[]
        {
            ("/v1/plans", "post"), ("/v1/plans", "get"), ("/v1/plans/{id}", "get"), ("/v1/plans/{id}", "patch"), ("/v1/plans/{id}/archive", "post"),
            ("/v1/customers", "post"), ("/v1/customers", "get"), ("/v1/customers/{id}", "get"), ("/v1/customers/{id}", "patch"),
            ("/v1/customers/{id}/credit_balance_adjustments", "post"),
            ("/v1/api_keys", "post"), ("/v1/api_keys", "get"), ("/v1/api_keys/{id}", "get"), ("/v1/api_keys/{id}/revoke", "post"),
            ("/v1/subscriptions", "post"), ("/v1/subscriptions", "get"), ("/v1/subscriptions/{id}", "get"), ("/v1/subscriptions/{id}/cancel", "post"),
            ("/v1/subscriptions/{id}/reactivate", "post"), ("/v1/subscriptions/{id}/pause", "post"), ("/v1/subscriptions/{id}/resume", "post"),
            ("/v1/subscriptions/{id}/change", "post"), ("/v1/subscriptions/{id}/change_preview", "post"),
            ("/v1/invoices", "get"), ("/v1/invoices/upcoming", "get"), ("/v1/invoices/{id}", "get"), ("/v1/invoices/{id}/payments", "get"), ("/v1/invoices/{id}/finalize", "post"),
            ("/v1/invoices/{id}/pay", "post"), ("/v1/invoices/{id}/void", "post"), ("/v1/invoices/{id}/mark_uncollectible", "post"),
            ("/v1/usage", "post"), ("/v1/usage/batch", "post"), ("/v1/usage/summary", "get"), ("/v1/customers/{id}/entitlements/{feature}", "get"),
            ("/v1/test_clocks", "post"), ("/v1/test_clocks/{id}", "get"), ("/v1/test_clocks/{id}/customers", "get"), ("/v1/test_clocks/{id}/advance", "post"),
            ("/health/live", "get"), ("/health/ready", "get"),
        };
        foreach (var (path, method) in expected)
        {
            Assert.True(paths.TryGetProperty(path, out var item), $"{path} is missing");
            Assert.True(item.TryGetProperty(method, out _), $"{method} {path} is missing");
        }

        var createSubscription = paths.GetProperty("/v1/subscriptions").GetProperty("post");
        Assert.Contains(createSubscription.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "Idempotency-Key" && p.GetProperty("in").GetString() == "header");
        Assert.False(paths.GetProperty("/v1/subscriptions").GetProperty("get").TryGetProperty("parameters", out var listParameters)
            && listParameters.EnumerateArray().Any(p => p.GetProperty("name").GetString() == "Idempotency-Key"));

        var schemas = document.GetProperty("components").GetProperty("schemas");
        foreach (var schema in new[] { "CreatePlanRequest", "CreateSubscriptionRequest", "ChangeSubscriptionRequest", "InvoiceDto", "UsageEventRequest", "UsageBatchRequest", "CreateTestClockRequest" })
        {
            Assert.True(schemas.TryGetProperty(schema, out _), $"schema {schema} is missing");
        }
    }
}

/// <summary>A host whose billing store throws on every use, to force an unexpected exception inside a handler.</summary>
public sealed class BrokenStoreHostFactory : SampleHostFactory
{
    protected override void ConfigureServices(IServiceCollection services) =>
        services.Replace(ServiceDescriptor.Singleton<IBillingStore>(new BrokenStore()));

    private sealed class BrokenStore : IBillingStore
    {
        public ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("Secret internal detail: connection string Password=hunter2");
    }
}

public sealed class InternalErrorTests(BrokenStoreHostFactory host) : IClassFixture<BrokenStoreHostFactory>
{
    [Fact]
    public async Task An_exception_in_a_handler_is_a_500_problem_without_details()
    {
        var response = await host.Client().Post("/v1/plans", Api.FlatPlan());
        var problem = response.Problem(HttpStatusCode.InternalServerError, "internal_error");
        Assert.DoesNotContain("hunter2", response.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("InvalidOperationException", response.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(" at ", response.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(".cs:line", response.Body, StringComparison.Ordinal);
        Assert.Equal(response.Headers.GetValues("X-Request-Id").Single(), problem.GetProperty("requestId").GetString());

        // A 500 is not kept for the Idempotency-Key: the retry runs again (and fails again here), it is no replay.
        async Task<HttpResponseMessage> PostWithKey()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/plans") { Content = new StringContent("""{"name":"P","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"month"}}""", System.Text.Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", "broken-1");
            return await host.Client().SendAsync(request);
        }

        using var firstTry = await PostWithKey();
        using var secondTry = await PostWithKey();
        Assert.Equal(HttpStatusCode.InternalServerError, firstTry.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, secondTry.StatusCode);
        Assert.False(secondTry.Headers.Contains("Idempotent-Replayed"));
        Assert.NotEqual(firstTry.Headers.GetValues("X-Request-Id").Single(), secondTry.Headers.GetValues("X-Request-Id").Single());

        var read = await host.Client().Get("/v1/plans/plan_x");
        read.Problem(HttpStatusCode.InternalServerError, "internal_error");
        Assert.DoesNotContain("hunter2", read.Body, StringComparison.Ordinal);
    }
}
