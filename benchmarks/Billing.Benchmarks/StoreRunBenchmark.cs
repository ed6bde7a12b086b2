using static Billing.Benchmarks.ConsoleBenchmark;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Text;
using Billing.Catalog;
using Billing.Customers;
using Billing.Engine;
using Billing.EntityFrameworkCore.Storage;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using Billing.Testing.Servers;
using Billing.Testing.Time;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Billing.Benchmarks;

/// <summary>
/// The billing run on the EF Core store against a real database: <c>dotnet run -c Release -- store-run [options]</c>.
/// Each configuration gets a fresh schema (PostgreSQL) or file (SQLite), is migrated and seeded with N active monthly
/// subscriptions due at the same instant, and then K runners (each its own <see cref="BillingEngine"/> over its own
/// <see cref="EntityFrameworkBillingStore"/>) call <see cref="BillingEngine.AdvanceAsync"/> for that instant at once.
/// Only the run is timed: it creates N draft renewal invoices (their finalization is an hour later).
/// </summary>
/// <remarks>
/// Options: <c>--provider postgresql|sqlite|both</c> (both), <c>--subscriptions 10000</c>, <c>--runners 1,2,4</c>
/// (PostgreSQL), <c>--sqlite-runners 1</c>, <c>--repeat 3</c>, <c>--durable true|false</c> (true: fsync and
/// synchronous_commit on), <c>--parallelism 8</c> (<see cref="BillingOptions.RunParallelism"/>, a list runs each),
/// <c>--sqlite-parallelism 1</c> (for SQLite; default <c>--parallelism</c> when given, else 1: SQLite has one writer at a
/// time, and concurrent renewals wait on its lock),
/// <c>--batch-size 500</c> (<see cref="BillingOptions.RunBatchSize"/>), <c>--scaling</c> (also 2,500 / 5,000 / 10,000 /
/// 20,000 subscriptions with one runner on PostgreSQL), <c>--profile</c> (count and time the Npgsql commands of each run),
/// <c>--npgsql "Key=Value;..."</c> (extra Npgsql connection-string settings, e.g. <c>Max Auto Prepare=64</c>),
/// <c>--warmup 5000</c> (subscriptions per untimed warm-up round; rounds repeat until the JIT has settled),
/// <c>--unique-schemas</c> (a differently named schema per run: each run builds a new EF Core model, as a cold process does).
/// </remarks>
internal static class StoreRunBenchmark
{
    private const int SeedChunk = 500; // customers + subscriptions per seeding session: ~1,000 records
    private static readonly int[] ScalingSeries = [2_500, 5_000, 10_000, 20_000];
    private static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Due = new(2025, 2, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(50);
    private static int _counter;

    public static int Run(string[] args) =>
        ConsoleBenchmark.Run("store-run", args, Settings.Parse, "[--provider postgresql|sqlite|both] [--subscriptions 10000] [--runners 1,2,4] [--sqlite-runners 1] [--repeat 3] [--durable true|false] [--parallelism 8[,16...]] [--sqlite-parallelism 1] [--batch-size 500] [--scaling] [--profile] [--warmup 5000] [--unique-schemas] [--npgsql \"Key=Value;...\"]", RunAsync);

    private static async Task<int> RunAsync(Settings settings)
    {
        var results = new List<RunResult>();
        using var profiler = settings.Profile ? new CommandProfiler() : null;

        if (settings.Providers.Contains(Provider.PostgreSql))
        {
            await using var server = await LocalPostgresServer.StartAsync(new LocalPostgresOptions { Durable = settings.Durable }).ConfigureAwait(false);
            var database = await server.CreateDatabaseAsync("store_run").ConfigureAwait(false);
            var builder = new NpgsqlConnectionStringBuilder(database) { MaxPoolSize = 200 };
            if (settings.Npgsql is { Length: > 0 } extra)
            {
                foreach (var pair in extra.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    var equals = pair.IndexOf('=', StringComparison.Ordinal);
                    builder[pair[..equals].Trim()] = pair[(equals + 1)..].Trim();
                }
            }

            var connectionString = builder.ConnectionString;
            Console.WriteLine(Invariant($"Npgsql connection string: {connectionString}"));
            Console.WriteLine(Invariant($"PostgreSQL {await ScalarAsync(Provider.PostgreSql, connectionString, "SHOW server_version").ConfigureAwait(false)} at {server.Host}:{server.Port}, fsync {await ScalarAsync(Provider.PostgreSql, connectionString, "SHOW fsync").ConfigureAwait(false)}, synchronous_commit {await ScalarAsync(Provider.PostgreSql, connectionString, "SHOW synchronous_commit").ConfigureAwait(false)}"));
            var target = new Target(Provider.PostgreSql, connectionString, null, server.Port);
            await WarmUpAsync(target, settings).ConfigureAwait(false);
            foreach (var parallelism in settings.ParallelismFor(Provider.PostgreSql))
            {
                foreach (var runners in settings.Runners)
                {
                    for (var repeat = 1; repeat <= settings.Repeat; repeat++)
                    {
                        results.Add(await RunOnceAsync(target, settings, settings.Subscriptions, runners, parallelism, repeat, profiler, warmup: false).ConfigureAwait(false));
                    }
                }
            }

            if (settings.Scaling)
            {
                foreach (var n in ScalingSeries)
                {
                    results.Add(await RunOnceAsync(target, settings, n, 1, settings.ParallelismFor(Provider.PostgreSql)[0], 1, profiler, warmup: false, series: "scaling").ConfigureAwait(false));
                }
            }

            NpgsqlConnection.ClearAllPools();
        }

        if (settings.Providers.Contains(Provider.Sqlite))
        {
            var directory = new DirectoryInfo(TempDirectories.Create("billing-store-run-")); // also deletes those of killed runs
            try
            {
                var target = new Target(Provider.Sqlite, null, directory.FullName);
                var probe = Invariant($"Data Source={Path.Combine(directory.FullName, "probe.db")}");
                await ExecuteAsync(Provider.Sqlite, probe, "PRAGMA journal_mode=WAL;").ConfigureAwait(false);
                var version = await ScalarAsync(Provider.Sqlite, probe, "SELECT sqlite_version()").ConfigureAwait(false);
                var synchronous = await ScalarAsync(Provider.Sqlite, probe, "PRAGMA synchronous").ConfigureAwait(false); // 0 off, 1 normal, 2 full
                Console.WriteLine(Invariant($"SQLite {version} in {directory.FullName}, WAL, PRAGMA synchronous = {synchronous} (connection default; 2 = FULL)"));
                await WarmUpAsync(target, settings).ConfigureAwait(false);
                foreach (var parallelism in settings.ParallelismFor(Provider.Sqlite))
                {
                    foreach (var runners in settings.SqliteRunners)
                    {
                        for (var repeat = 1; repeat <= settings.Repeat; repeat++)
                        {
                            results.Add(await RunOnceAsync(target, settings, settings.Subscriptions, runners, parallelism, repeat, profiler, warmup: false).ConfigureAwait(false));
                        }
                    }
                }
            }
            finally
            {
                SqliteConnection.ClearAllPools();
                directory.Delete(recursive: true);
            }
        }

        Console.WriteLine();
        Console.WriteLine(Invariant($"## Runs (PostgreSQL durable: {settings.Durable}; SQLite: WAL, default synchronous; GC {(GCSettings.IsServerGC ? "server" : "workstation")}; batch {settings.BatchSize})"));
        Console.WriteLine();
        Console.Write(RunResult.Table(results));
        Console.WriteLine();
        Console.WriteLine("## Medians");
        Console.WriteLine();
        Console.Write(RunResult.Medians(results));
        if (profiler is not null)
        {
            Console.WriteLine();
            Console.WriteLine("## Npgsql commands per run (profile)");
            Console.WriteLine();
            Console.Write(RunResult.Profiles(results));
        }

        return results.TrueForAll(r => r.Ok) ? 0 : 1;
    }

    private static async Task<RunResult> RunOnceAsync(Target target, Settings settings, int subscriptions, int runners, int parallelism, int repeat, CommandProfiler? profiler, bool warmup, string series = "")
    {
        var run = Interlocked.Increment(ref _counter);
        // A fresh schema per run: created by the migrator, dropped after the run. By default it has the same name in every
        // run, so EF Core's model (cached per schema name) is the one the warm-up built, as in a long-running process;
        // --unique-schemas names each one apart, and each run then pays for a new model's lazily compiled accessors.
        var schema = settings.UniqueSchemas ? Invariant($"bench_{Environment.ProcessId}_{run}") : Invariant($"bench_{Environment.ProcessId}");
        var file = target.Directory is null ? null : Path.Combine(target.Directory, Invariant($"bench_{run}.db"));
        var connectionString = target.Provider == Provider.PostgreSql ? target.ConnectionString! : Invariant($"Data Source={file};Default Timeout=60;Pooling=True");
        EntityFrameworkBillingStore NewStore() => target.Provider == Provider.PostgreSql
            ? EntityFrameworkBillingStore.ForPostgreSql(connectionString, schema)
            : EntityFrameworkBillingStore.ForSqlite(connectionString);

        // Seeding gets its own connection pool (PostgreSQL) or its pool cleared (SQLite) before the baseline: idle pooled
        // connections keep memory from seeding's large batches (about 1 KiB per seeded subscription), which would
        // otherwise show up in the run's baseline.
        var seedConnectionString = target.Provider == Provider.PostgreSql
            ? new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = "store-run-seed" }.ConnectionString
            : connectionString;
        var setup = Stopwatch.StartNew();
        var seeder = target.Provider == Provider.PostgreSql
            ? EntityFrameworkBillingStore.ForPostgreSql(seedConnectionString, schema)
            : EntityFrameworkBillingStore.ForSqlite(seedConnectionString);
        await seeder.MigrateAsync().ConfigureAwait(false);
        await SeedAsync(seeder, subscriptions).ConfigureAwait(false);
        if (target.Provider == Provider.PostgreSql)
        {
            // Start every run from the same place: statistics current, seeding's WAL checkpointed.
            await ExecuteAsync(target.Provider, seedConnectionString, $"ANALYZE {schema}.customers; ANALYZE {schema}.plans; ANALYZE {schema}.subscriptions; ANALYZE {schema}.invoices; CHECKPOINT;").ConfigureAwait(false);
            using var seedConnection = new NpgsqlConnection(seedConnectionString);
            NpgsqlConnection.ClearPool(seedConnection);
        }
        else
        {
            await ExecuteAsync(target.Provider, seedConnectionString, "ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);").ConfigureAwait(false);
            SqliteConnection.ClearAllPools();
        }

        var setupTime = setup.Elapsed;
        var engines = Enumerable.Range(0, runners).Select(_ => new BillingEngine(
            NewStore(),
            new FakePaymentGateway(),
            new FakeTimeProvider(Due),
            Options.Create(new BillingOptions { RunParallelism = parallelism, RunBatchSize = settings.BatchSize }),
            new RandomIdGenerator(),
            new NoUsageCharges())).ToList();

        var load = LoadAverage();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        var baseline = GC.GetTotalMemory(false);
        var allocatedBefore = GC.GetTotalAllocatedBytes(true);
        var gcBefore = (Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2));
        var pauseBefore = GC.GetTotalPauseDuration();
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var machineBefore = MachineBusy();
        var (jitBefore, jitTimeBefore) = (JitInfo.GetCompiledMethodCount(), JitInfo.GetCompilationTime());
        var serverCpuBefore = target.Port is { } port ? PostgresCpu(port) ?? TimeSpan.Zero : TimeSpan.Zero;
        profiler?.Reset();

        using var sampler = MemorySampler.Start();
        var stopwatch = Stopwatch.StartNew();
        using var gate = new ManualResetEventSlim(false);
        var tasks = engines.Select(engine => Task.Run(async () =>
        {
            gate.Wait();
            return await engine.AdvanceAsync(Due).ConfigureAwait(false);
        })).ToList();
        gate.Set();
        var outcomes = await Task.WhenAll(tasks).ConfigureAwait(false);
        var wall = stopwatch.Elapsed;
        var (peakManaged, peakWorkingSet) = await sampler.StopAsync().ConfigureAwait(false);
        var allocated = GC.GetTotalAllocatedBytes(true) - allocatedBefore;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        var machine = MachineBusy() - machineBefore;
        var jit = (Methods: JitInfo.GetCompiledMethodCount() - jitBefore, Time: JitInfo.GetCompilationTime() - jitTimeBefore);
        var serverCpu = (target.Port is { } p ? PostgresCpu(p) ?? TimeSpan.Zero : TimeSpan.Zero) - serverCpuBefore;
        var gcs = (Gen0: GC.CollectionCount(0) - gcBefore.Gen0, Gen1: GC.CollectionCount(1) - gcBefore.Gen1, Gen2: GC.CollectionCount(2) - gcBefore.Gen2, Pause: GC.GetTotalPauseDuration() - pauseBefore);
        var profile = profiler?.Snapshot();

        var (invoices, distinct) = await CountInvoicesAsync(target.Provider, connectionString, schema).ConfigureAwait(false);
        var stillDue = await StillDueAsync(seeder).ConfigureAwait(false);
        var created = outcomes.Sum(o => o.InvoicesCreated);
        var ok = invoices == subscriptions && distinct == subscriptions && created == subscriptions && stillDue == 0;
        var check = Invariant($"{(ok ? "OK" : "FAIL")} ({invoices} invoices, {distinct} distinct (subscription, period), {stillDue} still due)");

        if (target.Provider == Provider.PostgreSql)
        {
            await ExecuteAsync(target.Provider, connectionString, $"DROP SCHEMA {schema} CASCADE").ConfigureAwait(false);
        }
        else
        {
            SqliteConnection.ClearAllPools();
            foreach (var path in Directory.EnumerateFiles(target.Directory!, Invariant($"bench_{run}.db*")))
            {
                File.Delete(path);
            }
        }

        var result = new RunResult(
            target.Provider == Provider.PostgreSql ? "postgresql" : "sqlite", series, subscriptions, runners, parallelism, repeat, load, setupTime, wall,
            created, outcomes.Sum(o => o.SubscriptionsProcessed), outcomes.Sum(o => o.Skipped), [.. outcomes.Select(o => o.InvoicesCreated)],
            baseline, peakManaged, allocated, peakWorkingSet, cpu, target.Provider == Provider.PostgreSql ? serverCpu : null, machine - cpu - serverCpu, gcs, jit, ok, check, profile);
        Console.WriteLine(warmup ? Invariant($"warm-up {result.Provider} #{repeat}: {subscriptions} x {runners} runners in {wall.TotalSeconds:F2} s, {result.InvoicesPerSecond:F0}/s, JIT {jit.Methods} methods {jit.Time.TotalSeconds:F2} s, {check}") : result.Line());
        return result;
    }

    /// <summary>
    /// Untimed runs until the JIT has settled: EF Core and Npgsql are large, and tiered compilation keeps recompiling hot
    /// methods (tier 0, instrumented, tier 1) for tens of thousands of renewals. Rounds of <c>--warmup</c> subscriptions
    /// (with the runner count of the first configuration) until one compiles fewer than 300 methods, at most 8 rounds.
    /// </summary>
    private static async Task WarmUpAsync(Target target, Settings settings)
    {
        var runners = target.Provider == Provider.PostgreSql ? settings.Runners[0] : settings.SqliteRunners[0];
        for (var round = 1; round <= 8; round++)
        {
            var result = await RunOnceAsync(target, settings, settings.Warmup, runners, settings.ParallelismFor(target.Provider)[0], round, null, warmup: true).ConfigureAwait(false);
            if (result.Jit.Methods < 300)
            {
                return;
            }
        }
    }

    /// <summary>One plan, then per session 500 customers and their 500 subscriptions, all due at <see cref="Due"/>.</summary>
    private static async Task SeedAsync(EntityFrameworkBillingStore store, int subscriptions)
    {
        var plan = new Plan { Id = "plan_bench", Name = "Pro", Price = new FlatPrice(new Money(2_900, Currency.USD)), Interval = BillingInterval.Monthly, CreatedAt = Start };
        for (var from = 0; from < subscriptions; from += SeedChunk)
        {
            var session = await store.BeginAsync().ConfigureAwait(false);
            await using (session.ConfigureAwait(false))
            {
                if (from == 0)
                {
                    session.Plans.Add(plan);
                }

                for (var i = from; i < Math.Min(subscriptions, from + SeedChunk); i++)
                {
                    var customerId = Invariant($"cus_{i:D6}");
                    session.Customers.Add(new Customer
                    {
                        Id = customerId, Name = "Bench", Email = "bench@example.com", Currency = Currency.USD, TimeZoneId = "Etc/UTC",
                        CreditBalance = Money.Zero(Currency.USD), DefaultPaymentMethod = FakePaymentGateway.Visa, CreatedAt = Start,
                    });
                    session.Subscriptions.Add(new Subscription
                    {
                        Id = Invariant($"sub_{i:D6}"), CustomerId = customerId, PlanId = plan.Id, Quantity = 1, Status = SubscriptionStatus.Active,
                        ScheduleStart = Start, AnchorLocal = new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Unspecified), CurrentPeriod = new BillingPeriod(Start, Due),
                        NextActionAt = Due, CreatedAt = Start,
                    });
                }

                await session.CommitAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task<int> StillDueAsync(EntityFrameworkBillingStore store)
    {
        var session = await store.BeginAsync().ConfigureAwait(false);
        await using (session.ConfigureAwait(false))
        {
            return (await session.Subscriptions.ListDueAsync(Due, null, 10, default).ConfigureAwait(false)).Count;
        }
    }

    private static async Task<(long Invoices, long Distinct)> CountInvoicesAsync(Provider provider, string connectionString, string schema)
    {
        var table = provider == Provider.PostgreSql ? $"{schema}.invoices" : "invoices";
        var sql = $"SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM (SELECT DISTINCT subscription_id, period_start FROM {table}) d)";
        await using var connection = Connect(provider, connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        await reader.ReadAsync().ConfigureAwait(false);
        return (Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture));
    }

    private static async Task ExecuteAsync(Provider provider, string connectionString, string sql)
    {
        await using var connection = Connect(provider, connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private static async Task<string?> ScalarAsync(Provider provider, string connectionString, string sql)
    {
        await using var connection = Connect(provider, connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(await command.ExecuteScalarAsync().ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    private static DbConnection Connect(Provider provider, string connectionString) =>
        provider == Provider.PostgreSql ? new NpgsqlConnection(connectionString) : new SqliteConnection(connectionString);

    private enum Provider
    {
        PostgreSql,
        Sqlite,
    }

    private sealed record Target(Provider Provider, string? ConnectionString, string? Directory, int? Port = null);

    private sealed record Settings(
        Provider[] Providers, int Subscriptions, int[] Runners, int[] SqliteRunners, int Repeat, bool Durable,
        int[]? Parallelism, int BatchSize, bool Scaling, bool Profile, int Warmup, string? Npgsql = null, bool UniqueSchemas = false, int[]? SqliteParallelism = null)
    {
        private static readonly int[] DefaultParallelism = [8];
        private static readonly int[] DefaultSqliteParallelism = [1];

        public int[] ParallelismFor(Provider provider) =>
            provider == Provider.PostgreSql ? Parallelism ?? DefaultParallelism : SqliteParallelism ?? Parallelism ?? DefaultSqliteParallelism;

        public static Settings Parse(string[] args)
        {
            var settings = new Settings([Provider.PostgreSql, Provider.Sqlite], 10_000, [1, 2, 4], [1], 3, true, null, 500, false, false, 5_000);
            for (var i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                settings = args[i] switch
                {
                    "--provider" => settings with
                    {
                        Providers = Value() switch
                        {
                            "postgresql" => [Provider.PostgreSql],
                            "sqlite" => [Provider.Sqlite],
                            "both" => [Provider.PostgreSql, Provider.Sqlite],
                            var other => throw new ArgumentException($"--provider: '{other}' is not postgresql, sqlite or both."),
                        },
                    },
                    "--subscriptions" => settings with { Subscriptions = Positive(args[i], Value()) },
                    "--runners" => settings with { Runners = List(args[i], Value()) },
                    "--sqlite-runners" => settings with { SqliteRunners = List(args[i], Value()) },
                    "--repeat" => settings with { Repeat = Positive(args[i], Value()) },
                    "--durable" => settings with { Durable = bool.TryParse(Value(), out var durable) ? durable : throw new ArgumentException("--durable: true or false.") },
                    "--parallelism" => settings with { Parallelism = List(args[i], Value()) },
                    "--sqlite-parallelism" => settings with { SqliteParallelism = List(args[i], Value()) },
                    "--batch-size" => settings with { BatchSize = Positive(args[i], Value()) },
                    "--scaling" => settings with { Scaling = true },
                    "--profile" => settings with { Profile = true },
                    "--npgsql" => settings with
                    {
                        Npgsql = Value() is var extra && extra.Split(';', StringSplitOptions.RemoveEmptyEntries).All(p => p.Contains('=', StringComparison.Ordinal))
                            ? extra
                            : throw new ArgumentException("--npgsql: Key=Value pairs separated by ';'."),
                    },
                    "--warmup" => settings with { Warmup = Positive(args[i], Value()) },
                    "--unique-schemas" => settings with { UniqueSchemas = true },
                    var other => throw new ArgumentException($"Unknown option '{other}'."),
                };
            }

            return settings;
        }

        public override string ToString() => Invariant(
            $"providers {string.Join('+', Providers)}, {Subscriptions} subscriptions, runners {string.Join(',', Runners)} (sqlite {string.Join(',', SqliteRunners)}), repeat {Repeat}, durable {Durable}, parallelism {string.Join(',', ParallelismFor(Provider.PostgreSql))} (sqlite {string.Join(',', ParallelismFor(Provider.Sqlite))}), batch {BatchSize}, scaling {Scaling}, profile {Profile}, warm-up {Warmup}, unique schemas {UniqueSchemas}{(Npgsql is null ? "" : $", npgsql '{Npgsql}'")}");

        private static int Positive(string option, string value) =>
            int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"{option}: '{value}' is not a positive number.");

        private static int[] List(string option, string value) => [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => Positive(option, v))];
    }

    private sealed record RunResult(
        string Provider, string Series, int Subscriptions, int Runners, int Parallelism, int Repeat, string Load, TimeSpan Setup, TimeSpan Wall,
        int InvoicesCreated, int SubscriptionsProcessed, int Skipped, int[] PerRunner, long BaselineManaged, long PeakManaged, long Allocated,
        long PeakWorkingSet, TimeSpan ClientCpu, TimeSpan? ServerCpu, TimeSpan OtherCpu, (int Gen0, int Gen1, int Gen2, TimeSpan Pause) Collections, (long Methods, TimeSpan Time) Jit, bool Ok, string Check,
        CommandProfile? Profile)
    {
        private const double MiB = 1024 * 1024;

        public double InvoicesPerSecond => InvoicesCreated / Wall.TotalSeconds;

        public string Line() => Invariant(
            $"{Provider} {Series} n={Subscriptions} runners={Runners} par={Parallelism} #{Repeat} (load {Load}, setup {Setup.TotalSeconds:F1} s): {Wall.TotalSeconds:F2} s, {InvoicesCreated} invoices [{string.Join('+', PerRunner)}], {InvoicesPerSecond:F0}/s, skipped {Skipped}, managed {BaselineManaged / MiB:F1}->{PeakManaged / MiB:F1} MiB, alloc {Allocated / (double)Math.Max(1, InvoicesCreated) / 1024:F1} KiB/invoice, WS {PeakWorkingSet / MiB:F0} MiB, CPU client {ClientCpu.TotalSeconds:F2} s{(ServerCpu is { } s ? Invariant($" server {s.TotalSeconds:F2} s") : "")} other {OtherCpu.TotalSeconds:F2} s, JIT {Jit.Methods} methods {Jit.Time.TotalSeconds:F2} s, GC {Collections.Gen0}/{Collections.Gen1}/{Collections.Gen2} paused {Collections.Pause.TotalMilliseconds:F0} ms — {Check}");

        public static string Table(IReadOnlyList<RunResult> results)
        {
            var table = new StringBuilder();
            table.AppendLine("| provider | series | subs | runners | par | # | load (1/5/15) | wall s | invoices (per runner) | skipped | invoices/s | managed base → peak MiB | alloc KiB/invoice | WS peak MiB | client CPU ms/invoice | PG CPU ms/invoice | other CPU s | JIT methods (s) | GC 0/1/2 (pause ms) | check |");
            table.AppendLine("|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---|");
            foreach (var r in results)
            {
                table.AppendLine(Invariant(
                    $"| {r.Provider} | {r.Series} | {r.Subscriptions} | {r.Runners} | {r.Parallelism} | {r.Repeat} | {r.Load} | {r.Wall.TotalSeconds:F2} | {r.InvoicesCreated} ({string.Join('+', r.PerRunner)}) | {r.Skipped} | {r.InvoicesPerSecond:F0} | {r.BaselineManaged / MiB:F1} → {r.PeakManaged / MiB:F1} | {r.Allocated / (double)Math.Max(1, r.InvoicesCreated) / 1024:F1} | {r.PeakWorkingSet / MiB:F0} | {r.ClientCpu.TotalMilliseconds / Math.Max(1, r.InvoicesCreated):F3} | {(r.ServerCpu is { } s ? (s.TotalMilliseconds / Math.Max(1, r.InvoicesCreated)).ToString("F3", CultureInfo.InvariantCulture) : "–")} | {r.OtherCpu.TotalSeconds:F1} | {r.Jit.Methods} ({r.Jit.Time.TotalSeconds:F1}) | {r.Collections.Gen0}/{r.Collections.Gen1}/{r.Collections.Gen2} ({r.Collections.Pause.TotalMilliseconds:F0}) | {(r.Ok ? "OK" : "FAIL")} |"));
            }

            return table.ToString();
        }

        public static string Medians(IReadOnlyList<RunResult> results)
        {
            var table = new StringBuilder();
            table.AppendLine("| provider | series | subs | runners | par | runs | median wall s | median invoices/s | min–max invoices/s | max managed peak MiB | median alloc KiB/invoice | max WS peak MiB | checks |");
            table.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|");
            foreach (var g in results.GroupBy(r => (r.Provider, r.Series, r.Subscriptions, r.Runners, r.Parallelism)))
            {
                var runs = g.ToList();
                table.AppendLine(Invariant(
                    $"| {g.Key.Provider} | {g.Key.Series} | {g.Key.Subscriptions} | {g.Key.Runners} | {g.Key.Parallelism} | {runs.Count} | {Median(runs.Select(r => r.Wall.TotalSeconds)):F2} | {Median(runs.Select(r => r.InvoicesPerSecond)):F0} | {runs.Min(r => r.InvoicesPerSecond):F0}–{runs.Max(r => r.InvoicesPerSecond):F0} | {runs.Max(r => r.PeakManaged) / MiB:F1} | {Median(runs.Select(r => r.Allocated / (double)Math.Max(1, r.InvoicesCreated) / 1024)):F1} | {runs.Max(r => r.PeakWorkingSet) / MiB:F0} | {(runs.TrueForAll(r => r.Ok) ? "all OK" : "FAIL")} |"));
            }

            return table.ToString();
        }

        public static string Profiles(IReadOnlyList<RunResult> results)
        {
            var table = new StringBuilder();
            table.AppendLine("| provider | series | subs | runners | par | # | statement | commands | per invoice | total ms (summed over connections) | mean ms |");
            table.AppendLine("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
            foreach (var r in results.Where(r => r.Profile is not null && r.Provider == "postgresql"))
            {
                foreach (var (statement, count, total) in r.Profile!.Statements)
                {
                    table.AppendLine(Invariant(
                        $"| {r.Provider} | {r.Series} | {r.Subscriptions} | {r.Runners} | {r.Parallelism} | {r.Repeat} | {statement} | {count} | {count / (double)Math.Max(1, r.InvoicesCreated):F2} | {total.TotalMilliseconds:F0} | {total.TotalMilliseconds / Math.Max(1, count):F3} |"));
                }
            }

            return table.ToString();
        }

    }

    /// <summary>Samples the managed heap and the working set every 50 ms until stopped.</summary>
    private sealed class MemorySampler : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task<(long, long)> _loop = Task.FromResult((0L, 0L));

        public static MemorySampler Start()
        {
            var sampler = new MemorySampler();
            sampler._loop = Task.Run(sampler.LoopAsync);
            return sampler;
        }

        public async Task<(long PeakManaged, long PeakWorkingSet)> StopAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            return await _loop.ConfigureAwait(false);
        }

        public void Dispose() => _stop.Dispose();

        private async Task<(long, long)> LoopAsync()
        {
            long managed = 0, workingSet = 0;
            using var timer = new PeriodicTimer(SampleInterval);
            while (true)
            {
                managed = Math.Max(managed, GC.GetTotalMemory(false));
                workingSet = Math.Max(workingSet, Environment.WorkingSet);
                try
                {
                    await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    managed = Math.Max(managed, GC.GetTotalMemory(false));
                    workingSet = Math.Max(workingSet, Environment.WorkingSet);
                    return (managed, workingSet);
                }
            }
        }
    }

    private sealed record CommandProfile(IReadOnlyList<(string Statement, long Count, TimeSpan Total)> Statements);

    /// <summary>Counts and times Npgsql's command activities (its OpenTelemetry tracing), grouped by statement shape.</summary>
    private sealed class CommandProfiler : IDisposable
    {
        private readonly ActivityListener _listener;
        private ConcurrentDictionary<string, (long Count, long Ticks)> _statements = new(StringComparer.Ordinal);

        public CommandProfiler()
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name.StartsWith("Npgsql", StringComparison.Ordinal),
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
                ActivityStopped = Record,
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public void Reset() => _statements = new(StringComparer.Ordinal);

        public CommandProfile Snapshot() =>
            new([.. _statements.OrderByDescending(s => s.Value.Ticks).Select(s => (s.Key, s.Value.Count, TimeSpan.FromTicks(s.Value.Ticks)))]);

        public void Dispose() => _listener.Dispose();

        private void Record(Activity activity)
        {
            var text = activity.GetTagItem("db.query.text") as string ?? activity.GetTagItem("db.statement") as string ?? activity.DisplayName;
            var key = Shape(text);
            _statements.AddOrUpdate(key, (1, activity.Duration.Ticks), (_, v) => (v.Count + 1, v.Ticks + activity.Duration.Ticks));
        }

        /// <summary>A short label of a command: its statements' verbs and first tables.</summary>
        private static string Shape(string text)
        {
            var parts = text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(statement =>
                {
                    var words = statement.Split([' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    var verb = words.Length > 0 ? words[0].ToUpperInvariant() : "?";
                    var table = verb switch
                    {
                        "SELECT" => words.SkipWhile(w => !w.Equals("FROM", StringComparison.OrdinalIgnoreCase)).Skip(1).FirstOrDefault(),
                        "INSERT" => words.Length > 2 ? words[2] : null,
                        "UPDATE" => words.Length > 1 ? words[1] : null,
                        "DELETE" => words.Length > 2 ? words[2] : null,
                        _ => null,
                    };
                    var dot = table?.LastIndexOf('.') ?? -1;
                    table = dot >= 0 ? table![(dot + 1)..] : table;
                    return table is null ? verb : $"{verb} {table.Trim('"', '(')}";
                })
                .GroupBy(s => s, StringComparer.Ordinal)
                .Select(g => g.Count() > 1 ? Invariant($"{g.Key} ×{g.Count()}") : g.Key);
            return string.Join("; ", parts);
        }
    }
}
