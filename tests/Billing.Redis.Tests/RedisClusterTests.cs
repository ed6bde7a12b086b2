using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Billing.InMemory;
using Billing.Testing.Servers;
using Billing.Usage;
using static Billing.Redis.Tests.RedisUsageCounterTests;

namespace Billing.Redis.Tests;

/// <summary>A one-node Redis Cluster (all 16,384 slots on one server): the server enforces the cluster's rule that one
/// script call touches one slot, so batches across customers and every key layout are checked for real.</summary>
public sealed class RedisClusterTests(RedisClusterTests.ClusterFixture fixture) : IClassFixture<RedisClusterTests.ClusterFixture>
{
    [Fact]
    public async Task The_server_rejects_a_script_call_across_slots()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => fixture.Server.ExecuteAsync("EVAL", "return 1", "2", "{cus_a}:x", "{cus_b}:y"));
        Assert.Contains("CROSSSLOT", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Batches_across_many_customers_run_on_a_cluster_with_the_in_memory_results()
    {
        var customers = Enumerable.Range(0, 40).Select(_ => NewCustomer()).ToArray();
        // Each customer's periods start at its own instant (1.7 h and 0.3 s apart): over three UTC days, so counters of one
        // group share day hashes and spread over several.
        var starts = customers.Select((c, n) => (c, Key(c).PeriodStart.AddHours(1.7 * n).AddMilliseconds(300 * n))).ToDictionary(p => p.c, p => p.Item2);
        UsageCounterKey At(string c, string meter = "api_calls") => Key(c, meter) with { PeriodStart = starts[c] };
        var reference = new InMemoryUsageCounter();
        for (var round = 0; round < 5; round++)
        {
            var batch = Enumerable.Range(0, 200).Select(i =>
            {
                var c = customers[(i * 7 + round) % customers.Length];
                return (i % 4) switch
                {
                    0 => Event(c, $"s{round}-{i}", i) with { Counter = At(c), HardLimit = 5_000 },
                    1 => Event(c, $"u{round}-{i}", 1) with { Counter = At(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = $"user{i % 13}" },
                    2 => Event(c, $"l{round}-{i}", i) with { Counter = At(c, "gauge"), Aggregation = MeterAggregation.Last, Timestamp = new DateTimeOffset(2025, 3, 2, 0, 0, 0, TimeSpan.Zero).AddSeconds(i % 3) },
                    _ => Event(c, $"s{round}-{i - 3}", 1) with { Counter = At(c) }, // a duplicate of an earlier event of the batch, maybe of another customer's key
                };
            }).ToArray();

            Assert.Equal(await reference.RecordBatchAsync(batch), await fixture.Counter.RecordBatchAsync(batch));
        }

        foreach (var c in customers)
        {
            foreach (var meter in new[] { "api_calls", "users", "gauge" })
            {
                Assert.Equal(await reference.GetTotalAsync(At(c, meter)), await fixture.Counter.GetTotalAsync(At(c, meter)));
                Assert.Equal(0, await fixture.Counter.GetTotalAsync(At(c, meter) with { PeriodStart = starts[c].AddTicks(1) }));
            }
        }

        var c0 = customers[^1];
        var total = await reference.GetTotalAsync(At(c0));
        Assert.Equal(total, await fixture.Counter.RebuildAsync(At(c0), MeterAggregation.Sum, [Event(c0, "r1", total) with { Counter = At(c0) }]));
    }

    [Fact]
    public async Task A_counter_that_takes_the_cluster_for_a_standalone_server_sends_the_batch_again_by_slot()
    {
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = fixture.Server.ConfigurationString });
        counter.AssumeStandalone(true);
        var customers = Enumerable.Range(0, 5).Select(_ => NewCustomer()).ToArray();
        var batch = Enumerable.Range(0, 50).Select(i => Event(customers[i % 5], $"x{i % 40}", i)).ToArray();
        var reference = new InMemoryUsageCounter();

        Assert.Equal(await reference.RecordBatchAsync(batch), await counter.RecordBatchAsync(batch));
        Assert.Equal(await reference.RecordBatchAsync(batch), await counter.RecordBatchAsync(batch)); // now known: by slot at once
        foreach (var c in customers)
        {
            Assert.Equal(await reference.GetTotalAsync(Key(c)), await counter.GetTotalAsync(Key(c)));
        }
    }

    [Fact]
    public async Task Every_key_is_in_the_slot_of_its_customer_groups_hash_tag()
    {
        string[] customers = [NewCustomer(), "}odd{", "cus_{x}", "{g3}"];
        foreach (var c in customers)
        {
            await fixture.Counter.RecordBatchAsync(
            [
                Event(c, "k1", 1),
                Event(c, "k2", 1) with { Counter = Key(c, "users"), Aggregation = MeterAggregation.UniqueCount, UniqueValue = "u" },
            ]);
        }

        var keys = ((object?[])(await fixture.Server.ExecuteAsync("KEYS", "billing:*"))!).Cast<string>().ToArray();
        foreach (var c in customers)
        {
            Assert.Contains($"billing:{{g{GroupOf(c)}}}:u:{Key(c).PeriodStart.ToUnixTimeSeconds()}:{Tag(c)}users", keys);
        }

        foreach (var group in keys.GroupBy(HashTag))
        {
            Assert.Matches("^g([0-9]|1[0-5])$", group.Key);
            var slots = new HashSet<long>();
            foreach (var key in group)
            {
                slots.Add((long)(await fixture.Server.ExecuteAsync("CLUSTER", "KEYSLOT", key))!);
            }

            Assert.Equal(Crc16Slot(group.Key), Assert.Single(slots));
        }
    }

    [Fact]
    public async Task A_batch_over_many_customers_is_one_call_per_slot_of_its_groups()
    {
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = fixture.Server.ConfigurationString, KeyPrefix = "few", CustomerGroups = 4 });
        var customers = Enumerable.Range(0, 100).Select(_ => NewCustomer()).ToArray();
        var batch = customers.Select((c, i) => Event(c, $"k{i}", 1)).ToArray();
        var slots = customers.Select(c => Crc16Slot($"g{RedisKeys.GroupOf(c, 4)}")).Distinct().Count();
        var before = await EvalCallsAsync();

        Assert.All(await counter.RecordBatchAsync(batch), r => Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 1), r));

        Assert.Equal(slots, await EvalCallsAsync() - before);
        Assert.InRange(slots, 1, 4);
        foreach (var c in customers)
        {
            Assert.Equal(1, await counter.GetTotalAsync(Key(c)));
        }
    }

    private async Task<long> EvalCallsAsync()
    {
        var stats = (string)(await fixture.Server.ExecuteAsync("INFO", "commandstats"))!;
        return stats.Split('\n').Where(l => l.StartsWith("cmdstat_evalsha:", StringComparison.Ordinal) || l.StartsWith("cmdstat_eval:", StringComparison.Ordinal))
            .Sum(l => long.Parse(l.Split("calls=")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Starts redis-server with <c>cluster-enabled yes</c>, assigns it every slot and connects the counters.</summary>
    public sealed class ClusterFixture : IAsyncLifetime
    {
        private LocalRedisServer? _server;
        private RedisUsageCounter? _counter;

        public LocalRedisServer Server => _server ?? throw new InvalidOperationException("Not started.");

        public RedisUsageCounter Counter => _counter ?? throw new InvalidOperationException("Not started.");

        public async Task InitializeAsync()
        {
            var options = new LocalRedisOptions();
            options.Settings["cluster-enabled"] = "yes";
            options.Settings["cluster-port"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture); // port + 10000 may not exist
            _server = await LocalRedisServer.StartAsync(options);
            await _server.ExecuteAsync("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
            var watch = Stopwatch.StartNew();
            while (!((string)(await _server.ExecuteAsync("CLUSTER", "INFO"))!).Contains("cluster_state:ok", StringComparison.Ordinal))
            {
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the one-node cluster did not become ok");
                await Task.Delay(50);
            }

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

        private static int FreePort()
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            return ((IPEndPoint)socket.LocalEndPoint!).Port;
        }
    }
}
