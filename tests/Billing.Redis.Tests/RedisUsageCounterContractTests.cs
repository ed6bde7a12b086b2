using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.Redis.Tests;

/// <summary>
/// The usage counter contract of Billing.Testing against a real redis-server (one per class), with the contract's full
/// sizes: 200,000 events from 16 writers, and a hard limit of 10,000 raced by 16 writers.
/// </summary>
public sealed class RedisUsageCounterContractTests(RedisFixture fixture) : UsageCounterContract, IClassFixture<RedisFixture>
{
    /// <inheritdoc />
    protected override ValueTask<IUsageCounter> CreateCounterAsync() => ValueTask.FromResult<IUsageCounter>(fixture.Counter);

    /// <summary>Key expiry is Redis's (the server's clock): wait the window out for real.</summary>
    protected override Task WaitForExpiryAsync(TimeSpan window) => Task.Delay(window + TimeSpan.FromMilliseconds(250));
}
