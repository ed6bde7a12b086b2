using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Testing.Payments;
using Billing.Testing.Servers;
using Billing.Testing.Time;
using Billing.Usage;
using Microsoft.Extensions.Options;

namespace Billing.Redis.Tests;

/// <summary>
/// End to end through <see cref="UsageMeteringService"/> with the Redis counter on a real redis-server and a durable
/// event store (the in-memory one: this test project has no EF Core reference). Writers ingest through the service
/// while the server is killed and restarted (empty); after <see cref="UsageMeteringService.RebuildCountersAsync"/>
/// every counter equals the durable aggregate, and every event the service answered "accepted" is counted, once.
/// </summary>
public sealed class MeteringRestartTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly Meter[] Meters =
    [
        new() { Key = "calls" },
        new() { Key = "peak", Aggregation = MeterAggregation.Max },
        new() { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" },
    ];

    [Fact]
    public async Task Writers_ingest_through_the_service_across_a_redis_restart_and_a_rebuild_restores_every_accepted_event()
    {
        await using var server = await LocalRedisServer.StartAsync();
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = server.ConfigurationString });
        var events = new InMemoryUsageEventStore();
        var store = new InMemoryBillingStore();
        var time = new FakeTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new MeteringOptions();
        var engine = new BillingEngine(store, new FakePaymentGateway(), time, Options.Create(new BillingOptions()), new RandomIdGenerator(), new MeteredUsageCharges(events, options));
        var plan = await engine.CreatePlanAsync(new NewPlan("Metered", new FlatPrice(new Money(1_000, Currency.USD)), BillingInterval.Monthly)
        {
            MeteredPrices = [.. Meters.Select(m => new MeteredPrice { Meter = m, Price = new PerUnitPrice(new Money(1, Currency.USD)) })],
        });
        var clock = await engine.CreateTestClockAsync(Start);
        var customers = new string[3];
        for (var i = 0; i < customers.Length; i++)
        {
            var customer = await engine.CreateCustomerAsync(new NewCustomer($"C{i}", $"c{i}@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.Visa, TestClockId = clock.Id });
            await engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
            customers[i] = customer.Id;
        }

        await engine.AdvanceTestClockAsync(clock.Id, Start.AddDays(10));
        var metering = new UsageMeteringService(store, counter, events, time, options);

        var accepted = new ConcurrentDictionary<(string Customer, string Key), UsageEventInput>();
        var replayedDuplicates = 0;
        var failures = 0;
        var next = 0;
        using var stop = new CancellationTokenSource();

        // Four writers send batches of new events, plus replays of events accepted earlier, through the crash and the restart.
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var mine = new List<UsageEventInput>();
            var round = 0;
            while (!stop.IsCancellationRequested)
            {
                round++;
                var batch = new List<UsageEventInput>();
                for (var i = 0; i < 9; i++)
                {
                    var n = Interlocked.Increment(ref next);
                    batch.Add(new UsageEventInput
                    {
                        CustomerId = customers[n % customers.Length],
                        MeterKey = Meters[(n / 3) % Meters.Length].Key,
                        Quantity = 1 + (n % 7),
                        Timestamp = Start.AddDays(9).AddSeconds(n % 3_600),
                        IdempotencyKey = string.Create(CultureInfo.InvariantCulture, $"w{w}-e{n}"),
                        Properties = new Dictionary<string, string> { ["user"] = string.Create(CultureInfo.InvariantCulture, $"u{n % 40}") },
                    });
                }

                var replays = mine.Count == 0 ? [] : new[] { mine[round % mine.Count], mine[(round * 7) % mine.Count] }.Select(e => e with { Quantity = e.Quantity + 100 }).ToArray();
                batch.AddRange(replays);
                try
                {
                    var results = await metering.RecordBatchAsync(batch);
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var (input, result) = (batch[i], results[i]);
                        if (i >= batch.Count - replays.Length)
                        {
                            Assert.Equal(UsageIngestStatus.Duplicate, result.Status); // a replay of an accepted event, before or after the crash
                            Interlocked.Increment(ref replayedDuplicates);
                            continue;
                        }

                        Assert.True(result.Status == UsageIngestStatus.Accepted, $"{input.IdempotencyKey}: {result.Status} {result.Reason} {result.Message}");
                        Assert.True(accepted.TryAdd((input.CustomerId!, input.IdempotencyKey), input), $"{input.IdempotencyKey} was accepted twice");
                        mine.Add(input);
                    }
                }
                catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
                {
                    Interlocked.Increment(ref failures); // nothing of the batch was stored: its events were never accepted
                    await Task.Delay(10);
                }
            }
        })).ToArray();

        await WaitUntilAsync(() => accepted.Count >= 600, "the writers did not get going");
        await server.KillAsync();
        await WaitUntilAsync(() => Volatile.Read(ref failures) > 0, "no writer saw the crash");
        var downAt = accepted.Count;
        await Task.Delay(300);
        Assert.InRange(accepted.Count - downAt, 0, 4 * 9); // at most the batches in flight at the kill

        await server.RestartAsync();
        var restartedAt = accepted.Count;
        var replaysAtRestart = Volatile.Read(ref replayedDuplicates);
        await WaitUntilAsync(() => accepted.Count >= restartedAt + 600, "the writers did not recover after the restart");
        Assert.True(Volatile.Read(ref replayedDuplicates) > replaysAtRestart, "no replay reached the restarted server");
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        // The restarted server started empty; the durable events rebuild every counter of the period.
        var rebuilt = await metering.RebuildCountersAsync(Start, key => Meters.Single(m => m.Key == key).Aggregation);
        Assert.Equal(customers.Length * Meters.Length, rebuilt);
        Assert.Equal(accepted.Count, events.Count);
        foreach (var customer in customers)
        {
            foreach (var meter in Meters)
            {
                var key = new UsageCounterKey(customer, meter.Key, Start);
                var mine = accepted.Values.Where(e => e.CustomerId == customer && e.MeterKey == meter.Key).ToList();
                var fold = new UsageCounterState();
                foreach (var e in mine)
                {
                    fold.Apply(meter.Aggregation, new UsageCounterEvent
                    {
                        Counter = key, Aggregation = meter.Aggregation, Quantity = e.Quantity, IdempotencyKey = e.IdempotencyKey, Timestamp = e.Timestamp,
                        UniqueValue = meter.Aggregation == MeterAggregation.UniqueCount ? e.Properties!["user"] : null, Now = Start, DedupWindow = options.DedupWindow,
                    });
                }

                var durable = await metering.GetDurableTotalAsync(key, meter.Aggregation);
                var total = await metering.GetTotalAsync(key);
                Assert.True(total == durable && durable == fold.Total, $"{key}: redis {total}, durable {durable}, accepted fold {fold.Total}");
                Assert.Equal(mine.Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal), (await events.ListAsync(key)).Select(e => e.IdempotencyKey).Order(StringComparer.Ordinal));
            }
        }

        // And every key is taken again in Redis: a replay of any accepted event is a duplicate that changes nothing.
        var sample = accepted.Values.Take(50).Select(e => e with { Quantity = 1_000 }).ToArray();
        Assert.All(await metering.RecordBatchAsync(sample), r => Assert.Equal(UsageIngestStatus.Duplicate, r.Status));
        Assert.Equal(accepted.Count, events.Count);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string message)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < Patience, message);
            await Task.Delay(20);
        }
    }
}
