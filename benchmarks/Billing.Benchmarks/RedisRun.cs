using static Billing.Benchmarks.ConsoleBenchmark;
using System.Diagnostics;
using System.Globalization;
using Billing.Redis;
using Billing.Testing.Servers;
using Billing.Usage;

namespace Billing.Benchmarks;

/// <summary>
/// The Redis usage counter against <c>redis-benchmark</c> on one private server:
/// <c>dotnet run -c Release -- redis-run [options]</c>.
/// </summary>
/// <remarks>
/// <para>Starts ONE <c>redis-server</c> (<see cref="LocalRedisServer"/>: 127.0.0.1, a free port, nothing persisted), loads the
/// counter's Record script and then, per round: (1) <c>redis-benchmark</c> sends EVALSHA of that script with exactly the
/// keys and arguments <see cref="RedisUsageCounter.RecordAsync"/> sends for a single Sum event, the idempotency key made
/// random with <c>__rand_int__</c> (<c>-r</c>), <c>--inflight</c> requests in flight (<c>-c inflight/pipeline -P pipeline</c>);
/// (2) the .NET client: <c>--inflight</c> loops on one multiplexer, each awaiting <c>RecordAsync</c> of a new event;
/// (3) batches: <c>--writers</c> loops each awaiting <c>RecordBatchAsync</c> of <c>--batch</c> new events spread over
/// <c>--customers</c> customers. It prints each rate, the ratio (2)/(1), the server's CPU per event (<c>INFO cpu</c>) and the
/// client's, and checks after each .NET phase that the totals equal the accepted events (exactly once).</para>
/// <para>Options: <c>--seconds 4</c> (each .NET phase), <c>--requests 500000</c> (redis-benchmark <c>-n</c>),
/// <c>--inflight 64</c>, <c>--pipeline 64</c> (1 connection: the .NET client pipelines on one; 1 gives <c>-c 64 -P 1</c>), <c>--writers 16</c>, <c>--batch 100</c>, <c>--customers 8</c>,
/// <c>--repeat 3</c>, <c>--warmup 2</c> (seconds of untimed single and batch calls first), <c>--limit</c> (give every
/// event a hard limit), <c>--batch-mode auto|per-slot</c> (<see cref="RedisUsageCounterOptions.BatchMode"/>), <c>--phases rb,single,batch</c>
/// (which phases run; <c>rbbatch</c> adds redis-benchmark sending the batch call of <c>--batch</c> events with random keys),
/// <c>--no-coalesce</c> (<see cref="RedisUsageCounterOptions.CoalesceRecords"/> off: one script call per RecordAsync),
/// <c>--customer-groups 16</c> (<see cref="RedisUsageCounterOptions.CustomerGroups"/>).
/// <c>spread</c> adds batches like (3) over <c>--spread-customers 1000</c> customers, consecutive events going to consecutive
/// customers, so each batch of 100 events holds 100 customers with one event each (the sample host's load); its server
/// µs/event is the redis-server process's user + system CPU (<c>INFO cpu</c>, i.e. getrusage, as /proc/pid/stat) per event.</para>
/// </remarks>
internal static class RedisRun
{
    private static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan DedupWindow = TimeSpan.FromMinutes(10);

    /// <summary>Acceptance tokens as the metering service sends them: 19–20 characters of decimal text each.</summary>
    private static long _token = -7_046_029_254_386_353_131;

    public static int Run(string[] args) =>
        ConsoleBenchmark.Run("redis-run", args, Settings.Parse, "[--seconds 4] [--requests 500000] [--inflight 64] [--pipeline 64] [--writers 16] [--batch 100] [--customers 8] [--repeat 3] [--warmup 2] [--limit] [--batch-mode auto|per-slot] [--phases rb,rbbatch,single,batch,spread] [--spread-customers 1000] [--customer-groups 16] [--no-coalesce]", RunAsync);

    private static async Task<int> RunAsync(Settings settings)
    {
        await using var server = await LocalRedisServer.StartAsync().ConfigureAwait(false);
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions
        {
            ConfigurationString = server.ConfigurationString,
            BatchMode = settings.BatchMode,
            CoalesceRecords = settings.Coalesce,
            CustomerGroups = settings.CustomerGroups,
        }).ConfigureAwait(false);
        var version = InfoField((string)(await server.ExecuteAsync("INFO", "server").ConfigureAwait(false))!, "redis_version");
        Console.WriteLine(Invariant($"redis-server {version} on {server.EndPoint} (one server for every phase); StackExchange.Redis {typeof(StackExchange.Redis.ConnectionMultiplexer).Assembly.GetName().Version}"));

        var command = counter.RecordCommandFor(SingleEvent("rb:__rand_int__", settings.Limit));
        var sha = (string)(await server.ExecuteAsync("SCRIPT", "LOAD", command.Script).ConfigureAwait(false))!;
        string[] benchmarkArgs =
        [
            "-h", server.Host, "-p", server.Port.ToString(CultureInfo.InvariantCulture),
            "-c", (settings.InFlight / settings.Pipeline).ToString(CultureInfo.InvariantCulture),
            "-P", settings.Pipeline.ToString(CultureInfo.InvariantCulture),
            "-n", settings.Requests.ToString(CultureInfo.InvariantCulture),
            "-r", "1000000000", "--csv",
            "EVALSHA", sha, command.Keys.Length.ToString(CultureInfo.InvariantCulture),
            .. command.Keys.Select(k => (string)k!),
            .. command.Values.Select(v => (string)v!),
        ];
        Console.WriteLine("redis-benchmark " + string.Join(' ', benchmarkArgs.Select(Quote)));

        // The same script with one batch call of --batch events over --customers customers, every idempotency key random.
        var batchCustomers = Enumerable.Range(0, settings.Customers).Select(i => Invariant($"cus_rb_{i:D4}")).ToArray();
        var batchCommand = counter.RecordBatchCommandFor([.. Enumerable.Range(0, settings.Batch).Select(i => BatchEvent(batchCustomers[i % batchCustomers.Length], Invariant($"rb{i}:__rand_int__"), settings.Limit, StartOf(i % batchCustomers.Length)))]);
        var batchPipeline = Math.Max(1, settings.Writers / 4);
        string[] batchBenchmarkArgs =
        [
            "-h", server.Host, "-p", server.Port.ToString(CultureInfo.InvariantCulture),
            "-c", "4", "-P", batchPipeline.ToString(CultureInfo.InvariantCulture),
            "-n", Math.Max(1_000, settings.Requests / settings.Batch * 4).ToString(CultureInfo.InvariantCulture),
            "-r", "1000000000", "--csv",
            "EVALSHA", sha, batchCommand.Keys.Length.ToString(CultureInfo.InvariantCulture),
            .. batchCommand.Keys.Select(k => (string)k!),
            .. batchCommand.Values.Select(v => (string)v!),
        ];
        if (settings.Phases.Contains("rbbatch"))
        {
            var file = Path.Combine(Path.GetTempPath(), "redis-run-batch-command.txt");
            await File.WriteAllLinesAsync(file, batchBenchmarkArgs[15..]).ConfigureAwait(false);
            Console.WriteLine(Invariant($"redis-benchmark -c 4 -P {batchPipeline} ... EVALSHA of one {settings.Batch}-event batch call (arguments, one a line: {file})"));
        }

        Console.WriteLine(Invariant($"Record script: {command.Script.Length} characters, sha {sha}"));

        // Warm-up: JIT and connection, untimed.
        await SingleAsync(counter, settings, TimeSpan.FromSeconds(settings.WarmupSeconds), "w").ConfigureAwait(false);
        await BatchAsync(counter, settings, TimeSpan.FromSeconds(settings.WarmupSeconds), "w").ConfigureAwait(false);

        var rows = new List<(int Round, string Phase, double Rate, double ServerUs, double ClientUs, double Calls)>();
        for (var round = 1; round <= settings.Repeat; round++)
        {
            var tag = Invariant($"r{round}");
            await server.FlushAllAsync().ConfigureAwait(false);
            var before = await SampleAsync(server).ConfigureAwait(false);
            var watch = Stopwatch.StartNew();
            var rbRate = double.NaN;
            if (settings.Phases.Contains("rb"))
            {
                rbRate = await RedisBenchmarkAsync(benchmarkArgs).ConfigureAwait(false);
                var after = await SampleAsync(server).ConfigureAwait(false);
                rows.Add(Row(round, "redis-benchmark EVALSHA", rbRate, settings.Requests, before, after, clientCpu: TimeSpan.Zero));
            }

            if (settings.Phases.Contains("rbbatch"))
            {
                await server.FlushAllAsync().ConfigureAwait(false);
                before = await SampleAsync(server).ConfigureAwait(false);
                var calls = await RedisBenchmarkAsync(batchBenchmarkArgs).ConfigureAwait(false);
                var after = await SampleAsync(server).ConfigureAwait(false);
                var n = long.Parse(batchBenchmarkArgs[9], CultureInfo.InvariantCulture) * settings.Batch;
                rows.Add(Row(round, "redis-benchmark EVALSHA batch", calls * settings.Batch, n, before, after, clientCpu: TimeSpan.Zero));
                Console.WriteLine(Invariant($"round {round}: redis-benchmark batch calls {calls * settings.Batch:N0} events/s"));
            }

            var singleRate = double.NaN;
            if (settings.Phases.Contains("single"))
            {
                await server.FlushAllAsync().ConfigureAwait(false);
                before = await SampleAsync(server).ConfigureAwait(false);
                var single = await SingleAsync(counter, settings, TimeSpan.FromSeconds(settings.Seconds), tag).ConfigureAwait(false);
                var after = await SampleAsync(server).ConfigureAwait(false);
                singleRate = single.Events / single.Elapsed.TotalSeconds;
                rows.Add(Row(round, "RecordAsync", singleRate, single.Events, before, after, single.ClientCpu));
            }

            var batchRate = double.NaN;
            if (settings.Phases.Contains("batch"))
            {
                await server.FlushAllAsync().ConfigureAwait(false);
                before = await SampleAsync(server).ConfigureAwait(false);
                var batch = await BatchAsync(counter, settings, TimeSpan.FromSeconds(settings.Seconds), tag).ConfigureAwait(false);
                var after = await SampleAsync(server).ConfigureAwait(false);
                batchRate = batch.Events / batch.Elapsed.TotalSeconds;
                rows.Add(Row(round, "RecordBatchAsync", batchRate, batch.Events, before, after, batch.ClientCpu));
            }

            if (settings.Phases.Contains("spread"))
            {
                await server.FlushAllAsync().ConfigureAwait(false);
                await server.ExecuteAsync("CONFIG", "RESETSTAT").ConfigureAwait(false);
                before = await SampleAsync(server).ConfigureAwait(false);
                var spread = await BatchAsync(counter, settings with { Customers = settings.SpreadCustomers }, TimeSpan.FromSeconds(settings.Seconds), tag + "s").ConfigureAwait(false);
                var after = await SampleAsync(server).ConfigureAwait(false);
                var spreadRate = spread.Events / spread.Elapsed.TotalSeconds;
                var row = Row(round, "RecordBatchAsync spread", spreadRate, spread.Events, before, after, spread.ClientCpu);
                rows.Add(row);
                Console.WriteLine(Invariant($"round {round}: spread batches {spreadRate:N0} events/s, redis-server {row.Item4:0.00} µs/event; per event: {CommandsPerEvent((string)(await server.ExecuteAsync("INFO", "commandstats").ConfigureAwait(false))!, spread.Events)}"));
            }

            Console.WriteLine(Invariant($"round {round}: redis-benchmark {rbRate:N0}/s, RecordAsync {singleRate:N0}/s (ratio {singleRate / rbRate:0.00}), RecordBatchAsync {batchRate:N0} events/s; load {LoadAverage()}; {watch.Elapsed.TotalSeconds:0.0} s"));
        }

        Console.WriteLine();
        Console.WriteLine(Invariant($"## redis-run ({settings.InFlight} in flight; batches of {settings.Batch} from {settings.Writers} writers over {settings.Customers} customers; shared 2-core machine)"));
        Console.WriteLine("| round | phase | events/s | server µs/event | client CPU µs/event | script calls/event |");
        Console.WriteLine("|---:|---|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            Console.WriteLine(Invariant($"| {r.Round} | {r.Phase} | {r.Rate:N0} | {r.ServerUs:0.00} | {(r.ClientUs > 0 ? r.ClientUs.ToString("0.00", CultureInfo.InvariantCulture) : "-")} | {r.Calls:0.000} |"));
        }

        var rb = Median(rows.Where(r => r.Phase == "redis-benchmark EVALSHA").Select(r => r.Rate));
        var net = Median(rows.Where(r => r.Phase == "RecordAsync").Select(r => r.Rate));
        var ratios = rows.Where(r => r.Phase == "RecordAsync").Select(r => r.Rate / rows.SingleOrDefault(b => b.Round == r.Round && b.Phase == "redis-benchmark EVALSHA").Rate).ToArray();
        var batches = Median(rows.Where(r => r.Phase == "RecordBatchAsync").Select(r => r.Rate));
        var spreads = rows.Where(r => r.Phase == "RecordBatchAsync spread").ToArray();
        if (spreads.Length > 0)
        {
            Console.WriteLine(Invariant($"median spread batches ({settings.Batch} events over {Math.Min(settings.Batch, settings.SpreadCustomers)} customers each, {settings.SpreadCustomers} customers): {Median(spreads.Select(r => r.Rate)):N0} events/s, redis-server {Median(spreads.Select(r => r.ServerUs)):0.00} µs/event"));
        }

        Console.WriteLine();
        Console.WriteLine(Invariant($"median: redis-benchmark {rb:N0}/s, RecordAsync {net:N0}/s, ratio {Median(ratios):0.00} (rounds: {string.Join(", ", ratios.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}), RecordBatchAsync {batches:N0} events/s"));
        return 0;
    }

    private static (int, string, double, double, double, double) Row(int round, string phase, double rate, long events, ServerSample before, ServerSample after, TimeSpan clientCpu) =>
        (round, phase, rate, (after.CpuSeconds - before.CpuSeconds) * 1e6 / events, clientCpu.TotalMicroseconds / events, (double)(after.ScriptCalls - before.ScriptCalls) / events);

    /// <summary>Runs redis-benchmark and returns its requests per second.</summary>
    private static async Task<double> RedisBenchmarkAsync(string[] args)
    {
        var start = new ProcessStartInfo("redis-benchmark") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("redis-benchmark did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().ConfigureAwait(false);
        var text = await output.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"redis-benchmark exited with {process.ExitCode}: {text} {await error.ConfigureAwait(false)}");
        }

        // --csv: a header line, then "EVALSHA ...","<rps>",...
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.StartsWith("\"EVALSHA", StringComparison.Ordinal));
        var fields = line.Split("\",\"");
        return double.Parse(fields[1].Trim('"'), CultureInfo.InvariantCulture);
    }

    private static async Task<PhaseResult> SingleAsync(RedisUsageCounter counter, Settings settings, TimeSpan duration, string tag)
    {
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        var next = -1L;
        var stopAt = duration.Ticks * Stopwatch.Frequency / TimeSpan.TicksPerSecond;
        var loops = Enumerable.Range(0, settings.InFlight).Select(_ => Task.Run(async () =>
        {
            long accepted = 0;
            while (watch.ElapsedTicks < stopAt)
            {
                var n = Interlocked.Increment(ref next);
                var result = await counter.RecordAsync(SingleEvent(Key(tag, n), settings.Limit)).ConfigureAwait(false);
                if (result.Outcome != UsageOutcome.Accepted)
                {
                    throw new InvalidOperationException($"event {n}: {result}");
                }

                accepted++;
            }

            return accepted;
        })).ToArray();
        var events = (await Task.WhenAll(loops).ConfigureAwait(false)).Sum();
        var elapsed = watch.Elapsed;
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        var total = await counter.GetTotalAsync(new UsageCounterKey("cus_bench", tag + "_single", PeriodStart)).ConfigureAwait(false);
        if (total != events)
        {
            throw new InvalidOperationException($"exactly-once check failed: {events} accepted events, total {total}");
        }

        return new PhaseResult(events, elapsed, clientCpu);
    }

    private static async Task<PhaseResult> BatchAsync(RedisUsageCounter counter, Settings settings, TimeSpan duration, string tag)
    {
        var customers = Enumerable.Range(0, settings.Customers).Select(i => Invariant($"cus_{tag}_{i:D4}")).ToArray();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        var next = -1L;
        var stopAt = duration.Ticks * Stopwatch.Frequency / TimeSpan.TicksPerSecond;
        var loops = Enumerable.Range(0, settings.Writers).Select(_ => Task.Run(async () =>
        {
            long accepted = 0;
            var batch = new UsageCounterEvent[settings.Batch];
            while (watch.ElapsedTicks < stopAt)
            {
                var start = Interlocked.Add(ref next, settings.Batch) - settings.Batch + 1;
                for (var i = 0; i < batch.Length; i++)
                {
                    var n = start + i;
                    var c = (int)(n % customers.Length);
                    batch[i] = BatchEvent(customers[c], Key(tag, n), settings.Limit, StartOf(c));
                }

                var results = await counter.RecordBatchAsync(batch).ConfigureAwait(false);
                foreach (var r in results)
                {
                    if (r.Outcome != UsageOutcome.Accepted)
                    {
                        throw new InvalidOperationException($"batch event: {r}");
                    }
                }

                accepted += results.Count;
            }

            return accepted;
        })).ToArray();
        var events = (await Task.WhenAll(loops).ConfigureAwait(false)).Sum();
        var elapsed = watch.Elapsed;
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        long total = 0;
        for (var c = 0; c < customers.Length; c++)
        {
            total += await counter.GetTotalAsync(new UsageCounterKey(customers[c], "api_calls", StartOf(c))).ConfigureAwait(false);
        }

        if (total != events)
        {
            throw new InvalidOperationException($"exactly-once check failed: {events} accepted events, totals {total}");
        }

        return new PhaseResult(events, elapsed, clientCpu);
    }

    private static string Key(string tag, long n) => string.Create(CultureInfo.InvariantCulture, $"{tag}:{n}");

    private static UsageCounterEvent SingleEvent(string key, bool limit) => new()
    {
        Counter = new UsageCounterKey("cus_bench", key.StartsWith("rb:", StringComparison.Ordinal) ? "rb_single" : key[..key.IndexOf(':', StringComparison.Ordinal)] + "_single", PeriodStart),
        Aggregation = MeterAggregation.Sum,
        Quantity = 1,
        IdempotencyKey = key,
        Timestamp = Now,
        Now = Now,
        DedupWindow = DedupWindow,
        HardLimit = limit ? long.MaxValue / 2 : null,
        AcceptanceToken = Interlocked.Increment(ref _token),
    };

    /// <summary>
    /// The period start of the <paramref name="customer"/>-th customer: as in the sample host, every subscription has its own
    /// (about 1.23 s apart, to the tick), so every customer's counter has its own field and its own retention.
    /// </summary>
    private static DateTimeOffset StartOf(int customer) => PeriodStart.AddTicks(customer * 12_345_679L);

    /// <summary>A batch event as the metering service makes it: the counter kept until its period closes (a month, plus an
    /// hour of late-event grace) and 35 days more.</summary>
    private static UsageCounterEvent BatchEvent(string customer, string key, bool limit, DateTimeOffset periodStart) => new()
    {
        Counter = new UsageCounterKey(customer, "api_calls", periodStart),
        CounterRetention = periodStart.AddMonths(1).AddHours(1) - Now + TimeSpan.FromDays(35),
        Aggregation = MeterAggregation.Sum,
        Quantity = 1,
        IdempotencyKey = key,
        Timestamp = Now,
        Now = Now,
        DedupWindow = DedupWindow,
        HardLimit = limit ? long.MaxValue / 2 : null,
        AcceptanceToken = Interlocked.Increment(ref _token),
    };

    private static async Task<ServerSample> SampleAsync(LocalRedisServer server)
    {
        var seconds = await RedisCpuSecondsAsync(server).ConfigureAwait(false);
        var stats = (string)(await server.ExecuteAsync("INFO", "commandstats").ConfigureAwait(false))!;
        return new ServerSample(seconds, Calls(stats, "evalsha") + Calls(stats, "eval"));

        static long Calls(string stats, string command)
        {
            var line = stats.Split('\n').FirstOrDefault(l => l.StartsWith($"cmdstat_{command}:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split("calls=")[1].Split(',')[0], CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The commands the scripts ran (and the script calls) per event, with their µs per call, from <c>INFO commandstats</c>.</summary>
    private static string CommandsPerEvent(string stats, long events) => string.Join(", ", stats.Split('\n')
        .Where(l => l.StartsWith("cmdstat_", StringComparison.Ordinal) && !l.StartsWith("cmdstat_info", StringComparison.Ordinal) && !l.StartsWith("cmdstat_config", StringComparison.Ordinal))
        .Select(l =>
        {
            var name = l["cmdstat_".Length..l.IndexOf(':', StringComparison.Ordinal)];
            var calls = long.Parse(l.Split("calls=")[1].Split(',')[0], CultureInfo.InvariantCulture);
            var perCall = double.Parse(l.Split("usec_per_call=")[1].Split(',')[0], CultureInfo.InvariantCulture);
            return Invariant($"{name} {(double)calls / events:0.000} ({perCall:0.00} µs)");
        }));

    private static string Quote(string arg) => arg.Any(c => c is ' ' or '{' or '}' or '$' or '\'' or '"') || arg.Length == 0 ? "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'" : arg;

    private sealed record PhaseResult(long Events, TimeSpan Elapsed, TimeSpan ClientCpu);

    private sealed record ServerSample(double CpuSeconds, long ScriptCalls);

    private sealed record Settings(int Seconds, int Requests, int InFlight, int Pipeline, int Writers, int Batch, int Customers, int Repeat, int WarmupSeconds, bool Limit, RedisBatchMode BatchMode, string[] Phases, bool Coalesce, int SpreadCustomers = 1_000, int CustomerGroups = RedisUsageCounterOptions.DefaultCustomerGroups)
    {
        public static Settings Parse(string[] args)
        {
            var s = new Settings(4, 500_000, 64, 64, 16, 100, 8, 3, 2, false, RedisBatchMode.Auto, ["rb", "single", "batch"], true);
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                int Int() => int.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"{args[i - 1]} needs a positive whole number.");
                s = args[i] switch
                {
                    "--seconds" => s with { Seconds = Int() },
                    "--requests" => s with { Requests = Int() },
                    "--inflight" => s with { InFlight = Int() },
                    "--pipeline" => s with { Pipeline = Int() },
                    "--writers" => s with { Writers = Int() },
                    "--batch" => s with { Batch = Int() },
                    "--customers" => s with { Customers = Int() },
                    "--repeat" => s with { Repeat = Int() },
                    "--warmup" => s with { WarmupSeconds = Int() },
                    "--limit" => s with { Limit = true },
                    "--no-coalesce" => s with { Coalesce = false },
                    "--spread-customers" => s with { SpreadCustomers = Int() },
                    "--customer-groups" => s with { CustomerGroups = Int() },
                    "--phases" => s with { Phases = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                    "--batch-mode" => s with
                    {
                        BatchMode = Next() switch
                        {
                            "auto" => RedisBatchMode.Auto,
                            "per-slot" => RedisBatchMode.PerSlot,
                            var other => throw new ArgumentException($"--batch-mode {other}: use auto or per-slot."),
                        },
                    },
                    _ => throw new ArgumentException($"Unknown option {args[i]}."),
                };
            }

            return s.InFlight % s.Pipeline == 0 ? s : throw new ArgumentException("--inflight must be a multiple of --pipeline.");
        }

        public override string ToString() => Invariant($"{Seconds} s per .NET phase, redis-benchmark -n {Requests}, {InFlight} in flight (-c {InFlight / Pipeline} -P {Pipeline}), {Writers} writers x batches of {Batch} over {Customers} customers, {Repeat} rounds, warm-up {WarmupSeconds} s, hard limit {(Limit ? "on" : "off")}, batch mode {BatchMode}, phases {string.Join(',', Phases)}{(Phases.Contains("spread") ? Invariant($" (spread: {SpreadCustomers} customers)") : "")}, RecordAsync calls {(Coalesce ? "coalesced" : "one script call each")}, {CustomerGroups} customer groups");
    }
}
