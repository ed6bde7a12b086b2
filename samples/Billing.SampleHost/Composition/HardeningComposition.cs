using System.Globalization;
using System.Security.Claims;
using System.Threading.RateLimiting;
using Billing.SampleHost.Http;
using Microsoft.AspNetCore.RateLimiting;

namespace Billing.SampleHost.Composition;

/// <summary><c>Billing:RateLimit</c>: a fixed window per API key (anonymous requests per remote IP address).</summary>
internal sealed class RateLimitSettings
{
    /// <summary>Whether requests are limited at all (default true).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Requests allowed per key and window (default 100).</summary>
    public int PermitLimit { get; set; } = 100;

    /// <summary>The window (default one second); 1 second to 1 day.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Requests that wait for the next window instead of a 429 (default 0: none wait).</summary>
    public int QueueLimit { get; set; }
}

/// <summary><c>Billing:Cors</c>: browser origins allowed to call the API; none (the default) sends no CORS headers.</summary>
internal sealed class CorsSettings
{
    /// <summary>Origins such as <c>https://app.example.com</c> (scheme, host and optional port; no path).</summary>
    public List<string> AllowedOrigins { get; set; } = [];
}

/// <summary>The hardening the host applies to HTTP: body limit, CORS, rate limiting, OpenAPI security scheme.</summary>
internal sealed record HardeningSettings(long MaxRequestBodyBytes, RateLimitSettings RateLimit, IReadOnlyList<string> CorsOrigins);

/// <summary>Registers and applies the host's HTTP hardening (kept apart from <see cref="HostComposition"/>).</summary>
internal static class HardeningComposition
{
    /// <summary>The default request body limit: 512 KiB (a full usage batch of 1,000 events fits comfortably).</summary>
    public const long DefaultMaxRequestBodyBytes = 512 * 1024;

    public const string CorsPolicy = "billing";

    public static WebApplicationBuilder AddHardening(this WebApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(SampleHostOptions.Section);
        var rate = section.GetSection("RateLimit").Get<RateLimitSettings>() ?? new RateLimitSettings();
        var cors = section.GetSection("Cors").Get<CorsSettings>() ?? new CorsSettings();
        var maxBody = section.GetValue<long?>("MaxRequestBodyBytes") ?? DefaultMaxRequestBodyBytes;
        var settings = Validate(rate, cors, maxBody);
        var services = builder.Services;
        services.AddSingleton(settings);
        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(o => o.Limits.MaxRequestBodySize = settings.MaxRequestBodyBytes);

        if (settings.CorsOrigins.Count > 0)
        {
            services.AddCors(o => o.AddPolicy(CorsPolicy, p => p
                .WithOrigins([.. settings.CorsOrigins])
                .WithMethods("GET", "POST", "PATCH")
                .WithHeaders("Authorization", "Content-Type", Idempotency.IdempotencyMiddleware.Header, RequestIdMiddleware.Header)
                .WithExposedHeaders(RequestIdMiddleware.Header, "Retry-After", "Idempotent-Replayed", "Location")
                .SetPreflightMaxAge(TimeSpan.FromMinutes(10))));
        }

        if (settings.RateLimit.Enabled)
        {
            services.AddRateLimiter(o =>
            {
                o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
                o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context => IsUnlimited(context.Request.Path)
                    ? RateLimitPartition.GetNoLimiter("unlimited")
                    : RateLimitPartition.GetFixedWindowLimiter(PartitionKey(context), _ => new FixedWindowRateLimiterOptions
                    {
                        PermitLimit = settings.RateLimit.PermitLimit,
                        Window = settings.RateLimit.Window,
                        QueueLimit = settings.RateLimit.QueueLimit,
                        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
                        AutoReplenishment = true,
                    }));
                o.OnRejected = (context, ct) =>
                {
                    var seconds = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
                        ? Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds))
                        : Math.Max(1, (long)Math.Ceiling(settings.RateLimit.Window.TotalSeconds));
                    context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                    return new ValueTask(Problems.WriteAsync(
                        context.HttpContext,
                        StatusCodes.Status429TooManyRequests,
                        ErrorCodes.RateLimited,
                        $"Too many requests for this API key; retry after {seconds} s."));
                };
            });
        }

        return builder;
    }

    /// <summary>CORS (when origins are configured), before authentication so preflights need no key.</summary>
    public static WebApplication UseHostCors(this WebApplication app)
    {
        if (app.Services.GetRequiredService<HardeningSettings>().CorsOrigins.Count > 0)
        {
            app.UseCors(CorsPolicy);
        }

        return app;
    }

    /// <summary>The rate limiter (when enabled), after authentication so it can partition by the key.</summary>
    public static WebApplication UseHostRateLimiting(this WebApplication app)
    {
        if (app.Services.GetRequiredService<HardeningSettings>().RateLimit.Enabled)
        {
            app.UseRateLimiter();
        }

        return app;
    }

    /// <summary>The partition: the authenticated key's id, else the remote address (the client's address from
    /// <c>X-Forwarded-For</c> only when <c>Billing:ForwardedHeaders</c> trusts the proxy the request came through;
    /// see <see cref="ForwardedHeadersSettings"/>).</summary>
    internal static string PartitionKey(HttpContext context) =>
        context.User.Identity?.IsAuthenticated == true && context.User.FindFirstValue(ClaimTypes.NameIdentifier) is { } keyId
            ? "key:" + keyId
            : "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    private static bool IsUnlimited(PathString path) => path.StartsWithSegments("/health", StringComparison.OrdinalIgnoreCase);

    internal static HardeningSettings Validate(RateLimitSettings rate, CorsSettings cors, long maxBody)
    {
        if (rate.PermitLimit is < 1 or > 1_000_000)
        {
            throw new InvalidOperationException($"Billing:RateLimit:PermitLimit must be 1 to 1,000,000, not {rate.PermitLimit}.");
        }

        if (rate.Window < TimeSpan.FromSeconds(1) || rate.Window > TimeSpan.FromDays(1))
        {
            throw new InvalidOperationException($"Billing:RateLimit:Window must be from 00:00:01 to 1.00:00:00, not {rate.Window}.");
        }

        if (rate.QueueLimit is < 0 or > 10_000)
        {
            throw new InvalidOperationException($"Billing:RateLimit:QueueLimit must be 0 to 10,000, not {rate.QueueLimit}.");
        }

        if (maxBody is < 1024 or > 100L * 1024 * 1024)
        {
            throw new InvalidOperationException($"Billing:MaxRequestBodyBytes must be 1,024 to 104,857,600, not {maxBody}.");
        }

        var origins = new List<string>();
        foreach (var origin in cors.AllowedOrigins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
                || uri.PathAndQuery != "/" || !string.IsNullOrEmpty(uri.Fragment) || !string.IsNullOrEmpty(uri.UserInfo))
            {
                throw new InvalidOperationException($"Billing:Cors:AllowedOrigins entries are origins such as https://app.example.com (no path, no '*'), not '{origin}'.");
            }

            origins.Add(uri.GetLeftPart(UriPartial.Authority));
        }

        return new HardeningSettings(maxBody, rate, origins);
    }
}
