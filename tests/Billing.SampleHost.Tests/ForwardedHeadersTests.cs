using System.Net;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Billing.SampleHost.Composition;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Billing.SampleHost.Tests;

/// <summary>
/// A host limited to 3 requests per minute per key (anonymous: per address) whose every request arrives from
/// 127.0.0.1, as behind a reverse proxy on the same machine; extra settings are applied last.
/// </summary>
public sealed class ProxiedHostFactory(params (string Key, string Value)[] settings) : SampleHostFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:RateLimit:PermitLimit", "3");
        builder.UseSetting("Billing:RateLimit:Window", "00:01:00");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
    }

    protected override void ConfigureServices(IServiceCollection services) => services.AddTransient<IStartupFilter, LoopbackPeer>();

    /// <summary>The test server has no socket: give every request the proxy's address before the host's pipeline.</summary>
    private sealed class LoopbackPeer : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, following) =>
            {
                context.Connection.RemoteIpAddress = IPAddress.Loopback;
                return following(context);
            });
            next(app);
        };
    }
}

public sealed class ForwardedHeadersTests
{
    private const string Proxy = "Billing:ForwardedHeaders:KnownProxies:0";

    [Fact]
    public async Task Without_known_proxies_X_Forwarded_For_does_not_change_the_rate_limit_partition()
    {
        using var host = new ProxiedHostFactory();
        var client = host.Client(null);
        for (var i = 1; i <= 3; i++)
        {
            (await GetAsync(client, $"203.0.113.{i}")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        }

        // Every request came from 127.0.0.1, whatever it claimed: the fourth, claiming yet another address, is limited.
        (await GetAsync(client, "198.51.100.7")).Problem(HttpStatusCode.TooManyRequests, "rate_limited");
        (await GetAsync(client, null)).Problem(HttpStatusCode.TooManyRequests, "rate_limited");
    }

    [Fact]
    public async Task With_the_loopback_proxy_configured_each_forwarded_client_has_its_own_window()
    {
        using var host = new ProxiedHostFactory((Proxy, "127.0.0.1"));
        var client = host.Client(null);
        for (var i = 0; i < 3; i++)
        {
            (await GetAsync(client, "203.0.113.1")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        }

        (await GetAsync(client, "203.0.113.1")).Problem(HttpStatusCode.TooManyRequests, "rate_limited");

        // Another client behind the proxy, and the proxy itself, have windows of their own.
        (await GetAsync(client, "203.0.113.2")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await GetAsync(client, null)).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        // Only the last hop (the one the trusted proxy added) counts: entries a client prepends change nothing.
        (await GetAsync(client, "192.0.2.99, 203.0.113.1")).Problem(HttpStatusCode.TooManyRequests, "rate_limited");
    }

    [Fact]
    public async Task A_configured_network_is_trusted_like_a_proxy()
    {
        using var host = new ProxiedHostFactory(("Billing:ForwardedHeaders:KnownNetworks:0", "127.0.0.0/8"));
        var client = host.Client(null);
        for (var i = 0; i < 3; i++)
        {
            (await GetAsync(client, "203.0.113.1")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        }

        (await GetAsync(client, "203.0.113.1")).Problem(HttpStatusCode.TooManyRequests, "rate_limited");
        (await GetAsync(client, "203.0.113.2")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
    }

    [Theory]
    [InlineData(Proxy, "10.0.0.300", "Billing:ForwardedHeaders:KnownProxies:0")]
    [InlineData(Proxy, "proxy.example.com", "Billing:ForwardedHeaders:KnownProxies:0")]
    [InlineData("Billing:ForwardedHeaders:KnownNetworks:0", "10.0.0.0/33", "Billing:ForwardedHeaders:KnownNetworks:0")]
    [InlineData("Billing:ForwardedHeaders:KnownNetworks:0", "10.0.0.1/8", "Billing:ForwardedHeaders:KnownNetworks:0")]
    [InlineData("Billing:ForwardedHeaders:KnownNetworks:0", "10.0.0.0", "Billing:ForwardedHeaders:KnownNetworks:0")]
    public void Bad_forwarded_header_settings_stop_the_host_at_start(string key, string value, string named)
    {
        // The host's own composition and the check its start runs (IStartupValidator): WebApplicationFactory sometimes
        // reports a host that failed to start as an ObjectDisposedException instead of the start's exception.
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection([new KeyValuePair<string, string?>(key, value)]);
        builder.AddForwardedHeaders();
        using var app = builder.Build();
        var validation = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains(named, validation.Message, StringComparison.Ordinal);
        Assert.Contains(value, validation.Message, StringComparison.Ordinal);
    }

    private static async Task<ApiResponse> GetAsync(HttpClient client, string? forwardedFor)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/plans");
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
            request.Headers.Add("X-Forwarded-Proto", "https");
        }

        using var response = await client.SendAsync(request);
        return new ApiResponse(response, await response.Content.ReadAsStringAsync());
    }
}
