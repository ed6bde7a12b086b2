using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Billing.SampleHost.Tests.Support;

/// <summary>A response read once: status, headers and the parsed JSON body.</summary>
public sealed class ApiResponse(HttpResponseMessage message, string body)
{
    public HttpStatusCode Status => message.StatusCode;

    public HttpResponseHeaders Headers => message.Headers;

    public string? ContentType => message.Content.Headers.ContentType?.MediaType;

    public string Body { get; } = body;

    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    public JsonElement Data => Json.GetProperty("data");

    /// <summary>Asserts a problem with the status and code; returns its JSON.</summary>
    public JsonElement Problem(HttpStatusCode status, string code)
    {
        Assert.True(status == Status, $"Expected {(int)status}, got {(int)Status}: {Body}");
        Assert.Equal("application/problem+json", ContentType);
        var json = Json;
        Assert.Equal(code, json.GetProperty("code").GetString());
        Assert.Equal((int)status, json.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(json.GetProperty("requestId").GetString()));
        return json;
    }

    /// <summary>Asserts a 400 validation problem naming <paramref name="field"/>.</summary>
    public JsonElement ValidationError(string field)
    {
        var json = Problem(HttpStatusCode.BadRequest, "validation_error");
        Assert.True(json.GetProperty("errors").TryGetProperty(field, out var messages), $"No error for '{field}': {Body}");
        Assert.True(messages.GetArrayLength() > 0);
        return json;
    }

    public ApiResponse Ok(HttpStatusCode status = HttpStatusCode.OK)
    {
        Assert.True(status == Status, $"Expected {(int)status}, got {(int)Status}: {Body}");
        return this;
    }
}

public static class Api
{
    public static Task<ApiResponse> Get(this HttpClient client, string path) => Send(client, HttpMethod.Get, path, null);

    public static Task<ApiResponse> Post(this HttpClient client, string path, object? body = null) => Send(client, HttpMethod.Post, path, body);

    public static Task<ApiResponse> Patch(this HttpClient client, string path, object body) => Send(client, HttpMethod.Patch, path, body);

    /// <summary>Sends a request; a string body is sent as is (raw JSON), anything else serialized.</summary>
    public static async Task<ApiResponse> Send(this HttpClient client, HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            var json = body as string ?? JsonSerializer.Serialize(body);
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        using var response = await client.SendAsync(request);
        return new ApiResponse(response, await response.Content.ReadAsStringAsync());
    }

    public static object FlatPlan(string name = "Pro", long amount = 2000, string currency = "USD") => new
    {
        name,
        currency,
        price = new { model = "flat", amount },
        interval = new { unit = "month" },
    };

    public static object NewCustomer(string name = "Ada", string email = "ada@example.com", string currency = "USD") => new { name, email, currency };

    /// <summary>Creates a key with the scopes (as admin) and returns its secret.</summary>
    public static async Task<string> CreateKey(this HttpClient admin, params string[] scopes)
    {
        var response = (await admin.Post("/v1/api_keys", new { name = "test", scopes })).Ok(HttpStatusCode.Created);
        return response.Data.GetProperty("secret").GetString()!;
    }
}
