using static Billing.Benchmarks.ConsoleBenchmark;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Billing.Testing.Servers;

namespace Billing.Benchmarks;

/// <summary>
/// The sample host under HTTP load on loopback: <c>dotnet Billing.Benchmarks.dll host-load --host-dll PATH [options]</c>
/// (see <c>benchmarks/host-load.sh</c>).
/// </summary>
/// <remarks>
/// <para>Starts what the chosen configuration needs (a throwaway PostgreSQL server from <see cref="LocalPostgresServer"/>,
/// a private redis-server from <see cref="LocalRedisServer"/>; SQLite lives in a temporary directory), then the built
/// host (<c>dotnet Billing.SampleHost.dll</c>, Production environment, real Kestrel on 127.0.0.1 at a free port) with a
/// bootstrap admin key and <c>Billing:Benchmarks:BareEndpoints=true</c>. Through the API it creates a metered plan
/// (flat 20.00 USD a month plus 0.02 USD per <c>api_calls</c>), <c>--customers</c> customers and one subscription each.</para>
/// <para>Phases (<c>--phases</c>): <c>usage</c> — <c>--writers</c> closed loops each POST <c>/v1/usage/batch</c> with
/// <c>--batch</c> events (a random customer each, a unique idempotency key, a timestamp; about <c>--duplicates</c> of the
/// events repeat an event of the writer's previous batch, so they must come back <c>duplicate</c>); the rate is events
/// per second over the phase, the latency per request; every answer's results are counted (accepted, duplicate,
/// rejected) and the phase fails on a rejection or an answer other than 200. Each phase also prints the host's CPU per
/// event: the host process's user plus system CPU time over the phase divided by the events it answered (the figure to
/// compare changes by on a shared machine, where the rate moves with the other load), and the host's disk writes over
/// the phase (<c>write_bytes</c> of <c>/proc/PID/io</c>, so the SQLite log and checkpoints, not a PostgreSQL or Redis
/// server's) in MiB/s and bytes per accepted event. <c>bare</c> — the same loops and bodies
/// against <c>POST /benchmarks/bare/usage/batch</c>, which only parses the JSON. <c>get</c> — an open loop: <c>GET
/// /v1/subscriptions/{id}</c> of a random subscription at a constant <c>--rate</c> per second for <c>--get-seconds</c>;
/// each latency is measured from the request's intended send time (so a stall counts for every request it delays: no
/// coordinated omission).</para>
/// <para>Options: <c>--provider sqlite|postgresql</c>, <c>--redis</c>, <c>--pg-fast</c> (PostgreSQL with fsync and
/// synchronous commit off; durable by default), <c>--seconds 10</c>, <c>--warmup 40</c> (seconds of the same load first, untimed: the host reaches tier-1 code; with 15 s the tiered JIT was still compiling, up to a third of the host's CPU, during the measurement), <c>--batch 100</c>,
/// <c>--customers 1000</c>, <c>--writers 8</c>, <c>--duplicates 5</c> (percent), <c>--rate 1000</c>, <c>--get-seconds 10</c>,
/// <c>--phases usage,bare,get</c>, <c>--repeat 1</c>, <c>--env NAME=VALUE</c> (more environment for the host; repeatable), <c>--pg-setting NAME=VALUE</c> (a PostgreSQL server setting, <c>-c</c>; repeatable).</para>
/// </remarks>
internal static class HostLoadRun
{
    private const string Meter = "api_calls";
    private const string ApiKey = "sk_hostload_0123456789abcdefghijklmnopqrstuvwxyz";

    public static int Run(string[] args) =>
        ConsoleBenchmark.Run("host-load", args, Settings.Parse, "--host-dll PATH [--provider sqlite|postgresql] [--redis] [--pg-fast] [--seconds 10] [--warmup 40] [--batch 100] [--customers 1000] [--writers 8] [--duplicates 5] [--rate 1000] [--get-seconds 10] [--phases usage,bare,get] [--repeat 1] [--env NAME=VALUE]... [--pg-setting NAME=VALUE]...", RunAsync);

    private static async Task<int> RunAsync(Settings settings)
    {
        var work = new DirectoryInfo(TempDirectories.Create("billing-host-load-")); // also deletes those of killed runs
        LocalPostgresServer? postgres = null;
        LocalRedisServer? redis = null;
        Process? host = null;
        try
        {
            var environment = new Dictionary<string, string>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["Billing__BootstrapApiKey"] = ApiKey,
                ["Billing__Benchmarks__BareEndpoints"] = "true",
                ["Billing__RateLimit__Enabled"] = "false", // one API key sends every request: measure the host, not its limiter
            };
            if (settings.Provider == "postgresql")
            {
                var options = new LocalPostgresOptions { Durable = !settings.PgFast };
                foreach (var pair in settings.PgSettings)
                {
                    var at = pair.IndexOf('=', StringComparison.Ordinal);
                    options.Settings[pair[..at]] = pair[(at + 1)..];
                }

                postgres = await LocalPostgresServer.StartAsync(options).ConfigureAwait(false);
                environment["Billing__Database__Provider"] = "postgresql";
                environment["Billing__Database__ConnectionString"] = await postgres.CreateDatabaseAsync("hostload").ConfigureAwait(false);
                Console.WriteLine(Invariant($"PostgreSQL on 127.0.0.1:{postgres.Port} ({(settings.PgFast ? "fsync off, synchronous_commit off" : "durable: fsync on, synchronous_commit on")})"));
            }
            else
            {
                environment["Billing__Database__Provider"] = "sqlite";
                environment["Billing__Database__ConnectionString"] = "Data Source=" + Path.Combine(work.FullName, "billing.db");
                Console.WriteLine(Invariant($"SQLite file {Path.Combine(work.FullName, "billing.db")}"));
            }

            if (settings.Redis)
            {
                redis = await LocalRedisServer.StartAsync().ConfigureAwait(false);
                environment["Billing__Redis__Configuration"] = redis.ConfigurationString;
                Console.WriteLine(Invariant($"redis-server on {redis.EndPoint} (usage counters)"));
            }
            else
            {
                Console.WriteLine("usage counters in memory");
            }

            foreach (var pair in settings.HostEnvironment)
            {
                var at = pair.IndexOf('=', StringComparison.Ordinal);
                environment[pair[..at]] = pair[(at + 1)..];
            }

            var port = FreePort();
            environment["ASPNETCORE_URLS"] = Invariant($"http://127.0.0.1:{port}");
            var log = Path.Combine(work.FullName, "host.log");
            // The host runs in its output folder, as `dotnet run` runs it in the project's: its content root, with its
            // appsettings.json (log levels); the SQLite file is in the temporary directory.
            host = StartHost(settings.HostDll, Path.GetDirectoryName(settings.HostDll)!, environment, log);
            var baseAddress = new Uri(Invariant($"http://127.0.0.1:{port}"));
            using var client = NewClient(baseAddress, settings.Writers * 2);
            await WaitReadyAsync(client, host, log).ConfigureAwait(false);
            Console.WriteLine(Invariant($"host pid {host.Id} on {baseAddress} (log {log})"));

            var watch = Stopwatch.StartNew();
            var (customers, subscriptions) = await SeedAsync(client, settings.Customers).ConfigureAwait(false);
            Console.WriteLine(Invariant($"seeded 1 metered plan, {customers.Length} customers, {subscriptions.Length} subscriptions in {watch.Elapsed.TotalSeconds:0.0} s"));

            var rows = new List<string>();
            for (var round = 1; round <= settings.Repeat; round++)
            {
                double usageRate = double.NaN, bareRate = double.NaN;
                if (settings.Phases.Contains("usage"))
                {
                    await UsageAsync(client, "/v1/usage/batch", customers, settings, settings.Warmup, Invariant($"w{round}u"), bare: false, host, postgres, redis).ConfigureAwait(false);
                    var r = await UsageAsync(client, "/v1/usage/batch", customers, settings, settings.Seconds, Invariant($"r{round}u"), bare: false, host, postgres, redis).ConfigureAwait(false);
                    usageRate = r.EventsPerSecond;
                    rows.Add(Row(round, "POST /v1/usage/batch", r));
                    Console.WriteLine(Invariant($"round {round} usage: {r.EventsPerSecond:N0} events/s, {r.Requests / r.Elapsed.TotalSeconds:N0} requests/s, p50 {r.P50:0.00} ms, p99 {r.P99:0.00} ms; accepted {r.Accepted:N0}, duplicate {r.Duplicates:N0} (sent {r.DuplicatesSent:N0}), rejected {r.Rejected}; CPU host {r.HostCpuPercent:0}% ({r.HostCpuMicrosecondsPerEvent:0.0} µs/event), {r.Writes}, client {r.ClientCpuPercent:0}%, machine {r.MachineCpuPercent:0}%; load {LoadAverage()}"));
                    Console.WriteLine(Invariant($"round {round} usage CPU per event: {r.Split}"));
                }

                if (settings.Phases.Contains("bare"))
                {
                    await UsageAsync(client, "/benchmarks/bare/usage/batch", customers, settings, settings.Warmup, Invariant($"w{round}b"), bare: true, host, postgres, redis).ConfigureAwait(false);
                    var r = await UsageAsync(client, "/benchmarks/bare/usage/batch", customers, settings, settings.Seconds, Invariant($"r{round}b"), bare: true, host, postgres, redis).ConfigureAwait(false);
                    bareRate = r.EventsPerSecond;
                    rows.Add(Row(round, "POST /benchmarks/bare/usage/batch (parse only)", r));
                    Console.WriteLine(Invariant($"round {round} bare: {r.EventsPerSecond:N0} events/s, p50 {r.P50:0.00} ms, p99 {r.P99:0.00} ms; CPU host {r.HostCpuPercent:0}% ({r.HostCpuMicrosecondsPerEvent:0.0} µs/event), client {r.ClientCpuPercent:0}%, machine {r.MachineCpuPercent:0}%; load {LoadAverage()}"));
                }

                if (!double.IsNaN(usageRate) && !double.IsNaN(bareRate))
                {
                    Console.WriteLine(Invariant($"round {round}: usage / bare = {usageRate / bareRate:0.00}"));
                }

                if (settings.Phases.Contains("get"))
                {
                    await GetAsync(client, subscriptions, settings.Rate, settings.Warmup).ConfigureAwait(false);
                    var g = await GetAsync(client, subscriptions, settings.Rate, settings.GetSeconds).ConfigureAwait(false);
                    rows.Add(Invariant($"| {round} | GET /v1/subscriptions/{{id}} open loop {settings.Rate}/s | {g.Sent:N0} sent, {g.AchievedRate:N0}/s | {g.P50:0.00} | {g.P90:0.00} | {g.P99:0.00} | {g.P999:0.00} / max {g.Max:0.00} | {g.Errors} errors |"));
                    Console.WriteLine(Invariant($"round {round} get: {g.Sent:N0} requests at {settings.Rate}/s intended ({g.AchievedRate:N0}/s sent), p50 {g.P50:0.00} ms, p90 {g.P90:0.00} ms, p99 {g.P99:0.00} ms, p99.9 {g.P999:0.00} ms, max {g.Max:0.00} ms, errors {g.Errors}; load {LoadAverage()}"));
                }
            }

            Console.WriteLine();
            Console.WriteLine(Invariant($"## host-load ({settings.Provider}{(settings.Provider == "postgresql" ? settings.PgFast ? " fast" : " durable" : string.Empty)} + {(settings.Redis ? "Redis" : "in-memory")} counters; {settings.Writers} writers x {settings.Batch} events over {settings.Customers} customers, {settings.Duplicates}% duplicates; shared 2-core machine)"));
            Console.WriteLine("| round | endpoint | rate | p50 ms | p90 ms | p99 ms | p99.9 ms | notes |");
            Console.WriteLine("|---:|---|---:|---:|---:|---:|---:|---|");
            foreach (var row in rows)
            {
                Console.WriteLine(row);
            }

            return 0;
        }
        finally
        {
            if (host is not null)
            {
                if (!host.HasExited)
                {
                    host.Kill(entireProcessTree: true);
                    await host.WaitForExitAsync().ConfigureAwait(false);
                }

                host.Dispose();
            }

            if (redis is not null)
            {
                await redis.DisposeAsync().ConfigureAwait(false);
            }

            if (postgres is not null)
            {
                await postgres.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string Row(int round, string endpoint, UsageResult r) =>
        Invariant($"| {round} | {endpoint} | {r.EventsPerSecond:N0} events/s ({r.Requests / r.Elapsed.TotalSeconds:N0} req/s) | {r.P50:0.00} | {r.P90:0.00} | {r.P99:0.00} | {r.P999:0.00} | CPU host {r.HostCpuPercent:0}% ({r.HostCpuMicrosecondsPerEvent:0.0} µs/event) client {r.ClientCpuPercent:0}% machine {r.MachineCpuPercent:0}%; {r.Writes}{(r.Accepted + r.Duplicates > 0 ? Invariant($"; {r.Accepted:N0} accepted, {r.Duplicates:N0} duplicate ({r.DuplicatesSent:N0} sent)") : string.Empty)} |");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static Process StartHost(string dll, string workingDirectory, Dictionary<string, string> environment, string log)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(dll);
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("the host did not start");
        var writer = new StreamWriter(log) { AutoFlush = true };
        var gate = new object();
        process.OutputDataReceived += (_, e) => { lock (gate) { writer.WriteLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (gate) { writer.WriteLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static HttpClient NewClient(Uri baseAddress, int connections)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        var client = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        return client;
    }

    private static async Task WaitReadyAsync(HttpClient client, Process host, string log)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (host.HasExited)
            {
                throw new InvalidOperationException($"the host exited with {host.ExitCode}; log {log}:\n{await File.ReadAllTextAsync(log).ConfigureAwait(false)}");
            }

            try
            {
                using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative)).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        throw new TimeoutException($"the host was not ready within 60 s; log {log}");
    }

    private static async Task<string> PostForIdAsync(HttpClient client, string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri(path, UriKind.Relative), content).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST {path} {json}: {(int)response.StatusCode} {body}");
        }

        using var document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("data").GetProperty("id").GetString()!;
    }

    private static async Task<(string[] Customers, string[] Subscriptions)> SeedAsync(HttpClient client, int count)
    {
        var plan = await PostForIdAsync(client, "/v1/plans", $$$"""{"name":"Load metered","currency":"USD","price":{"model":"flat","amount":2000},"interval":{"unit":"month"},"meteredPrices":[{"meter":{"key":"{{{Meter}}}"},"price":{"model":"per_unit","unitAmount":2}}]}""").ConfigureAwait(false);
        var customers = new string[count];
        var subscriptions = new string[count];
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            customers[i] = await PostForIdAsync(client, "/v1/customers", Invariant($$"""{"name":"Load customer {{i}}","email":"load{{i}}@example.com","currency":"USD","paymentMethod":"pm_card_visa"}""")).ConfigureAwait(false);
            subscriptions[i] = await PostForIdAsync(client, "/v1/subscriptions", $$"""{"customerId":"{{customers[i]}}","planId":"{{plan}}"}""").ConfigureAwait(false);
        }).ConfigureAwait(false);
        return (customers, subscriptions);
    }

    private static async Task<UsageResult> UsageAsync(HttpClient client, string path, string[] customers, Settings settings, int seconds, string tag, bool bare, Process host, LocalPostgresServer? postgres, LocalRedisServer? redis)
    {
        var postgresCpu = postgres is null ? null : PostgresCpu(postgres.Port);
        var redisCpu = await RedisCpuAsync(redis).ConfigureAwait(false);
        var hostCpu = HostCpu();
        var hostWrites = WriteBytes(host.Id);
        var machine = MachineBusy();
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        var stopAt = seconds * Stopwatch.Frequency;
        var uri = new Uri(path, UriKind.Relative);
        var loops = Enumerable.Range(0, settings.Writers).Select(w => Task.Run(async () =>
        {
            var rng = new XorShift(unchecked((ulong)w + 1 + ((ulong)tag.GetHashCode(StringComparison.Ordinal) << 20)));
            var latencies = new List<double>(seconds * 1000);
            var previous = new (int Customer, long Key, string Timestamp)[settings.Batch];
            var current = new (int Customer, long Key, string Timestamp)[settings.Batch];
            var buffer = new ArrayBufferWriter(settings.Batch * 140);
            long next = 0, accepted = 0, duplicates = 0, duplicatesSent = 0, rejected = 0, requests = 0, events = 0;
            var first = true;
            while (watch.ElapsedTicks < stopAt)
            {
                var timestamp = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
                for (var i = 0; i < current.Length; i++)
                {
                    if (!first && rng.Next(100) < settings.Duplicates)
                    {
                        current[i] = previous[rng.Next(previous.Length)];
                        duplicatesSent++;
                    }
                    else
                    {
                        current[i] = (rng.Next(customers.Length), next++, timestamp);
                    }
                }

                buffer.Clear();
                WriteBatch(buffer, current, customers, tag, w);
                using var content = new ByteArrayContent(buffer.Buffer, 0, buffer.Length);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                var sent = Stopwatch.GetTimestamp();
                using var response = await client.PostAsync(uri, content).ConfigureAwait(false);
                var body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {Encoding.UTF8.GetString(body)}");
                }

                requests++;
                events += current.Length;
                if (!bare)
                {
                    var a = Count(body, "\"status\":\"accepted\""u8);
                    var d = Count(body, "\"status\":\"duplicate\""u8);
                    var x = Count(body, "\"status\":\"rejected\""u8);
                    if (a + d + x != current.Length || x != 0)
                    {
                        throw new InvalidOperationException($"POST {path}: {a} accepted, {d} duplicate, {x} rejected of {current.Length}: {Encoding.UTF8.GetString(body)[..Math.Min(body.Length, 2000)]}");
                    }

                    (accepted, duplicates, rejected) = (accepted + a, duplicates + d, rejected + x);
                }

                (previous, current) = (current, previous);
                first = false;
            }

            return (latencies, accepted, duplicates, duplicatesSent, rejected, requests, events);
        })).ToArray();
        var done = await Task.WhenAll(loops).ConfigureAwait(false);
        var elapsed = watch.Elapsed;
        var all = done.SelectMany(d => d.latencies).Order().ToArray();
        var hostCpuSeconds = (HostCpu() - hostCpu).TotalSeconds;
        var hostCpuPercent = hostCpuSeconds / elapsed.TotalSeconds * 100;
        var totalEvents = done.Sum(d => d.events);
        var clientSeconds = (Process.GetCurrentProcess().TotalProcessorTime - clientCpu).TotalSeconds;
        var machineSeconds = (MachineBusy() - machine).TotalSeconds;
        var clientCpuPercent = clientSeconds / elapsed.TotalSeconds * 100;
        var machinePercent = machineSeconds / elapsed.TotalSeconds / Environment.ProcessorCount * 100;
        var written = WriteBytes(host.Id) - hostWrites;
        var postgresSeconds = postgres is not null && PostgresCpu(postgres.Port) is { } pgAfter && postgresCpu is { } pgBefore ? (pgAfter - pgBefore).TotalSeconds : (double?)null;
        var redisSeconds = await RedisCpuAsync(redis).ConfigureAwait(false) - redisCpu;
        var split = CpuSplit(totalEvents, elapsed, hostCpuSeconds, postgresSeconds, redis is null ? null : redisSeconds, clientSeconds, machineSeconds);
        return new UsageResult(
            totalEvents / elapsed.TotalSeconds,
            done.Sum(d => d.requests),
            elapsed,
            Percentile(all, 0.50),
            Percentile(all, 0.90),
            Percentile(all, 0.99),
            Percentile(all, 0.999),
            done.Sum(d => d.accepted),
            done.Sum(d => d.duplicates),
            done.Sum(d => d.duplicatesSent),
            done.Sum(d => d.rejected),
            hostCpuPercent,
            clientCpuPercent,
            machinePercent,
            totalEvents == 0 ? double.NaN : hostCpuSeconds * 1e6 / totalEvents,
            written,
            split);

        TimeSpan HostCpu()
        {
            host.Refresh();
            return host.TotalProcessorTime;
        }
    }

    /// <summary>The redis-server's user plus system CPU seconds so far; 0 without a server.</summary>
    private static async Task<double> RedisCpuAsync(LocalRedisServer? redis) =>
        redis is null ? 0 : await RedisCpuSecondsAsync(redis).ConfigureAwait(false);

    /// <summary>The machine's busy CPU per event, split by process: host, PostgreSQL (postmaster and children), redis-server,
    /// this load client, and the rest (kernel threads, other processes; the machine's busy time minus the others).</summary>
    private static string CpuSplit(long events, TimeSpan elapsed, double host, double? postgres, double? redis, double client, double machine)
    {
        if (events == 0)
        {
            return "no events";
        }

        string Us(double seconds) => Invariant($"{seconds * 1e6 / events:0.0}");
        var other = machine - host - (postgres ?? 0) - (redis ?? 0) - client;
        return Invariant($"host {Us(host)} µs{(postgres is { } p ? ", postgres " + Us(p) + " µs" : string.Empty)}{(redis is { } r ? ", redis-server " + Us(r) + " µs" : string.Empty)}, client {Us(client)} µs, other {Us(other)} µs; machine {Us(machine)} µs ({machine / elapsed.TotalSeconds * 100 / Environment.ProcessorCount:0}% of {Environment.ProcessorCount} cores)");
    }

    /// <summary>
    /// The bytes a process caused to be sent to storage so far (<c>write_bytes</c> of <c>/proc/PID/io</c>: its writes
    /// to the page cache, counted when dirtied, including the SQLite write-ahead log and checkpoints); -1 when the
    /// file cannot be read (not Linux, or another user's process).
    /// </summary>
    private static long WriteBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines(Invariant($"/proc/{pid}/io")))
            {
                if (line.StartsWith("write_bytes:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan("write_bytes:".Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return -1;
    }

    private static void WriteBatch(ArrayBufferWriter buffer, (int Customer, long Key, string Timestamp)[] events, string[] customers, string tag, int writer)
    {
        buffer.Append("{\"events\":["u8);
        for (var i = 0; i < events.Length; i++)
        {
            var (customer, key, timestamp) = events[i];
            buffer.Append(i == 0 ? "{\"customerId\":\""u8 : ",{\"customerId\":\""u8);
            buffer.Append(customers[customer]);
            buffer.Append("\",\"meter\":\"api_calls\",\"quantity\":"u8);
            buffer.Append(Invariant($"{1 + (key % 5)}"));
            buffer.Append(",\"timestamp\":\""u8);
            buffer.Append(timestamp);
            buffer.Append("\",\"idempotencyKey\":\""u8);
            buffer.Append(Invariant($"evt_{tag}_{writer}_{key}"));
            buffer.Append("\"}"u8);
        }

        buffer.Append("]}"u8);
    }

    private static int Count(byte[] body, ReadOnlySpan<byte> needle)
    {
        var span = body.AsSpan();
        var count = 0;
        int at;
        while ((at = span.IndexOf(needle)) >= 0)
        {
            count++;
            span = span[(at + needle.Length)..];
        }

        return count;
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    /// <summary>An open loop at a constant arrival rate: request i is due at start + i / rate and its latency runs from
    /// then, whenever it was actually sent.</summary>
    private static async Task<GetResult> GetAsync(HttpClient client, string[] subscriptions, int rate, int seconds)
    {
        var total = (long)rate * seconds;
        var latencies = new double[total];
        var errors = 0;
        var rng = new XorShift(42);
        var pending = new List<Task>((int)total);
        var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
        var dispatcher = new Thread(() =>
        {
            for (long i = 0; i < total; i++)
            {
                var intended = start + (i * Stopwatch.Frequency / rate);
                // Sleep, never spin: a yielding loop (Sleep(0)) kept this thread runnable all the time and took a share
                // of the 2 cores from the host and PostgreSQL it measures. A request sent late by the sleep's
                // granularity (about 1 ms) counts that lateness in its latency, which runs from the intended time.
                while (Stopwatch.GetTimestamp() < intended)
                {
                    Thread.Sleep(1);
                }

                var index = i;
                var id = subscriptions[rng.Next(subscriptions.Length)];
                pending.Add(Task.Run(async () =>
                {
                    try
                    {
                        using var response = await client.GetAsync(new Uri("/v1/subscriptions/" + id, UriKind.Relative)).ConfigureAwait(false);
                        _ = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                        if (response.StatusCode != HttpStatusCode.OK)
                        {
                            Interlocked.Increment(ref errors);
                        }
                    }
                    catch (HttpRequestException)
                    {
                        Interlocked.Increment(ref errors);
                    }

                    latencies[index] = Stopwatch.GetElapsedTime(intended).TotalMilliseconds;
                }));
            }
        })
        { IsBackground = true, Priority = ThreadPriority.Highest };
        dispatcher.Start();
        await Task.Run(dispatcher.Join).ConfigureAwait(false);
        var sentIn = Stopwatch.GetElapsedTime(start);
        await Task.WhenAll(pending).ConfigureAwait(false);
        Array.Sort(latencies);
        return new GetResult(total, total / sentIn.TotalSeconds, Percentile(latencies, 0.5), Percentile(latencies, 0.9), Percentile(latencies, 0.99), Percentile(latencies, 0.999), latencies[^1], errors);
    }

    private sealed record UsageResult(double EventsPerSecond, long Requests, TimeSpan Elapsed, double P50, double P90, double P99, double P999, long Accepted, long Duplicates, long DuplicatesSent, long Rejected, double HostCpuPercent, double ClientCpuPercent, double MachineCpuPercent, double HostCpuMicrosecondsPerEvent, long HostWriteBytes, string Split)
    {
        /// <summary>Bytes the host caused to be written to storage per accepted event (write_bytes of /proc/PID/io); NaN when unknown.</summary>
        public double WriteBytesPerAccepted => HostWriteBytes < 0 || Accepted == 0 ? double.NaN : (double)HostWriteBytes / Accepted;

        public string Writes => HostWriteBytes < 0 ? "disk writes unknown" : Invariant($"host wrote {HostWriteBytes / 1048576.0 / Elapsed.TotalSeconds:0.0} MiB/s{(Accepted > 0 ? Invariant($", {WriteBytesPerAccepted:N0} B per accepted event") : string.Empty)}");
    }

    private sealed record GetResult(long Sent, double AchievedRate, double P50, double P90, double P99, double P999, double Max, int Errors);

    /// <summary>A growable byte buffer for request bodies.</summary>
    private sealed class ArrayBufferWriter(int capacity)
    {
        public byte[] Buffer { get; private set; } = new byte[capacity];

        public int Length { get; private set; }

        public void Clear() => Length = 0;

        public void Append(ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(Buffer.AsSpan(Length));
            Length += bytes.Length;
        }

        public void Append(string text)
        {
            Ensure(Encoding.UTF8.GetMaxByteCount(text.Length));
            Length += Encoding.UTF8.GetBytes(text, Buffer.AsSpan(Length));
        }

        private void Ensure(int more)
        {
            if (Length + more > Buffer.Length)
            {
                var bigger = new byte[Math.Max(Buffer.Length * 2, Length + more)];
                Buffer.AsSpan(0, Length).CopyTo(bigger);
                Buffer = bigger;
            }
        }
    }

    /// <summary>A small deterministic generator (System.Random is banned in this repository).</summary>
    private sealed class XorShift(ulong seed)
    {
        private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15 : seed;

        public int Next(int maxExclusive)
        {
            unchecked
            {
                var z = _state += 0x9E3779B97F4A7C15;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
                z ^= z >> 31;
                return (int)(z % (ulong)maxExclusive);
            }
        }
    }

    private sealed record Settings(string HostDll, string Provider, bool Redis, bool PgFast, int Seconds, int Warmup, int Batch, int Customers, int Writers, int Duplicates, int Rate, int GetSeconds, string[] Phases, int Repeat, string[] HostEnvironment, string[] PgSettings)
    {
        public static Settings Parse(string[] args)
        {
            var s = new Settings(string.Empty, "sqlite", false, false, 10, 40, 100, 1000, 8, 5, 1000, 10, ["usage", "bare", "get"], 1, [], []);
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                int Int(int min) => int.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min ? v : throw new ArgumentException($"{args[i - 1]} needs a whole number ≥ {min}.");
                s = args[i] switch
                {
                    "--host-dll" => s with { HostDll = Path.GetFullPath(Next()) },
                    "--provider" => s with { Provider = Next() is "sqlite" or "postgresql" ? args[i] : throw new ArgumentException("--provider is sqlite or postgresql.") },
                    "--redis" => s with { Redis = true },
                    "--pg-fast" => s with { PgFast = true },
                    "--seconds" => s with { Seconds = Int(1) },
                    "--warmup" => s with { Warmup = Int(1) },
                    "--batch" => s with { Batch = Int(1) },
                    "--customers" => s with { Customers = Int(1) },
                    "--writers" => s with { Writers = Int(1) },
                    "--duplicates" => s with { Duplicates = Int(0) is var d && d <= 50 ? d : throw new ArgumentException("--duplicates is a percentage from 0 to 50.") },
                    "--rate" => s with { Rate = Int(1) },
                    "--get-seconds" => s with { GetSeconds = Int(1) },
                    "--phases" => s with { Phases = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                    "--repeat" => s with { Repeat = Int(1) },
                    "--env" => s with { HostEnvironment = [.. s.HostEnvironment, Next() is var e && e.IndexOf('=', StringComparison.Ordinal) > 0 ? e : throw new ArgumentException("--env is NAME=VALUE.")] },
                    "--pg-setting" => s with { PgSettings = [.. s.PgSettings, Next() is var g && g.IndexOf('=', StringComparison.Ordinal) > 0 ? g : throw new ArgumentException("--pg-setting is NAME=VALUE.")] },
                    _ => throw new ArgumentException($"Unknown option {args[i]}."),
                };
            }

            return File.Exists(s.HostDll) ? s : throw new ArgumentException($"--host-dll must name the built Billing.SampleHost.dll ('{s.HostDll}' does not exist).");
        }

        public override string ToString() => Invariant($"host {HostDll}, {Provider}{(Provider == "postgresql" ? PgFast ? " (fast)" : " (durable)" : string.Empty)}, counters {(Redis ? "redis" : "memory")}, {Seconds} s per phase after {Warmup} s warm-up, {Writers} writers x batches of {Batch} over {Customers} customers, {Duplicates}% duplicates, GET at {Rate}/s for {GetSeconds} s, phases {string.Join(',', Phases)}, {Repeat} round(s){(HostEnvironment.Length > 0 ? ", host environment " + string.Join(' ', HostEnvironment) : string.Empty)}{(PgSettings.Length > 0 ? ", PostgreSQL " + string.Join(' ', PgSettings) : string.Empty)}");
    }
}
