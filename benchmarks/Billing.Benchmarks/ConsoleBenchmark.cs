using System.Globalization;
using System.Runtime;

namespace Billing.Benchmarks;

/// <summary>What the console benchmarks (<c>store-run</c>, <c>redis-run</c>, <c>usage-append-run</c>) share: argument
/// handling, the runtime header, and the machine measurements they read from /proc.</summary>
internal static class ConsoleBenchmark
{
    /// <summary>Parses <paramref name="args"/> (an <see cref="ArgumentException"/> prints its message and the usage line, exit
    /// code 2), prints the name, the settings and the runtime header, then runs.</summary>
    public static int Run<TSettings>(string name, string[] args, Func<string[], TSettings> parse, string usage, Func<TSettings, Task<int>> run)
        where TSettings : notnull
    {
        TSettings settings;
        try
        {
            settings = parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine($"usage: {name} {usage}");
            return 2;
        }

        Console.WriteLine(Invariant($"{name}: {settings}"));
        var concurrent = AppContext.TryGetSwitch("System.GC.Concurrent", out var on) ? on : true;
        Console.WriteLine(Invariant($"runtime {Environment.Version}, {Environment.ProcessorCount} cores, GC {(GCSettings.IsServerGC ? "server" : "workstation")} (concurrent {concurrent}), load {LoadAverage()}"));
        return run(settings).GetAwaiter().GetResult();
    }

    /// <summary>The 1-, 5- and 15-minute load averages ("?" where /proc is not readable).</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    /// <summary>Busy CPU time of the whole machine (all processes), from /proc/stat.</summary>
    public static TimeSpan MachineBusy()
    {
        try
        {
            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long busy = 0;
            foreach (var i in (int[])[1, 2, 3, 6, 7, 8]) // user nice system irq softirq steal
            {
                busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
            }

            return TimeSpan.FromSeconds(busy / 100.0);
        }
        catch (IOException)
        {
            return TimeSpan.Zero;
        }
    }

    /// <summary>A redis-server's user plus system CPU seconds so far (<c>INFO cpu</c>, i.e. getrusage).</summary>
    public static async Task<double> RedisCpuSecondsAsync(Billing.Testing.Servers.LocalRedisServer server)
    {
        var info = (string)(await server.ExecuteAsync("INFO", "cpu").ConfigureAwait(false))!;
        return double.Parse(InfoField(info, "used_cpu_user"), CultureInfo.InvariantCulture) + double.Parse(InfoField(info, "used_cpu_sys"), CultureInfo.InvariantCulture);
    }

    /// <summary>The value of a field of a Redis <c>INFO</c> answer.</summary>
    public static string InfoField(string info, string name) =>
        info.Split('\n').Select(l => l.TrimEnd('\r')).First(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..];

    /// <summary>
    /// CPU time of the PostgreSQL server listening on <paramref name="port"/> on this machine only (other servers may be
    /// running): the postmaster, its live children (backends, background workers) and its reaped children; null when no
    /// local postmaster has that port.
    /// </summary>
    public static TimeSpan? PostgresCpu(int port)
    {
        var stats = new List<(int Pid, int ParentPid, string[] Fields)>();
        int? postmaster = null;
        var portArgument = port.ToString(CultureInfo.InvariantCulture);
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var close = stat.LastIndexOf(')');
                if (!stat.Contains("(postgres)", StringComparison.Ordinal) || close < 0)
                {
                    continue;
                }

                // After the command: [0] state, [1] ppid, ..., [11] utime, [12] stime, [13] cutime, [14] cstime.
                var fields = stat[(close + 2)..].Split(' ');
                stats.Add((pid, int.Parse(fields[1], CultureInfo.InvariantCulture), fields));
                var arguments = File.ReadAllText(Path.Combine(directory, "cmdline")).Split('\0');
                if (arguments.Zip(arguments.Skip(1)).Any(a => a.First == "-p" && a.Second == portArgument))
                {
                    postmaster = pid;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // the process ended, or is not readable
            }
        }

        if (postmaster is not { } master)
        {
            return null;
        }

        long ticks = 0;
        foreach (var (pid, _, fields) in stats.Where(s => s.Pid == master || s.ParentPid == master))
        {
            ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            if (pid == master)
            {
                ticks += long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
            }
        }

        return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ is 100 on Linux
    }

    /// <summary>The median (NaN for no values).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Formats with the invariant culture.</summary>
    public static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
