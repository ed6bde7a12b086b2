using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

/// <summary>POST /v1/api_keys: <c>name</c>, <c>scopes</c> (billing:read, billing:write, admin), optional
/// <c>expiresAt</c> in the future.</summary>
internal sealed class CreateApiKeyRequest
{
    public string? Name { get; init; }

    public List<string>? Scopes { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>An API key; <c>secret</c> is present only in the answer to its creation.</summary>
internal sealed record ApiKeyDto(
    string Id,
    string Object,
    string Name,
    string Prefix,
    IReadOnlyList<string> Scopes,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt,
    DateTimeOffset? LastUsedAt,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Secret)
{
    public static ApiKeyDto From(ApiKey key, string? secret = null) =>
        new(key.Id, "api_key", key.Name, key.Prefix, key.Scopes, key.CreatedAt, key.ExpiresAt, key.RevokedAt, key.LastUsedAt, secret);
}

internal static class ApiKeyEndpoints
{
    public static RouteGroupBuilder MapApiKeys(this RouteGroupBuilder v1)
    {
        var keys = v1.MapGroup("/api_keys").WithTags("API keys").RequireAuthorization(Scopes.Admin);

        keys.MapPost("/", async (CreateApiKeyRequest body, ApiKeyStore store, TimeProvider time, CancellationToken ct) =>
        {
            var now = time.GetUtcNow();
            var errors = new FieldErrors();
            Validation.Name(errors, "name", body.Name, required: true);
            if (errors.Check(body.Scopes is { Count: >= 1 and <= 3 }, "scopes", "scopes lists 1 to 3 of billing:read, billing:write, admin."))
            {
                for (var i = 0; i < body.Scopes!.Count; i++)
                {
                    errors.Check(body.Scopes[i] is { } s && ApiKeys.Scopes.IsKnown(s), $"scopes[{i}]", "A scope is billing:read, billing:write or admin.");
                }
            }

            errors.Check(body.ExpiresAt is null || body.ExpiresAt > now, "expiresAt", "expiresAt must be in the future.");
            errors.ThrowIfAny();
            var secret = ApiKeySecrets.NewSecret();
            var key = await store.CreateAsync(secret, body.Name!, [.. body.Scopes!.Distinct(StringComparer.Ordinal)], now, body.ExpiresAt, ct).ConfigureAwait(false);
            return TypedResults.Created($"/v1/api_keys/{key.Id}", new DataEnvelope<ApiKeyDto>(ApiKeyDto.From(key, secret)));
        }).WithName("CreateApiKey").WithSummary("Create an API key (the secret is shown only in this answer)");

        keys.MapGet("/", async (HttpRequest request, ApiKeyStore store, CancellationToken ct) =>
        {
            var page = Page.From(request);
            if (page.StartingAfter is { } after && await store.GetAsync(after, ct).ConfigureAwait(false) is null)
            {
                throw RequestValidationException.For("starting_after", $"No API key with id '{after}' to start after.");
            }

            var (items, hasMore) = await store.ListAsync(page.Limit, page.StartingAfter, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<ApiKeyDto>([.. items.Select(k => ApiKeyDto.From(k))], hasMore));
        }).WithName("ListApiKeys").WithSummary("List API keys, newest first");

        keys.MapGet("/{id}", async (string id, ApiKeyStore store, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<ApiKeyDto>(ApiKeyDto.From(await store.GetAsync(id, ct).ConfigureAwait(false) ?? throw new BillingNotFoundException("api_key", id)))))
            .WithName("GetApiKey").WithSummary("Get an API key");

        keys.MapPost("/{id}/revoke", async (string id, ApiKeyStore store, TimeProvider time, CancellationToken ct) =>
        {
            _ = await store.GetAsync(id, ct).ConfigureAwait(false) ?? throw new BillingNotFoundException("api_key", id);
            if (!await store.RevokeAsync(id, time.GetUtcNow(), ct).ConfigureAwait(false))
            {
                throw new InvalidStateTransitionException("api_key", "revoked", "revoke", []);
            }

            var key = await store.GetAsync(id, ct).ConfigureAwait(false) ?? throw new BillingNotFoundException("api_key", id);
            return TypedResults.Ok(new DataEnvelope<ApiKeyDto>(ApiKeyDto.From(key)));
        }).WithName("RevokeApiKey").WithSummary("Revoke an API key (refused from the next request on by this instance, by others within Billing:ApiKeys:CacheDuration)");

        return v1;
    }
}
