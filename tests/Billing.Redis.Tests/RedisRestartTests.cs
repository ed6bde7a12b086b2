using System.Diagnostics;
using Billing.Testing.Servers;
using Billing.Usage;
using static Billing.Redis.Tests.RedisUsageCounterTests;

namespace Billing.Redis.Tests;

/// <summary>A server that crashes mid-run: calls fail while it is down, work again after it restarts (empty: nothing is
/// persisted), and a rebuild from the durable events restores every total exactly.</summary>
public sealed class RedisRestartTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Calls_fail_while_the_server_is_down_and_a_rebuild_after_the_restart_restores_the_totals()
    {
        await using var server = await LocalRedisServer.StartAsync();
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = server.ConfigurationString });
        string[] customers = [NewCustomer(), NewCustomer(), NewCustomer()];
        var durable = new List<UsageCounterEvent>(); // what the metering service would have stored: confirmed accepted events
        var gate = new Lock();
        var failures = 0;
        var next = 0;
        using var stop = new CancellationTokenSource();

        // Four writers record batches across customers until stopped, through the crash and the restart.
        var writers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                UsageCounterEvent[] batch;
                lock (gate)
                {
                    batch = [.. Enumerable.Range(0, 9).Select(i => Event(customers[i % 3], "e" + next++, 1 + (i % 4)))];
                }

                try
                {
                    var results = await counter.RecordBatchAsync(batch);
                    lock (gate)
                    {
                        durable.AddRange(batch.Where((_, i) => results[i].Outcome == UsageOutcome.Accepted));
                        Assert.All(results, r => Assert.Equal(UsageOutcome.Accepted, r.Outcome));
                    }
                }
                catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
                {
                    Interlocked.Increment(ref failures);
                    await Task.Delay(10);
                }
            }
        })).ToArray();

        await WaitUntilAsync(() => Count(durable, gate) >= 500, "the writers did not get going");
        await server.KillAsync();
        var downAt = Count(durable, gate);

        // While it is down every kind of call fails (fast, not after a long timeout).
        var watch = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<StackExchange.Redis.RedisException>(async () => await counter.RecordAsync(Event(customers[0], "down", 1)));
        await Assert.ThrowsAnyAsync<StackExchange.Redis.RedisException>(async () => await counter.GetTotalAsync(Key(customers[0])));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"a call to a dead server took {watch.Elapsed}");
        await WaitUntilAsync(() => Volatile.Read(ref failures) > 0, "no writer saw the crash");
        await Task.Delay(200);
        Assert.InRange(Count(durable, gate) - downAt, 0, 36); // at most the batches in flight at the kill

        await server.RestartAsync();
        var restartedAt = Count(durable, gate);
        await WaitUntilAsync(() => Count(durable, gate) >= restartedAt + 200, "the writers did not recover after the restart");
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        // The restarted server is empty: the totals hold only what was recorded since.
        UsageCounterEvent[] all;
        lock (gate)
        {
            all = [.. durable];
        }

        foreach (var c in customers)
        {
            var expected = all.Where(e => e.Counter.CustomerId == c).Sum(e => e.Quantity);
            Assert.True(await counter.GetTotalAsync(Key(c)) < expected, "the totals survived a restart without persistence");
        }

        // A rebuild from the durable events restores every total and takes every key again.
        foreach (var c in customers)
        {
            var mine = all.Where(e => e.Counter.CustomerId == c).ToArray();
            Assert.Equal(mine.Sum(e => e.Quantity), await counter.RebuildAsync(Key(c), MeterAggregation.Sum, mine));
            Assert.Equal(mine.Sum(e => e.Quantity), await counter.GetTotalAsync(Key(c)));
            Assert.All(await counter.RecordBatchAsync(mine[..50]), r => Assert.Equal(UsageOutcome.Duplicate, r.Outcome));
        }
    }

    [Fact]
    public async Task A_counter_created_while_the_server_is_down_connects_once_it_is_up()
    {
        await using var server = await LocalRedisServer.StartAsync();
        await server.KillAsync();
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = server.ConfigurationString }); // abortConnect=false
        var c = NewCustomer();
        await Assert.ThrowsAnyAsync<StackExchange.Redis.RedisException>(async () => await counter.RecordAsync(Event(c, "k1", 1)));

        await server.RestartAsync();
        await WaitUntilAsync(async () => (await TryRecordAsync(counter, Event(c, "k1", 1))) is not null, "the counter did not connect after the server started");
        Assert.Equal(1, await counter.GetTotalAsync(Key(c)));
    }

    private static async Task<UsageCounterResult?> TryRecordAsync(RedisUsageCounter counter, UsageCounterEvent e)
    {
        try
        {
            return await counter.RecordAsync(e);
        }
        catch (StackExchange.Redis.RedisException)
        {
            return null;
        }
    }

    private static int Count(List<UsageCounterEvent> durable, Lock gate)
    {
        lock (gate)
        {
            return durable.Count;
        }
    }

    private static Task WaitUntilAsync(Func<bool> condition, string message) => WaitUntilAsync(() => Task.FromResult(condition()), message);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string message)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(watch.Elapsed < Patience, message);
            await Task.Delay(20);
        }
    }
}
