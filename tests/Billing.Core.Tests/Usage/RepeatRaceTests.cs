using Billing.InMemory;
using Billing.Testing.Contracts;
using Billing.Testing.Usage;

namespace Billing.Tests.Usage;

/// <summary>
/// An event and its repeat arriving together through the metering service with the in-memory counter and event store
/// (<see cref="UsageMeteringRepeatRace"/>): the repeat's append reaches the store first, yet the event is answered
/// "accepted" and its repeat "duplicate", nothing is rebuilt, and every event is counted once; a counter that lost
/// its keys still turns a replay into a duplicate and is rebuilt.
/// </summary>
public sealed class RepeatRaceTests
{
    [Fact]
    public async Task A_repeat_stored_first_leaves_the_event_accepted_and_rebuilds_nothing()
    {
        var counter = new FlushableUsageCounter();
        await UsageMeteringRepeatRace.CheckAsync(counter, new InMemoryUsageEventStore(), () =>
        {
            counter.Flush();
            return Task.CompletedTask;
        });
    }

    [Fact]
    public async Task The_race_holds_on_the_plain_in_memory_counter()
    {
        await UsageMeteringRepeatRace.CheckAsync(new InMemoryUsageCounter(), new InMemoryUsageEventStore());
    }
}
