using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Hosting;

namespace Billing.SampleHost.Tests;

/// <summary>A host limited to 3 requests per minute per key (anonymous: per remote address).</summary>
public sealed class RateLimitedHostFactory : SampleHostFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:RateLimit:PermitLimit", "3");
        builder.UseSetting("Billing:RateLimit:Window", "00:01:00");
    }
}

public sealed class RateLimitTests(RateLimitedHostFactory host) : IClassFixture<RateLimitedHostFactory>
{
    [Fact]
    public async Task Each_key_has_its_own_window_and_the_fourth_request_is_a_429_problem_with_retry_after()
    {
        var admin = host.Client();
        var first = await admin.CreateKey("billing:read");
        var second = await admin.CreateKey("billing:read");

        var client = host.Client(first);
        for (var i = 0; i < 3; i++)
        {
            (await client.Get("/v1/plans")).Ok();
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/plans");
        request.Headers.Add("X-Request-Id", "limited-1");
        using var response = await client.SendAsync(request);
        var limited = new ApiResponse(response, await response.Content.ReadAsStringAsync());
        var problem = limited.Problem(HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.Equal("limited-1", problem.GetProperty("requestId").GetString());
        var retryAfter = int.Parse(response.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 60);
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());

        // Another key is not affected; health is never limited.
        (await host.Client(second).Get("/v1/plans")).Ok();
        for (var i = 0; i < 10; i++)
        {
            (await host.CreateClient().Get("/health/live")).Ok();
        }

        // Anonymous requests share the remote address's window: 401 three times, then 429.
        var anonymous = host.Client(null);
        for (var i = 0; i < 3; i++)
        {
            (await anonymous.Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        }

        (await anonymous.Get("/v1/customers")).Problem(HttpStatusCode.TooManyRequests, "rate_limited");
        (await host.Client(second).Get("/v1/plans")).Ok();
    }
}

public sealed class RateLimitConfigurationTests
{
    [Theory]
    [InlineData("Billing:RateLimit:PermitLimit", "0", "PermitLimit")]
    [InlineData("Billing:RateLimit:Window", "00:00:00.5", "Window")]
    [InlineData("Billing:RateLimit:QueueLimit", "-1", "QueueLimit")]
    [InlineData("Billing:Cors:AllowedOrigins:0", "*", "AllowedOrigins")]
    [InlineData("Billing:Cors:AllowedOrigins:0", "https://app.example.com/path", "AllowedOrigins")]
    [InlineData("Billing:MaxRequestBodyBytes", "10", "MaxRequestBodyBytes")]
    public void Bad_settings_stop_the_host_at_start(string key, string value, string named)
    {
        using var host = new ConfiguredHostFactory((key, value));
        var error = Assert.Throws<InvalidOperationException>(() => host.CreateClient().Dispose());
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_limiter_can_be_switched_off()
    {
        using var host = new ConfiguredHostFactory(("Billing:RateLimit:Enabled", "false"), ("Billing:RateLimit:PermitLimit", "1"));
        var client = host.Client();
        for (var i = 0; i < 5; i++)
        {
            (await client.Get("/v1/plans")).Ok();
        }
    }
}

/// <summary>A host with extra settings (applied after the defaults).</summary>
public sealed class ConfiguredHostFactory(params (string Key, string Value)[] settings) : SampleHostFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
    }
}

public sealed class SecurityHeaderTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Theory]
    [InlineData("/v1/plans", true)]
    [InlineData("/v1/plans/plan_missing", true)]
    [InlineData("/v1/no-such-route", true)]
    [InlineData("/health/live", false)]
    [InlineData("/openapi/v1.json", false)]
    public async Task Every_response_carries_the_security_headers(string path, bool noStore)
    {
        using var response = await host.Client().GetAsync(path);
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("no-referrer", response.Headers.GetValues("Referrer-Policy").Single());
        var csp = response.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("default-src 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.Equal(noStore, response.Headers.CacheControl?.NoStore == true);
    }

    [Fact]
    public async Task Without_configured_origins_there_are_no_cors_headers()
    {
        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/plans");
        get.Headers.Add("Origin", "https://app.example.com");
        using var response = await host.Client().SendAsync(get);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));

        using var preflight = Preflight("https://app.example.com");
        using var answer = await host.CreateClient().SendAsync(preflight);
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Methods"));
    }

    internal static HttpRequestMessage Preflight(string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, "/v1/plans");
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "authorization,content-type,idempotency-key");
        return request;
    }
}

public sealed class CorsHostFactory : SampleHostFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:Cors:AllowedOrigins:0", "https://app.example.com");
        builder.UseSetting("Billing:Cors:AllowedOrigins:1", "http://localhost:5173/");
    }
}

public sealed class CorsTests(CorsHostFactory host) : IClassFixture<CorsHostFactory>
{
    [Fact]
    public async Task Configured_origins_get_cors_headers_and_others_do_not()
    {
        foreach (var origin in new[] { "https://app.example.com", "http://localhost:5173" })
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/plans");
            get.Headers.Add("Origin", origin);
            using var response = await host.Client().SendAsync(get);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(origin, response.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Contains("X-Request-Id", response.Headers.GetValues("Access-Control-Expose-Headers").Single(), StringComparison.OrdinalIgnoreCase);
        }

        using var other = new HttpRequestMessage(HttpMethod.Get, "/v1/plans");
        other.Headers.Add("Origin", "https://evil.example.com");
        using var refused = await host.Client().SendAsync(other);
        Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));

        // A preflight needs no API key.
        using var preflight = SecurityHeaderTests.Preflight("https://app.example.com");
        using var answer = await host.CreateClient().SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        Assert.Equal("https://app.example.com", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("POST", answer.Headers.GetValues("Access-Control-Allow-Methods").Single(), StringComparison.Ordinal);
        Assert.Contains("authorization", answer.Headers.GetValues("Access-Control-Allow-Headers").Single(), StringComparison.OrdinalIgnoreCase);
    }
}

public sealed class BodyLimitTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Fact]
    public async Task A_body_over_the_limit_is_a_413_problem_with_or_without_content_length()
    {
        var json = "{\"name\":\"" + new string('x', 1024 * 1024) + "\",\"currency\":\"USD\",\"price\":{\"model\":\"flat\",\"amount\":1},\"interval\":{\"unit\":\"month\"}}";
        Assert.True((await host.Client().Post("/v1/plans", json)).Problem(HttpStatusCode.RequestEntityTooLarge, "validation_error").GetProperty("errors").TryGetProperty("body", out _));

        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/plans")
        {
            Content = new StreamContent(new UnseekableStream(Encoding.UTF8.GetBytes(json))),
        };
        chunked.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        chunked.Headers.TransferEncodingChunked = true;
        Assert.Null(chunked.Content.Headers.ContentLength);
        using var response = await host.Client().SendAsync(chunked);
        Assert.True(new ApiResponse(response, await response.Content.ReadAsStringAsync()).Problem(HttpStatusCode.RequestEntityTooLarge, "validation_error").GetProperty("errors").TryGetProperty("body", out _));

        // Just under the limit is read (and rejected for the long name, as a validation problem).
        var fits = json.Replace(new string('x', 1024 * 1024), new string('x', 400 * 1024), StringComparison.Ordinal);
        (await host.Client().Post("/v1/plans", fits)).ValidationError("name");
        Assert.Equal(0, (await host.Client().Get("/v1/plans")).Ok().Data.GetArrayLength());
    }

    /// <summary>A read-only stream without a length, so the body goes without Content-Length.</summary>
    internal sealed class UnseekableStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

public sealed class OpenApiSecurityTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Fact]
    public async Task The_document_has_a_bearer_scheme_required_by_every_v1_operation_and_the_429_answer()
    {
        var document = (await host.CreateClient().Get("/openapi/v1.json")).Ok().Json;
        var scheme = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer");
        Assert.Equal("http", scheme.GetProperty("type").GetString());
        Assert.Equal("bearer", scheme.GetProperty("scheme").GetString());
        Assert.StartsWith("sk_", scheme.GetProperty("bearerFormat").GetString(), StringComparison.Ordinal);

        var operations = 0;
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        {
            foreach (var operation in path.Value.EnumerateObject().Where(o => o.Name is "get" or "post" or "patch" or "put" or "delete"))
            {
                var secured = operation.Value.TryGetProperty("security", out var security)
                    && security.EnumerateArray().Any(r => r.TryGetProperty("bearer", out _));
                if (!path.Name.StartsWith("/v1/", StringComparison.Ordinal))
                {
                    Assert.False(secured, $"{operation.Name} {path.Name} should need no key");
                    continue;
                }

                operations++;
                Assert.True(secured, $"{operation.Name} {path.Name} has no bearer security requirement");
                var tooMany = operation.Value.GetProperty("responses").GetProperty("429");
                Assert.True(tooMany.GetProperty("headers").TryGetProperty("Retry-After", out _), $"{operation.Name} {path.Name}: 429 without Retry-After");
                Assert.True(tooMany.GetProperty("content").TryGetProperty("application/problem+json", out _));
            }
        }

        Assert.True(operations >= 39, $"only {operations} /v1 operations");
    }
}
