using System.Net;
using System.Text;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

public sealed class IdempotencyTests(GatedHostFactory host) : IClassFixture<GatedHostFactory>
{
    private static async Task<(HttpResponseMessage Message, byte[] Body)> PostRaw(HttpClient client, string path, string json, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        var response = await client.SendAsync(request);
        return (response, await response.Content.ReadAsByteArrayAsync());
    }

    private static async Task<int> CustomerCount(HttpClient client) => (await client.Get("/v1/customers?limit=100")).Ok().Data.GetArrayLength();

    [Fact]
    public async Task A_retry_with_the_same_key_and_body_replays_the_first_response_byte_for_byte()
    {
        var client = host.Client();
        var json = """{"name":"Ada","email":"ada@example.com","currency":"USD"}""";
        var before = await CustomerCount(client);

        var (first, firstBody) = await PostRaw(client, "/v1/customers", json, "retry-1");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        host.Clock.Advance(TimeSpan.FromHours(23));

        var (second, secondBody) = await PostRaw(client, "/v1/customers", json, "retry-1");
        Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        Assert.Equal(firstBody, secondBody);
        Assert.Equal(first.Content.Headers.ContentType?.ToString(), second.Content.Headers.ContentType?.ToString());
        Assert.Equal(first.Headers.Location, second.Headers.Location);
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(before + 1, await CustomerCount(client));

        // After 24 hours the key is forgotten: the same request runs again.
        host.Clock.Advance(TimeSpan.FromHours(2));
        var (third, thirdBody) = await PostRaw(client, "/v1/customers", json, "retry-1");
        Assert.Equal(HttpStatusCode.Created, third.StatusCode);
        Assert.NotEqual(firstBody, thirdBody);
        Assert.Equal(before + 2, await CustomerCount(client));
    }

    [Fact]
    public async Task Client_errors_are_replayed_too_and_keys_are_per_api_key()
    {
        var client = host.Client();
        var bad = """{"name":"Ada","email":"nope","currency":"USD"}""";
        var (first, firstBody) = await PostRaw(client, "/v1/customers", bad, "bad-1");
        Assert.Equal(HttpStatusCode.BadRequest, first.StatusCode);
        var (second, secondBody) = await PostRaw(client, "/v1/customers", bad, "bad-1");
        Assert.Equal(HttpStatusCode.BadRequest, second.StatusCode);
        Assert.Equal("application/problem+json", second.Content.Headers.ContentType?.MediaType);
        Assert.Equal(firstBody, secondBody);

        // Another API key has its own keys: the same key runs afresh for it.
        var other = host.Client(await client.CreateKey("billing:write"));
        var before = await CustomerCount(client);
        var (created, _) = await PostRaw(other, "/v1/customers", """{"name":"Bo","email":"bo@example.com","currency":"USD"}""", "bad-1");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(before + 1, await CustomerCount(client));
    }

    [Fact]
    public async Task The_same_key_with_another_body_or_path_is_422_and_changes_nothing()
    {
        var client = host.Client();
        var (first, _) = await PostRaw(client, "/v1/customers", """{"name":"Ada","email":"ada@example.com","currency":"USD"}""", "reuse-1");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var before = await CustomerCount(client);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/customers") { Content = new StringContent("""{"name":"Eve","email":"eve@example.com","currency":"USD"}""", Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", "reuse-1");
        using var response = await client.SendAsync(request);
        new ApiResponse(response, await response.Content.ReadAsStringAsync()).Problem(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");

        using var plan = new HttpRequestMessage(HttpMethod.Post, "/v1/plans") { Content = new StringContent("""{"name":"Ada","email":"ada@example.com","currency":"USD"}""", Encoding.UTF8, "application/json") };
        plan.Headers.Add("Idempotency-Key", "reuse-1");
        using var planResponse = await client.SendAsync(plan);
        new ApiResponse(planResponse, await planResponse.Content.ReadAsStringAsync()).Problem(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        Assert.Equal(before, await CustomerCount(client));
    }

    [Fact]
    public async Task Concurrent_duplicates_run_once_and_the_other_gets_409_until_the_first_finishes()
    {
        var client = host.Client();
        var json = """{"name":"Concurrent","email":"c@example.com","currency":"USD"}""";
        var before = await CustomerCount(client);

        host.Gate.Close();
        Task<(HttpResponseMessage Message, byte[] Body)> first;
        try
        {
            first = PostRaw(client, "/v1/customers", json, "concurrent-1");
            await host.Gate.Waiting.WaitAsync(TimeSpan.FromSeconds(30));

            // The first is inside the engine, holding the key: duplicates are refused, and do not run.
            for (var i = 0; i < 3; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/customers") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
                request.Headers.Add("Idempotency-Key", "concurrent-1");
                using var duplicate = await client.SendAsync(request);
                new ApiResponse(duplicate, await duplicate.Content.ReadAsStringAsync()).Problem(HttpStatusCode.Conflict, "conflict");
            }
        }
        finally
        {
            host.Gate.Open();
        }

        var (message, body) = await first;
        Assert.Equal(HttpStatusCode.Created, message.StatusCode);
        var (replay, replayBody) = await PostRaw(client, "/v1/customers", json, "concurrent-1");
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal(body, replayBody);
        Assert.Equal(before + 1, await CustomerCount(client));
    }

    [Fact]
    public async Task Many_simultaneous_duplicates_create_one_customer()
    {
        var client = host.Client();
        var json = """{"name":"Racer","email":"r@example.com","currency":"USD"}""";
        var before = await CustomerCount(client);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PostRaw(client, "/v1/customers", json, "race-1")));
        Assert.All(results, r => Assert.True(r.Message.StatusCode is HttpStatusCode.Created or HttpStatusCode.Conflict, r.Message.StatusCode.ToString()));
        Assert.Contains(results, r => r.Message.StatusCode == HttpStatusCode.Created);
        Assert.Equal(before + 1, await CustomerCount(client));
    }

    [Fact]
    public async Task A_malformed_key_is_a_validation_error_and_no_key_means_no_idempotency()
    {
        var client = host.Client();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/customers") { Content = new StringContent("""{"name":"A","email":"a@b.c","currency":"USD"}""", Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", new string('k', 256));
        using var response = await client.SendAsync(request);
        new ApiResponse(response, await response.Content.ReadAsStringAsync()).ValidationError("Idempotency-Key");

        var before = await CustomerCount(client);
        var json = """{"name":"A","email":"a@b.c","currency":"USD"}""";
        Assert.Equal(HttpStatusCode.Created, (await PostRaw(client, "/v1/customers", json, null)).Message.StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await PostRaw(client, "/v1/customers", json, null)).Message.StatusCode);
        Assert.Equal(before + 2, await CustomerCount(client));
    }

    [Fact]
    public async Task Unauthenticated_and_forbidden_requests_do_not_take_the_key()
    {
        var admin = host.Client();
        var reader = host.Client(await admin.CreateKey("billing:read"));
        var json = """{"name":"A","email":"a@b.c","currency":"USD"}""";
        Assert.Equal(HttpStatusCode.Unauthorized, (await PostRaw(host.Client(null), "/v1/customers", json, "auth-1")).Message.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await PostRaw(reader, "/v1/customers", json, "auth-1")).Message.StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await PostRaw(admin, "/v1/customers", json, "auth-1")).Message.StatusCode);
    }
}
