using Billing.Testing.Servers;

namespace Billing.Redis.Tests;

/// <summary>A throwaway redis-server for one test class, and counters connected to it (prefix <c>billing</c>).</summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private LocalRedisServer? _server;
    private RedisUsageCounter? _counter;

    public LocalRedisServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public RedisUsageCounter Counter => _counter ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync()
    {
        _server = await LocalRedisServer.StartAsync();
        _counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = _server.ConfigurationString });
    }

    public async Task DisposeAsync()
    {
        if (_counter is not null)
        {
            await _counter.DisposeAsync();
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
