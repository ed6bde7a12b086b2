using System.Net;
using System.Net.Sockets;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Hosting;

namespace Billing.SampleHost.Tests;

/// <summary>A host configured with Redis on a loopback port where nothing listens: it starts (counters connect
/// lazily), answers the API, and is not ready.</summary>
public sealed class UnreachableRedisHostFactory : SampleHostFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:Redis:Configuration", $"127.0.0.1:{FreePort()},abortConnect=false,connectTimeout=500");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public sealed class RedisReadinessTests(UnreachableRedisHostFactory host) : IClassFixture<UnreachableRedisHostFactory>
{
    [Fact]
    public async Task Ready_checks_redis_when_it_is_configured()
    {
        var client = host.CreateClient();
        (await client.Get("/health/live")).Ok();
        var ready = await client.Get("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.Status);
        var checks = ready.Json.GetProperty("checks");
        Assert.Equal("healthy", checks.GetProperty("database").GetProperty("status").GetString());
        Assert.Equal("unhealthy", checks.GetProperty("redis").GetProperty("status").GetString());
        Assert.DoesNotContain("Exception", ready.Body, StringComparison.Ordinal);
        (await host.Client().Get("/v1/plans")).Ok();
    }
}
