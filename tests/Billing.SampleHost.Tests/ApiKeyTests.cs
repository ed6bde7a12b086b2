using System.Net;
using System.Net.Http.Headers;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

public sealed class ApiKeyTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    private static readonly string[] ReadScope = ["billing:read"];
    private static readonly string[] AdminScope = ["admin"];
    private static readonly string[] WriteScope = ["billing:write"];

    [Fact]
    public async Task Create_shows_the_secret_once_and_stores_only_a_prefix()
    {
        var admin = host.Client();
        var created = (await admin.Post("/v1/api_keys", new { name = "reporting", scopes = ReadScope })).Ok(HttpStatusCode.Created);
        var key = created.Data;
        var id = key.GetProperty("id").GetString()!;
        var secret = key.GetProperty("secret").GetString()!;
        Assert.StartsWith("sk_", secret, StringComparison.Ordinal);
        Assert.Equal(secret[..12], key.GetProperty("prefix").GetString());
        Assert.Equal(["billing:read"], key.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal($"/v1/api_keys/{id}", created.Headers.Location?.ToString());

        var read = (await admin.Get($"/v1/api_keys/{id}")).Ok();
        Assert.False(read.Data.TryGetProperty("secret", out _));
        var list = (await admin.Get("/v1/api_keys?limit=100")).Ok();
        Assert.DoesNotContain(secret, list.Body, StringComparison.Ordinal);
        Assert.Contains(list.Data.EnumerateArray(), k => k.GetProperty("id").GetString() == id);

        // Nothing in the database holds the secret itself.
        var bytes = await File.ReadAllBytesAsync(host.DatabasePath);
        Assert.DoesNotContain(secret, System.Text.Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"scopes":["billing:read"]}""", "name")]
    [InlineData("""{"name":"x","scopes":[]}""", "scopes")]
    [InlineData("""{"name":"x"}""", "scopes")]
    [InlineData("""{"name":"x","scopes":["billing:everything"]}""", "scopes[0]")]
    [InlineData("""{"name":"x","scopes":["admin"],"expiresAt":"2020-01-01T00:00:00Z"}""", "expiresAt")]
    [InlineData("""{"name":"x","scopes":["admin"],"expiresAt":"tomorrow"}""", "expiresAt")]
    public async Task Create_rejects_bad_input(string body, string field) =>
        (await host.Client().Post("/v1/api_keys", body)).ValidationError(field);

    [Fact]
    public async Task Revocation_takes_effect_on_the_next_request_and_cannot_repeat()
    {
        var admin = host.Client();
        var created = (await admin.Post("/v1/api_keys", new { name = "to revoke", scopes = WriteScope })).Ok(HttpStatusCode.Created).Data;
        var id = created.GetProperty("id").GetString();
        var client = host.Client(created.GetProperty("secret").GetString());
        (await client.Get("/v1/plans")).Ok();

        var revoked = (await admin.Post($"/v1/api_keys/{id}/revoke")).Ok().Data;
        Assert.False(revoked.GetProperty("revokedAt").ValueKind == System.Text.Json.JsonValueKind.Null);

        var problem = (await client.Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        Assert.Contains("revoked", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        (await admin.Post($"/v1/api_keys/{id}/revoke")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await admin.Post("/v1/api_keys/key_missing/revoke")).Problem(HttpStatusCode.NotFound, "not_found");
        (await admin.Get("/v1/api_keys/key_missing")).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Expiry_takes_effect_the_moment_it_passes()
    {
        var admin = host.Client();
        var expiresAt = host.Clock.GetUtcNow().AddHours(1);
        var created = (await admin.Post("/v1/api_keys", new { name = "short", scopes = ReadScope, expiresAt })).Ok(HttpStatusCode.Created).Data;
        var client = host.Client(created.GetProperty("secret").GetString());
        (await client.Get("/v1/plans")).Ok();

        host.Clock.Advance(TimeSpan.FromMinutes(59));
        (await client.Get("/v1/plans")).Ok();
        host.Clock.Advance(TimeSpan.FromMinutes(1));
        var problem = (await client.Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        Assert.Contains("expired", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Last_use_is_recorded()
    {
        var admin = host.Client();
        var created = (await admin.Post("/v1/api_keys", new { name = "used", scopes = ReadScope })).Ok(HttpStatusCode.Created).Data;
        var id = created.GetProperty("id").GetString();
        Assert.Equal(System.Text.Json.JsonValueKind.Null, created.GetProperty("lastUsedAt").ValueKind);

        (await host.Client(created.GetProperty("secret").GetString()).Get("/v1/plans")).Ok();
        var used = (await admin.Get($"/v1/api_keys/{id}")).Ok().Data.GetProperty("lastUsedAt").GetDateTimeOffset();
        Assert.Equal(host.Clock.GetUtcNow().ToUnixTimeMilliseconds(), used.ToUnixTimeMilliseconds());
    }

    [Theory]
    [InlineData("Bearer sk_test_admin_0123456789abcdefghijklmnopqrstuX")] // right prefix, wrong secret
    [InlineData("Bearer sk_nope")]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer ")]
    public async Task Invalid_credentials_are_401(string header)
    {
        var client = host.CreateClient();
        client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", header);
        var response = await client.Get("/v1/plans");
        response.Problem(HttpStatusCode.Unauthorized, "authentication_required");
        Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_admin_keys_manage_keys()
    {
        var admin = host.Client();
        var writer = host.Client(await admin.CreateKey("billing:write", "billing:read"));
        (await writer.Get("/v1/api_keys")).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await writer.Post("/v1/api_keys", new { name = "x", scopes = AdminScope })).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await host.Client(null).Get("/v1/api_keys")).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        var secondAdmin = host.Client(await admin.CreateKey("admin"));
        (await secondAdmin.Get("/v1/api_keys")).Ok();
    }
}
