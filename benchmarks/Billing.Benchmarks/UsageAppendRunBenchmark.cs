using static Billing.Benchmarks.ConsoleBenchmark;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Billing.EntityFrameworkCore.Usage;
using Billing.Ports;
using Billing.Testing.Servers;
using Billing.Usage;
using Npgsql;

namespace Billing.Benchmarks;

/// <summary>
/// The durable usage-event writer on PostgreSQL: <c>dotnet run -c Release -- usage-append-run [options]</c>. Each run gets
/// a fresh, migrated schema; W writers append the run's events through one <see cref="EntityFrameworkUsageEventStore"/>
/// (batch mode), or C callers append one event per call (single mode: through a <see cref="BatchingUsageEventStore"/>
/// when coalescing, else straight to the store). Only the appends are timed. After each run every answer is checked:
/// each key reported stored exactly once, the table holds exactly the distinct keys, and each row is the event that
/// was reported stored.
/// </summary>
/// <remarks>
/// Options: <c>--events 100000</c> (per run), <c>--batch-size 1000</c> (a list runs each), <c>--writers 1,4</c>,
/// <c>--duplicates 0</c> (the share of events, 0 to 0.9, that repeat the key of another event of the run, with other
/// content: in the same batch or another), <c>--single</c> (one event per call), <c>--callers 64</c> (single mode, a
/// list), <c>--coalesce true|false|both</c> (single mode, default both), <c>--max-batch 1000</c> and
/// <c>--max-flushes 1</c> (the <see cref="BatchingUsageEventStoreOptions"/> in single mode), <c>--repeat 3</c>,
/// <c>--warmup 50000</c> and <c>--warmup-rounds 3</c> (untimed runs first: the JIT settles after a few hundred thousand
/// events), <c>--customers 100</c>, <c>--properties 2</c> (properties per
/// event), <c>--postgres "Host=...;Database=..."</c> (an existing server; default: a private
/// <see cref="LocalPostgresServer"/>), <c>--durable true|false</c> (private server: fsync and synchronous_commit on,
/// the default, or off), <c>--pg name=value</c> (extra server settings for the private server, repeatable),
/// <c>--keep</c> (keep each run's schema), <c>--after-migrate "SQL"</c> (run after each run's migration, <c>{schema}</c>
/// replaced: for experiments such as dropping an index).
/// </remarks>
internal static class UsageAppendRunBenchmark
{
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Received = new(2025, 3, 20, 12, 0, 0, TimeSpan.Zero);
    private static int _runs;

    public static int Run(string[] args) =>
        ConsoleBenchmark.Run("usage-append-run", args, Settings.Parse, "[--events 100000] [--batch-size 1000[,...]] [--writers 1,4] [--duplicates 0] [--single] [--callers 64[,...]] [--coalesce true|false|both] [--max-batch 1000] [--max-flushes 1] [--repeat 3] [--warmup 50000] [--warmup-rounds 3] [--after-migrate \"SQL\"] [--customers 100] [--properties 2] [--postgres \"connection string\"] [--durable true|false] [--pg name=value]... [--keep]", RunAsync);

    private static async Task<int> RunAsync(Settings settings)
    {
        LocalPostgresServer? server = null;
        try
        {
            string connectionString;
            if (settings.Postgres is { } external)
            {
                connectionString = external;
            }
            else
            {
                var options = new LocalPostgresOptions { Durable = settings.Durable };
                foreach (var (name, value) in settings.ServerSettings)
                {
                    options.Settings[name] = value;
                }

                server = await LocalPostgresServer.StartAsync(options).ConfigureAwait(false);
                connectionString = await server.CreateDatabaseAsync("usage_append").ConfigureAwait(false);
            }

            connectionString = new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = 200 }.ConnectionString;
            var port = new NpgsqlConnectionStringBuilder(connectionString).Port;
            Console.WriteLine(Invariant($"PostgreSQL {await ScalarAsync(connectionString, "SHOW server_version").ConfigureAwait(false)}, fsync {await ScalarAsync(connectionString, "SHOW fsync").ConfigureAwait(false)}, synchronous_commit {await ScalarAsync(connectionString, "SHOW synchronous_commit").ConfigureAwait(false)}, full_page_writes {await ScalarAsync(connectionString, "SHOW full_page_writes").ConfigureAwait(false)}, shared_buffers {await ScalarAsync(connectionString, "SHOW shared_buffers").ConfigureAwait(false)}"));

            var configurations = settings.Single
                ? [.. settings.Callers.SelectMany(c => settings.CoalesceModes.Select(coalesce => new Configuration(1, c, coalesce)))]
                : settings.BatchSizes.SelectMany(b => settings.Writers.Select(w => new Configuration(b, w, false))).ToList();
            for (var round = 1; round <= settings.WarmupRounds && settings.Warmup > 0; round++)
            {
                var warm = await RunOnceAsync(connectionString, port, settings, configurations[0], settings.Warmup, 0).ConfigureAwait(false);
                Console.WriteLine(Invariant($"warm-up {round}: {warm.Line()}"));
            }

            var results = new List<RunResult>();
            foreach (var configuration in configurations)
            {
                for (var repeat = 1; repeat <= settings.Repeat; repeat++)
                {
                    var result = await RunOnceAsync(connectionString, port, settings, configuration, settings.Events, repeat).ConfigureAwait(false);
                    Console.WriteLine(result.Line());
                    results.Add(result);
                }
            }

            Console.WriteLine();
            Console.WriteLine("## Medians");
            Console.WriteLine();
            Console.WriteLine("| mode | batch | writers | events | duplicates | events/s (median) | runs (events/s) | client CPU/event | server CPU/event | WAL/event | all OK |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|");
            foreach (var group in results.GroupBy(r => r.Configuration))
            {
                var runs = group.ToList();
                var median = runs.OrderBy(r => r.EventsPerSecond).ElementAt(runs.Count / 2);
                Console.WriteLine(Invariant(
                    $"| {group.Key.Mode} | {group.Key.BatchSize} | {group.Key.Writers} | {median.Events} | {settings.Duplicates:P0} | {median.EventsPerSecond:N0} | {string.Join(", ", runs.Select(r => r.EventsPerSecond.ToString("N0", CultureInfo.InvariantCulture)))} | {median.ClientCpuPerEvent:F1} µs | {(median.ServerCpuPerEvent is { } s ? s.ToString("F1", CultureInfo.InvariantCulture) + " µs" : "n/a")} | {(double)median.WalBytes / median.Events:F0} B | {(runs.TrueForAll(r => r.Ok) ? "yes" : "NO")} |"));
            }

            NpgsqlConnection.ClearAllPools();
            return results.TrueForAll(r => r.Ok) ? 0 : 1;
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task<RunResult> RunOnceAsync(string connectionString, int port, Settings settings, Configuration configuration, int count, int repeat)
    {
        var run = Interlocked.Increment(ref _runs);
        // The same schema name in every run (dropped after it), unless kept: EF Core caches the migrator's model per schema
        // name, so the runs do not build models (and keep the JIT busy) as a long-running process would not.
        var schema = settings.Keep ? Invariant($"usage_bench_{Environment.ProcessId}_{run}") : Invariant($"usage_bench_{Environment.ProcessId}");
        var store = EntityFrameworkUsageEventStore.ForPostgreSql(connectionString, schema);
        await store.MigrateAsync().ConfigureAwait(false);
        if (settings.AfterMigrate is { } sql)
        {
            await ExecuteAsync(connectionString, sql.Replace("{schema}", schema, StringComparison.Ordinal)).ConfigureAwait(false);
        }

        var events = Generate(settings, count, run);
        await ExecuteAsync(connectionString, "CHECKPOINT").ConfigureAwait(false);

        var answers = new bool[events.Length];
        var latencies = new ConcurrentBag<double>();
        BatchingUsageEventStore? batching = configuration.Coalesce
            ? new BatchingUsageEventStore(store, new BatchingUsageEventStoreOptions { MaxBatchSize = settings.MaxBatch, MaxConcurrentFlushes = settings.MaxFlushes })
            : null;
        IUsageEventStore target = batching is null ? store : batching;
        var size = configuration.BatchSize;
        var batches = (events.Length + size - 1) / size;
        var next = -1;

        GC.Collect();
        var walBefore = await ScalarAsync(connectionString, "SELECT pg_current_wal_lsn()::text").ConfigureAwait(false);
        var load = LoadAverage();
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var serverBefore = PostgresCpu(port);
        var machineBefore = MachineBusy();
        var stopwatch = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, configuration.Writers).Select(_ => Task.Run(async () =>
        {
            int b;
            while ((b = Interlocked.Increment(ref next)) < batches)
            {
                var from = b * size;
                var batch = events.AsSpan(from, Math.Min(size, events.Length - from)).ToArray();
                var started = Stopwatch.GetTimestamp();
                var stored = await target.AppendAsync(batch).ConfigureAwait(false);
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                for (var i = 0; i < stored.Count; i++)
                {
                    answers[from + i] = stored[i];
                }
            }
        })).ToArray();
        await Task.WhenAll(tasks).ConfigureAwait(false);
        var wall = stopwatch.Elapsed;
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        var serverCpu = PostgresCpu(port) is { } after && serverBefore is { } before ? after - before : (TimeSpan?)null;
        var machine = MachineBusy() - machineBefore;

        var walBytes = long.Parse(
            (await ScalarAsync(connectionString, $"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{walBefore}')::bigint").ConfigureAwait(false))!,
            CultureInfo.InvariantCulture);
        var check = await CheckAsync(connectionString, schema, events, answers).ConfigureAwait(false);
        var tableSize = await ScalarAsync(connectionString, $"SELECT pg_size_pretty(pg_total_relation_size('{schema}.usage_events'))").ConfigureAwait(false);
        if (!settings.Keep)
        {
            await ExecuteAsync(connectionString, $"DROP SCHEMA {schema} CASCADE").ConfigureAwait(false);
        }

        var sorted = latencies.Order().ToArray();
        return new RunResult(configuration, repeat, events.Length, wall, clientCpu, serverCpu, machine, load,
            sorted.Length == 0 ? 0 : sorted[sorted.Length / 2], sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, sorted.Length * 99 / 100)],
            batching?.Statistics, tableSize, walBytes, check.Ok, check.Message);
    }

    /// <summary>
    /// The run's events: distinct keys first, then the duplicates (another event's key, quantity + 1), shuffled. Keys
    /// look like random ids (16 hex digits), customers and meters are spread evenly.
    /// </summary>
    private static StoredUsageEvent[] Generate(Settings settings, int count, int run)
    {
        var random = new Mix(unchecked((ulong)run * 0x9E3779B97F4A7C15UL));
        var unique = Math.Max(1, count - (int)(count * settings.Duplicates));
        var properties = Enumerable.Range(0, settings.Properties).ToDictionary(
            i => i switch { 0 => "region", 1 => "path", _ => Invariant($"p{i}") },
            i => i switch { 0 => "eu-west-1", 1 => "/v1/things", _ => Invariant($"value_{i}") });
        IReadOnlyDictionary<string, string> shared = properties;
        var events = new StoredUsageEvent[count];
        for (var i = 0; i < unique; i++)
        {
            var customer = Invariant($"cus_{i % settings.Customers:D6}");
            events[i] = new StoredUsageEvent
            {
                Counter = new UsageCounterKey(customer, (i / settings.Customers) % 2 == 0 ? "api_calls" : "storage", PeriodStart),
                SubscriptionId = Invariant($"sub_{i % settings.Customers:D6}"),
                Quantity = (long)random.Next(1, 100),
                IdempotencyKey = Invariant($"evt_{random.NextUInt64():x16}"),
                Timestamp = PeriodStart.AddSeconds(i % 1_000_000),
                Properties = shared,
                ReceivedAt = Received,
            };
        }

        for (var i = unique; i < count; i++)
        {
            var original = events[random.Next(0, unique)];
            events[i] = original with { Quantity = original.Quantity + 1 };
        }

        for (var i = count - 1; i > 0; i--)
        {
            var j = random.Next(0, i + 1);
            (events[i], events[j]) = (events[j], events[i]);
        }

        return events;
    }

    /// <summary>Each key reported stored exactly once; the table holds exactly the distinct keys, each as the event reported stored.</summary>
    private static async Task<(bool Ok, string Message)> CheckAsync(string connectionString, string schema, StoredUsageEvent[] events, bool[] answers)
    {
        var winners = new Dictionary<(string, string), long>();
        var reportedTwice = 0;
        for (var i = 0; i < events.Length; i++)
        {
            if (answers[i] && !winners.TryAdd((events[i].Counter.CustomerId, events[i].IdempotencyKey), events[i].Quantity))
            {
                reportedTwice++;
            }
        }

        var distinct = events.Select(e => (e.Counter.CustomerId, e.IdempotencyKey)).Distinct().Count();
        var rows = 0;
        var wrong = 0;
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync().ConfigureAwait(false);
            await using var command = new NpgsqlCommand($"SELECT customer_id, idempotency_key, quantity FROM {schema}.usage_events", connection);
            await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
            while (await reader.ReadAsync().ConfigureAwait(false))
            {
                rows++;
                if (!winners.TryGetValue((reader.GetString(0), reader.GetString(1)), out var quantity) || quantity != reader.GetInt64(2))
                {
                    wrong++;
                }
            }
        }

        var ok = reportedTwice == 0 && winners.Count == distinct && rows == distinct && wrong == 0;
        return (ok, Invariant($"{(ok ? "OK" : "FAIL")} ({distinct} keys, {winners.Count} reported stored, {reportedTwice} reported twice, {rows} rows, {wrong} rows not the reported event)"));
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private static async Task<string?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToString(await command.ExecuteScalarAsync().ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    /// <summary>SplitMix64: a small deterministic generator (System.Random is banned in this repository).</summary>
    private sealed class Mix(ulong seed)
    {
        private ulong _state = seed;

        public ulong NextUInt64()
        {
            unchecked
            {
                var z = _state += 0x9E3779B97F4A7C15UL;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                return z ^ (z >> 31);
            }
        }

        public int Next(int minInclusive, int maxExclusive) => minInclusive + (int)(NextUInt64() % (ulong)(maxExclusive - minInclusive));
    }

    private sealed record Configuration(int BatchSize, int Writers, bool Coalesce)
    {
        public string Mode => BatchSize > 1 ? "batch" : Coalesce ? "single, coalesced" : "single, direct";
    }

    private sealed record RunResult(
        Configuration Configuration, int Repeat, int Events, TimeSpan Wall, TimeSpan ClientCpu, TimeSpan? ServerCpu, TimeSpan MachineCpu, string Load,
        double MedianCallMs, double P99CallMs, BatchingUsageEventStoreStatistics? Coalescing, string? TableSize, long WalBytes, bool Ok, string Check)
    {
        public double EventsPerSecond => Events / Wall.TotalSeconds;

        public double ClientCpuPerEvent => ClientCpu.TotalMicroseconds / Events;

        public double? ServerCpuPerEvent => ServerCpu?.TotalMicroseconds / Events;

        public string Line()
        {
            var line = new StringBuilder();
            line.Append(Invariant($"{Configuration.Mode}, batch {Configuration.BatchSize}, {(Configuration.BatchSize > 1 ? "writers" : "callers")} {Configuration.Writers}, #{Repeat}: {Events} events in {Wall.TotalSeconds:F2} s = {EventsPerSecond:N0}/s"));
            line.Append(Invariant($"; call p50 {MedianCallMs:F2} ms p99 {P99CallMs:F2} ms"));
            line.Append(Invariant($"; CPU client {ClientCpu.TotalSeconds:F2} s ({ClientCpuPerEvent:F1} µs/event), server {(ServerCpu is { } s ? Invariant($"{s.TotalSeconds:F2} s ({ServerCpuPerEvent:F1} µs/event)") : "n/a")}, machine {MachineCpu.TotalSeconds:F2} s of {Wall.TotalSeconds * Environment.ProcessorCount:F2} s"));
            if (Coalescing is { } c)
            {
                line.Append(Invariant($"; {c.Flushes} flushes, {(c.Flushes == 0 ? 0 : (double)c.Events / c.Flushes):F1} events/flush"));
            }

            line.Append(Invariant($"; WAL {(double)WalBytes / Events:F0} B/event; table {TableSize}; load {Load}; {Check}"));
            return line.ToString();
        }
    }

    private sealed record Settings(
        int Events, int[] BatchSizes, int[] Writers, double Duplicates, bool Single, int[] Callers, bool[] CoalesceModes, int MaxBatch, int MaxFlushes,
        int Repeat, int Warmup, int WarmupRounds, int Customers, int Properties, string? Postgres, bool Durable, IReadOnlyList<(string Name, string Value)> ServerSettings, bool Keep, string? AfterMigrate = null)
    {
        public static Settings Parse(string[] args)
        {
            var settings = new Settings(100_000, [1_000], [1, 4], 0, false, [64], [true, false], 1_000, 1, 3, 50_000, 3, 100, 2, null, true, [], false);
            for (var i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                settings = args[i] switch
                {
                    "--events" => settings with { Events = Positive(args[i], Value()) },
                    "--batch-size" => settings with { BatchSizes = List(args[i], Value()) },
                    "--writers" => settings with { Writers = List(args[i], Value()) },
                    "--duplicates" => settings with
                    {
                        Duplicates = double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d is >= 0 and <= 0.9 ? d : throw new ArgumentException("--duplicates: a share from 0 to 0.9."),
                    },
                    "--single" => settings with { Single = true },
                    "--callers" => settings with { Callers = List(args[i], Value()) },
                    "--coalesce" => settings with
                    {
                        CoalesceModes = Value() switch
                        {
                            "true" => [true],
                            "false" => [false],
                            "both" => [true, false],
                            var other => throw new ArgumentException($"--coalesce: '{other}' is not true, false or both."),
                        },
                    },
                    "--max-batch" => settings with { MaxBatch = Positive(args[i], Value()) },
                    "--max-flushes" => settings with { MaxFlushes = Positive(args[i], Value()) },
                    "--repeat" => settings with { Repeat = Positive(args[i], Value()) },
                    "--warmup" => settings with { Warmup = int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var w) ? w : throw new ArgumentException("--warmup: a count (0: none).") },
                    "--warmup-rounds" => settings with { WarmupRounds = Positive(args[i], Value()) },
                    "--after-migrate" => settings with { AfterMigrate = Value() },
                    "--customers" => settings with { Customers = Positive(args[i], Value()) },
                    "--properties" => settings with { Properties = int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p <= 50 ? p : throw new ArgumentException("--properties: 0 to 50.") },
                    "--postgres" => settings with { Postgres = Value() },
                    "--durable" => settings with { Durable = bool.TryParse(Value(), out var durable) ? durable : throw new ArgumentException("--durable: true or false.") },
                    "--pg" => settings with
                    {
                        ServerSettings = [.. settings.ServerSettings, Value() is var pair && pair.IndexOf('=', StringComparison.Ordinal) is > 0 and var eq ? (pair[..eq], pair[(eq + 1)..]) : throw new ArgumentException("--pg: name=value.")],
                    },
                    "--keep" => settings with { Keep = true },
                    var other => throw new ArgumentException($"Unknown option '{other}'."),
                };
            }

            return settings;
        }

        public override string ToString() => Invariant(
            $"events {Events}, {(Single ? $"single events, callers {string.Join(',', Callers)}, coalesce {string.Join('/', CoalesceModes)} (max batch {MaxBatch}, max flushes {MaxFlushes})" : $"batch sizes {string.Join(',', BatchSizes)}, writers {string.Join(',', Writers)}")}, duplicates {Duplicates:P0}, repeat {Repeat}, warm-up {WarmupRounds} x {Warmup}, customers {Customers}, properties {Properties}, {(Postgres is null ? $"private server (durable {Durable}{string.Concat(ServerSettings.Select(s => $", {s.Name}={s.Value}"))})" : "external server")}{(AfterMigrate is null ? "" : $", after migrating: {AfterMigrate}")}");

        private static int Positive(string option, string value) =>
            int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"{option}: a positive number.");

        private static int[] List(string option, string value) => [.. value.Split(',').Select(v => Positive(option, v))];
    }
}
