using System.Security.Claims;
using System.Text.Encodings.Web;
using Billing.SampleHost.Http;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace Billing.SampleHost.ApiKeys;

/// <summary>
/// <c>Authorization: Bearer sk_…</c>. No header: anonymous (endpoints that need a scope answer 401). A malformed,
/// unknown, revoked or expired key: 401 <c>authentication_required</c> naming which. A key without the scope: 403
/// <c>forbidden</c>. The key's row comes from <see cref="ApiKeyStore.AuthenticateAsync"/> (reused for at most
/// <c>Billing:ApiKeys:CacheDuration</c>; a revocation through this instance and an expiry count from the next
/// request); its last-used time is written at most once a minute.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyStore keys,
    TimeProvider time)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string ScopeClaim = "scope";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count == 0 || string.IsNullOrEmpty(header[0]))
        {
            return AuthenticateResult.NoResult();
        }

        var value = header[0]!;
        if (header.Count > 1 || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.Fail("The Authorization header must be 'Bearer sk_…'.");
        }

        var secret = value["Bearer ".Length..].Trim();
        var key = await keys.AuthenticateAsync(secret, Context.RequestAborted).ConfigureAwait(false);
        if (key is null)
        {
            return AuthenticateResult.Fail("The API key is not valid.");
        }

        var now = time.GetUtcNow();
        if (key.RevokedAt is not null)
        {
            return AuthenticateResult.Fail("The API key has been revoked.");
        }

        if (key.ExpiresAt is { } expires && expires <= now)
        {
            return AuthenticateResult.Fail("The API key has expired.");
        }

        await keys.TouchIfDueAsync(key, now, Context.RequestAborted).ConfigureAwait(false);

        var claims = new List<Claim> { new(ClaimTypes.NameIdentifier, key.Id), new(ClaimTypes.Name, key.Name) };
        claims.AddRange(key.Scopes.Select(s => new Claim(ScopeClaim, s)));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync().ConfigureAwait(false);
        Response.Headers.WWWAuthenticate = "Bearer";
        var detail = result.Failure?.Message ?? "An API key is required: send 'Authorization: Bearer sk_…'.";
        await Problems.WriteAsync(Context, StatusCodes.Status401Unauthorized, ErrorCodes.AuthenticationRequired, detail).ConfigureAwait(false);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var required = Context.GetEndpoint()?.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).LastOrDefault(p => p is not null);
        var detail = required is null ? "The API key may not do this." : $"The API key lacks the scope '{required}' this request needs.";
        return Problems.WriteAsync(Context, StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, detail);
    }
}

internal static class ApiKeyAuthorization
{
    /// <summary>Registers the scheme and one policy per scope (named after the scope).</summary>
    public static IServiceCollection AddApiKeyAuthentication(this IServiceCollection services)
    {
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        var authorization = services.AddAuthorizationBuilder();
        foreach (var scope in Scopes.All)
        {
            authorization.AddPolicy(scope, policy => policy
                .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser()
                .RequireAssertion(c => Scopes.Allows(c.User.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Select(x => x.Value), scope)));
        }

        services.AddSingleton<ApiKeyStore>();
        return services;
    }
}
