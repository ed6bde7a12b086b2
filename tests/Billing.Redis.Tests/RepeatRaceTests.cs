using Billing.InMemory;
using Billing.Testing.Contracts;

namespace Billing.Redis.Tests;

/// <summary>
/// An event and its repeat arriving together through the metering service with the Redis counter (a real
/// redis-server of this class's own, since the tests flush it) in front of the durable store (the in-memory one: this
/// project has no EF Core reference), see <see cref="UsageMeteringRepeatRace"/>: the repeat's append reaches the store
/// first, yet the event is answered "accepted" and its repeat "duplicate", nothing is rebuilt, and every event is
/// counted once; after a <c>FLUSHALL</c> a replay is a duplicate and the counter is rebuilt.
/// </summary>
public sealed class RepeatRaceTests(RedisFixture fixture) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task A_repeat_stored_first_leaves_the_event_accepted_and_rebuilds_nothing_and_a_flush_still_rebuilds() =>
        await UsageMeteringRepeatRace.CheckAsync(fixture.Counter, new InMemoryUsageEventStore(), FlushAsync);

    [Fact]
    public async Task The_race_holds_without_coalescing_single_records()
    {
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = fixture.Server.ConfigurationString, CoalesceRecords = false });
        await UsageMeteringRepeatRace.CheckAsync(counter, new InMemoryUsageEventStore(), FlushAsync);
    }

    private async Task FlushAsync() => await fixture.Server.ExecuteAsync("FLUSHALL");
}
