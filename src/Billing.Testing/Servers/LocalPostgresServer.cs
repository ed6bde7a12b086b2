using System.ComponentModel;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.Versioning;
using System.Text;

namespace Billing.Testing.Servers;

/// <summary>
/// A throwaway PostgreSQL server started from the machine's binaries for tests: a fresh cluster in a new temporary
/// directory, listening on 127.0.0.1 at a free port, with trust authentication for the superuser <c>postgres</c>.
/// </summary>
/// <remarks>
/// <para><b>Binaries.</b> The server binaries (<c>initdb</c>, <c>postgres</c>) come from, in order: the directory in the
/// environment variable <c>BILLING_POSTGRES_BIN</c> (when set, it must contain them: nothing else is tried); the first
/// <c>initdb</c> on <c>PATH</c>, followed through symbolic links to the directory it really lives in (so
/// <c>/usr/local/bin/initdb</c> linking to <c>/usr/lib/postgresql/15/bin/initdb</c> finds <c>postgres</c> beside the
/// target); the highest version in <c>/usr/lib/postgresql/*/bin</c> (Debian and Ubuntu packages). When none is found the
/// start fails with an <see cref="InvalidOperationException"/> that says what to install; it never skips silently. The
/// client tools (<c>createdb</c>, <c>psql</c>) are taken from the same directory, else from <c>PATH</c>. PostgreSQL 10 or
/// later on Linux or macOS is required; Windows is not supported (<see cref="PlatformNotSupportedException"/>).</para>
/// <para><b>Root.</b> PostgreSQL refuses to run as root. When the process runs with effective user id 0, the cluster
/// belongs to the system user <c>billing-pg</c> (created with <c>useradd --system</c> when missing; concurrent creation by
/// other processes is tolerated), its directory is created under <c>/tmp</c> with mode 0700 and owned by that user, and
/// <c>initdb</c> and <c>postgres</c> run through <c>runuser -u billing-pg --</c> (or <c>su -s /bin/sh billing-pg -c</c>
/// when <c>runuser</c> is missing). The client tools run as the current user.</para>
/// <para><b>Files and output.</b> Everything lives in one directory (data, Unix socket, <c>server.log</c>); the server's
/// output goes to that log, never to the test runner's console. Start failures and timeouts include the end of the log in
/// the exception message.</para>
/// <para><b>Lifetime.</b> <see cref="DisposeAsync"/> stops the server (fast shutdown, then a kill after 10 seconds) and
/// deletes its directory. Servers not disposed are stopped and deleted when the process exits normally
/// (<see cref="AppDomain.ProcessExit"/>). If the process dies without running its exit handlers (killed, crashed), the
/// server notices that its standard input closed, shuts down and deletes its own directory: no orphan keeps running.</para>
/// <para>All members are thread-safe.</para>
/// </remarks>
public sealed class LocalPostgresServer : IAsyncDisposable
{
    private const string LoopbackHost = "127.0.0.1";
    private const string SuperUser = "postgres";
    private const string ServiceUser = "billing-pg";
    private const string BinDirectoryVariable = "BILLING_POSTGRES_BIN";
    private const string DebianPackageRoot = "/usr/lib/postgresql";
    private const string StopRequestedFile = "stop-requested";
    private const int PortAttempts = 5;
    private const int MaxDatabasePrefixLength = 30;
    private const int MaxSocketPathLength = 100;

    private const string NotFoundMessage =
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH or in /usr/lib/postgresql/*/bin. " +
        "Install them: apt-get install -y postgresql (Debian), or set BILLING_POSTGRES_BIN, " +
        "or point BILLING_TEST_POSTGRES at an existing server.";

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);
    private static readonly string[] ReservedSettings =
        ["port", "listen_addresses", "unix_socket_directories", "data_directory", "config_file", "hba_file", "ident_file", "external_pid_file"];

    private static readonly Lock RegistryGate = new();
    private static readonly HashSet<LocalPostgresServer> LiveServers = [];
    private static readonly Lazy<Task<LocalPostgresServer>> SharedServer =
        new(() => Task.Run(() => StartCoreAsync(new LocalPostgresOptions(), shared: true, CancellationToken.None)), LazyThreadSafetyMode.ExecutionAndPublication);
    private static bool _exitHandlerInstalled;
    private static ServiceAccount? _serviceAccount;

    private readonly Binaries _binaries;
    private readonly Process _process;
    private readonly bool _shared;
    private readonly Lock _stopGate = new();
    private Task? _stopTask;

    private LocalPostgresServer(Binaries binaries, string rootDirectory, Process process, int port, bool shared)
    {
        _binaries = binaries;
        RootDirectory = rootDirectory;
        _process = process;
        _shared = shared;
        Port = port;
        ConnectionString = ConnectionStringFor(SuperUser);
    }

    /// <summary>The address the server listens on: always <c>127.0.0.1</c> (never other interfaces).</summary>
    public string Host { get; } = LoopbackHost;

    /// <summary>The TCP port the server listens on, chosen free at start.</summary>
    public int Port { get; }

    /// <summary>The superuser to connect as: <c>postgres</c>, with trust authentication (no password).</summary>
    public string UserName { get; } = SuperUser;

    /// <summary>
    /// The connection string for the <c>postgres</c> database, in Npgsql's keyword format:
    /// <c>Host=127.0.0.1;Port=N;Username=postgres;Database=postgres;Pooling=true</c>.
    /// </summary>
    public string ConnectionString { get; }

    /// <summary>The server's directory (data, socket and log); deleted when the server stops.</summary>
    internal string RootDirectory { get; }

    /// <summary>
    /// Starts a new throwaway server: <c>initdb</c> into a new temporary directory (trust authentication, superuser
    /// <c>postgres</c>, UTF8, locale C), then <c>postgres</c> on 127.0.0.1 at a free port, and waits until it accepts
    /// connections.
    /// </summary>
    /// <param name="options">How to configure the server; <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels the start; whatever was started is stopped and deleted.</param>
    /// <returns>The running server; dispose it to stop it and delete its files.</returns>
    /// <remarks>
    /// <para>The port is found by binding port 0 on 127.0.0.1; when another process takes it before the server binds it,
    /// the start is retried with a new port (up to 5 times).</para>
    /// <para><see cref="LocalPostgresOptions.StartTimeout"/> bounds the whole start, <c>initdb</c> included.</para>
    /// </remarks>
    /// <exception cref="InvalidOperationException">The binaries were not found (the message says what to install), a tool
    /// failed, or the server exited during startup (the message includes the end of its log).</exception>
    /// <exception cref="TimeoutException">The server did not accept connections within the start timeout (the message
    /// includes the end of its log).</exception>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="PlatformNotSupportedException">On Windows.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    public static Task<LocalPostgresServer> StartAsync(LocalPostgresOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LocalPostgresOptions();
        Validate(options);
        return StartCoreAsync(options, shared: false, cancellationToken);
    }

    /// <summary>
    /// The process-wide shared server, started with the default options on the first call; every call returns the same
    /// instance.
    /// </summary>
    /// <returns>The shared server.</returns>
    /// <remarks>
    /// <para>Thread-safe: concurrent first calls start one server. It is stopped and deleted when the process exits.</para>
    /// <para><see cref="DisposeAsync"/> does nothing on the shared server (other tests are using it), so
    /// <c>await using</c> on it is harmless. Give each test its own database with <see cref="CreateDatabaseAsync"/>.</para>
    /// <para>When the start fails, the failure is kept: every later call gets the same exception at once instead of
    /// waiting for another timeout.</para>
    /// </remarks>
    public static Task<LocalPostgresServer> SharedAsync() => SharedServer.Value;

    /// <summary>The connection string for <paramref name="database"/> on this server, in Npgsql's keyword format.</summary>
    /// <param name="database">The database name, used as it is (quoted in the string when needed).</param>
    /// <returns><c>Host=127.0.0.1;Port=N;Username=postgres;Database=<paramref name="database"/>;Pooling=true</c>.</returns>
    /// <exception cref="ArgumentException"><paramref name="database"/> is null, empty or white space.</exception>
    public string ConnectionStringFor(string database)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(database);
        var builder = new StringBuilder();
        DbConnectionStringBuilder.AppendKeyValuePair(builder, "Host", LoopbackHost);
        DbConnectionStringBuilder.AppendKeyValuePair(builder, "Port", Port.ToString(CultureInfo.InvariantCulture));
        DbConnectionStringBuilder.AppendKeyValuePair(builder, "Username", SuperUser);
        DbConnectionStringBuilder.AppendKeyValuePair(builder, "Database", database);
        DbConnectionStringBuilder.AppendKeyValuePair(builder, "Pooling", "true");
        return builder.ToString();
    }

    /// <summary>Creates a new, empty, uniquely named database (with <c>createdb</c>) and returns its connection string.</summary>
    /// <param name="namePrefix">The start of the name, for people reading logs; <c>test</c> when <see langword="null"/>
    /// or empty.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The connection string for the new database (see <see cref="ConnectionStringFor"/>).</returns>
    /// <remarks>
    /// The name is the prefix, lowercased, with every character other than ASCII letters, digits and <c>_</c> replaced by
    /// <c>_</c>, cut to 30 characters (and starting with a letter or <c>_</c>), then <c>_</c> and 32 random hex digits:
    /// at most 63 characters, PostgreSQL's limit. Databases are copied from <c>template1</c> and live until the server stops.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    /// <exception cref="InvalidOperationException"><c>createdb</c> was not found or failed (the message has its output).</exception>
    public async Task<string> CreateDatabaseAsync(string? namePrefix = null, CancellationToken cancellationToken = default)
    {
        lock (_stopGate)
        {
            ObjectDisposedException.ThrowIf(_stopTask is not null, this);
        }

        var name = DatabaseName(namePrefix);
        var createdb = _binaries.Tool("createdb")
            ?? throw new InvalidOperationException($"createdb was not found in {_binaries.Directory} or on PATH. Install the PostgreSQL client tools: apt-get install -y postgresql-client (Debian).");
        string[] arguments = ["-h", LoopbackHost, "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", SuperUser, "-w", "--maintenance-db=postgres", name];
        var result = await RunAsync(createdb, arguments, workingDirectory: null, ToolTimeout, cancellationToken).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"createdb {name} failed with exit code {result.ExitCode}: {result.Output}");
        }

        return ConnectionStringFor(name);
    }

    /// <summary>Stops the server (fast shutdown, then a kill if it has not stopped after 10 seconds) and deletes its directory.</summary>
    /// <returns>A task that completes when the server is stopped and its files are deleted.</returns>
    /// <remarks>
    /// Idempotent and thread-safe: later and concurrent calls return the same work. Does nothing on the instance returned by
    /// <see cref="SharedAsync"/>, which is stopped when the process exits. Deleting the directory is best effort (three
    /// attempts); a failure leaves it in the temporary directory and does not throw.
    /// </remarks>
    public ValueTask DisposeAsync()
    {
        if (_shared)
        {
            return ValueTask.CompletedTask;
        }

        lock (_stopGate)
        {
            _stopTask ??= StopAsync();
            return new ValueTask(_stopTask);
        }
    }

    /// <summary>The path of a PostgreSQL tool from the server's installation (else from <c>PATH</c>), or <see langword="null"/>.</summary>
    internal string? ToolPath(string name) => _binaries.Tool(name);

    private static async Task<LocalPostgresServer> StartCoreAsync(LocalPostgresOptions options, bool shared, CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("LocalPostgresServer runs PostgreSQL from the machine's binaries on Linux and macOS only.");
        }

        return await StartUnixAsync(options, shared, cancellationToken).ConfigureAwait(false);
    }

    [UnsupportedOSPlatform("windows")]
    private static async Task<LocalPostgresServer> StartUnixAsync(LocalPostgresOptions options, bool shared, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var binaries = Binaries.Find();
        var account = await IsRootAsync(cancellationToken).ConfigureAwait(false)
            ? await EnsureServiceAccountAsync(cancellationToken).ConfigureAwait(false)
            : null;
        var root = await CreateRootDirectoryAsync(account, cancellationToken).ConfigureAwait(false);
        try
        {
            var data = Path.Combine(root, "data");
            await InitDbAsync(binaries, account, root, data, options, clock, cancellationToken).ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                var port = ServerProcesses.FreePort();
                var logStart = ServerProcesses.LogLength(root);
                var (process, wrapperOutput) = StartServerProcess(binaries, account, root, data, port, options);
                var outcome = await WaitUntilReadyAsync(process, data, port, clock, options.StartTimeout, cancellationToken).ConfigureAwait(false);
                if (outcome == StartOutcome.Ready)
                {
                    var server = new LocalPostgresServer(binaries, root, process, port, shared);
                    Register(server);
                    return server;
                }

                await KillAsync(process).ConfigureAwait(false);
                process.Dispose();
                var log = ServerProcesses.LogTail(root, logStart);
                lock (wrapperOutput)
                {
                    if (wrapperOutput.Length > 0)
                    {
                        log += Environment.NewLine + wrapperOutput.ToString().TrimEnd();
                    }
                }

                if (outcome == StartOutcome.TimedOut)
                {
                    throw new TimeoutException($"PostgreSQL did not accept connections on {LoopbackHost}:{port} within {options.StartTimeout.TotalSeconds:0.###} s. The end of its log:{Environment.NewLine}{log}");
                }

                var portTaken = log.Contains("Address already in use", StringComparison.Ordinal)
                    || log.Contains("could not create any TCP/IP sockets", StringComparison.Ordinal);
                if (!portTaken)
                {
                    throw new InvalidOperationException($"PostgreSQL exited during startup on {LoopbackHost}:{port}. The end of its log:{Environment.NewLine}{log}");
                }

                if (attempt == PortAttempts)
                {
                    throw new InvalidOperationException($"PostgreSQL could not listen on a free port: another process took each of the {PortAttempts} ports tried before the server bound it. The end of its log:{Environment.NewLine}{log}");
                }
            }
        }
        catch
        {
            ServerProcesses.DeleteDirectory(root);
            throw;
        }
    }

    private static void Validate(LocalPostgresOptions options)
    {
        if (options.MaxConnections < 1)
        {
            throw new ArgumentException($"MaxConnections must be at least 1 (was {options.MaxConnections}).", nameof(options));
        }

        if (options.StartTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"StartTimeout must be positive (was {options.StartTimeout}).", nameof(options));
        }

        foreach (var (name, value) in options.Settings)
        {
            if (string.IsNullOrEmpty(name) || name.Any(c => c == '=' || char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                throw new ArgumentException($"The setting name '{name}' is not valid: it must be non-empty, without '=', white space or control characters.", nameof(options));
            }

            if (ReservedSettings.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"The setting '{name}' is chosen by LocalPostgresServer and cannot be overridden.", nameof(options));
            }

            if (value is null)
            {
                throw new ArgumentException($"The setting '{name}' has a null value.", nameof(options));
            }
        }
    }

    [UnsupportedOSPlatform("windows")]
    private static async Task InitDbAsync(Binaries binaries, ServiceAccount? account, string root, string data, LocalPostgresOptions options, Stopwatch clock, CancellationToken cancellationToken)
    {
        List<string> arguments = ["-D", data, "-U", SuperUser, "-A", "trust", "-E", "UTF8", "--locale=C"];
        if (!options.Durable)
        {
            arguments.Add("--no-sync");
        }

        var (file, wrapped) = AsServiceUser(account, binaries.InitDb, arguments);
        var remaining = options.StartTimeout - clock.Elapsed;
        if (remaining <= TimeSpan.Zero)
        {
            throw new TimeoutException($"PostgreSQL could not be started within {options.StartTimeout.TotalSeconds:0.###} s: the time ran out before initdb.");
        }

        ToolResult result;
        try
        {
            result = await RunAsync(file, wrapped, root, remaining, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"initdb did not finish within the start timeout of {options.StartTimeout.TotalSeconds:0.###} s.", e);
        }

        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"initdb failed with exit code {result.ExitCode}: {result.Output}");
        }
    }

    [UnsupportedOSPlatform("windows")]
    private static (Process Process, StringBuilder WrapperOutput) StartServerProcess(Binaries binaries, ServiceAccount? account, string root, string data, int port, LocalPostgresOptions options)
    {
        List<string> arguments =
        [
            "-D", data,
            "-p", port.ToString(CultureInfo.InvariantCulture),
            "-c", "listen_addresses=" + LoopbackHost,
            "-c", "unix_socket_directories=" + Path.Combine(root, "sock"),
            "-c", "max_connections=" + options.MaxConnections.ToString(CultureInfo.InvariantCulture),
            "-c", "logging_collector=off",
        ];
        if (!options.Durable)
        {
            arguments.AddRange(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        }

        foreach (var (name, value) in options.Settings)
        {
            arguments.AddRange(["-c", name + "=" + value]);
        }

        // The shell is a watchdog: it runs postgres in the background and, when its standard input (a pipe from this
        // process) reaches end of file, asks for a fast shutdown. That happens on dispose (the pipe is closed) and when
        // this process dies in any way, so no orphan server survives it. After a shutdown it asked for, it deletes the
        // server's directory (what dispose does too, but a dead process cannot).
        var stopFlag = Quote(Path.Combine(root, StopRequestedFile));
        var script = string.Join(
            '\n',
            "exec >>" + Quote(Path.Combine(root, ServerProcesses.LogFile)) + " 2>&1",
            "LC_ALL=C; export LC_ALL",
            "exec 3<&0",
            string.Join(' ', new[] { binaries.Postgres }.Concat(arguments).Select(Quote)) + " </dev/null 3<&- &",
            "pg=$!",
            "( read -r line <&3; : >" + stopFlag + "; kill -INT \"$pg\" 2>/dev/null ) </dev/null &",
            "watchdog=$!",
            "exec 3<&-",
            "wait \"$pg\"",
            "status=$?",
            "kill \"$watchdog\" 2>/dev/null",
            "if [ -e " + stopFlag + " ]; then rm -rf " + Quote(root) + "; fi",
            "exit \"$status\"");
        var (file, wrapped) = AsServiceUser(account, "/bin/sh", ["-c", script]);
        var process = new Process { StartInfo = CreateStartInfo(file, wrapped, root) };
        try
        {
            // The wrapper (runuser, su, sh) writes here only when it cannot start: keep that for the error message, off the console.
            var wrapperOutput = new StringBuilder();
            void Capture(object sender, DataReceivedEventArgs e)
            {
                lock (wrapperOutput)
                {
                    if (e.Data is not null && wrapperOutput.Length < 4096)
                    {
                        wrapperOutput.AppendLine(e.Data);
                    }
                }
            }

            process.OutputDataReceived += Capture;
            process.ErrorDataReceived += Capture;
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return (process, wrapperOutput);
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {file}: {e.Message}", e);
        }
    }

    private static async Task<StartOutcome> WaitUntilReadyAsync(Process process, string data, int port, Stopwatch clock, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                if (process.HasExited)
                {
                    return StartOutcome.Exited;
                }

                if (IsReady(data, port))
                {
                    return StartOutcome.Ready;
                }

                if (clock.Elapsed >= timeout)
                {
                    return StartOutcome.TimedOut;
                }

                await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            await KillAsync(process).ConfigureAwait(false);
            process.Dispose();
            throw;
        }
    }

    /// <summary>Reads <c>postmaster.pid</c>, which PostgreSQL 10+ ends with <c>ready</c> once it accepts connections.</summary>
    private static bool IsReady(string data, int port)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(Path.Combine(data, "postmaster.pid"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        return lines.Length >= 8
            && lines[3].Trim() == port.ToString(CultureInfo.InvariantCulture)
            && lines[7].Trim() == "ready";
    }

    private async Task StopAsync()
    {
        Unregister(this);
        RequestShutdown(_process);
        using (var timeout = new CancellationTokenSource(StopTimeout))
        {
            try
            {
                await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                await KillAsync(_process).ConfigureAwait(false);
            }
        }

        _process.Dispose();
        for (var attempt = 1; !ServerProcesses.DeleteDirectory(RootDirectory) && attempt < 3; attempt++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        }
    }

    /// <summary>The first half of the synchronous stop for <see cref="AppDomain.ProcessExit"/>: asks for the shutdown.</summary>
    /// <returns><see langword="false"/> when <see cref="DisposeAsync"/> is already at it (if it cannot finish, the
    /// watchdog stops the server).</returns>
    private bool BeginStopAtExit()
    {
        lock (_stopGate)
        {
            if (_stopTask is not null)
            {
                return false;
            }

            _stopTask = Task.CompletedTask;
        }

        RequestShutdown(_process);
        return true;
    }

    /// <summary>The second half of the synchronous stop: waits, kills if needed, deletes the directory.</summary>
    private void FinishStopAtExit()
    {
        if (!_process.WaitForExit(StopTimeout))
        {
            ServerProcesses.KillTree(_process);
            _process.WaitForExit(KillTimeout);
        }

        _process.Dispose();
        ServerProcesses.DeleteDirectory(RootDirectory);
    }

    private static void RequestShutdown(Process process)
    {
        try
        {
            process.StandardInput.Close(); // the watchdog sends SIGINT: fast shutdown
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            // Already exited.
        }
    }

    private static async Task KillAsync(Process process)
    {
        ServerProcesses.KillTree(process);
        using var timeout = new CancellationTokenSource(KillTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Signalled; nothing more can be done.
        }
    }

    private static void Register(LocalPostgresServer server)
    {
        lock (RegistryGate)
        {
            LiveServers.Add(server);
            if (!_exitHandlerInstalled)
            {
                AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
                _exitHandlerInstalled = true;
            }
        }
    }

    private static void Unregister(LocalPostgresServer server)
    {
        lock (RegistryGate)
        {
            LiveServers.Remove(server);
        }
    }

    private static void OnProcessExit(object? sender, EventArgs e)
    {
        LocalPostgresServer[] servers;
        lock (RegistryGate)
        {
            servers = [.. LiveServers];
            LiveServers.Clear();
        }

        // All shut down at once, then each is waited for.
        foreach (var server in servers.Where(s => s.BeginStopAtExit()).ToList())
        {
            server.FinishStopAtExit();
        }
    }

    private static string DatabaseName(string? prefix)
    {
        var name = new StringBuilder(MaxDatabasePrefixLength + 33);
        foreach (var c in string.IsNullOrEmpty(prefix) ? "test" : prefix)
        {
            name.Append(c switch
            {
                >= 'A' and <= 'Z' => (char)(c + ('a' - 'A')),
                (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' => c,
                _ => '_',
            });
        }

        if (char.IsAsciiDigit(name[0]))
        {
            name.Insert(0, 'd');
        }

        name.Length = Math.Min(name.Length, MaxDatabasePrefixLength);
        return name.Append('_').Append(Guid.NewGuid().ToString("N")).ToString();
    }

    // ---- Root and the service user ----

    private static async Task<bool> IsRootAsync(CancellationToken cancellationToken)
    {
        try
        {
            // "Uid:\treal\teffective\tsaved\tfs" (Linux).
            var uid = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            var fields = uid?.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            if (fields is { Length: >= 3 })
            {
                return fields[2] == "0";
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not Linux: ask id.
        }

        var id = FindExecutable("id") ?? throw new InvalidOperationException("Cannot tell whether this process runs as root: /proc/self/status is unreadable and id is not on PATH.");
        var result = await RunAsync(id, ["-u"], workingDirectory: null, ToolTimeout, cancellationToken).ConfigureAwait(false);
        return result.ExitCode == 0 && result.Output.Trim() == "0";
    }

    private static async Task<ServiceAccount> EnsureServiceAccountAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _serviceAccount) is { } known)
        {
            return known;
        }

        var id = FindExecutable("id") ?? throw new InvalidOperationException("id is not on PATH; it is needed to look up the user " + ServiceUser + ".");
        for (var attempt = 1; ; attempt++)
        {
            if ((await RunAsync(id, ["-u", ServiceUser], null, ToolTimeout, cancellationToken).ConfigureAwait(false)).ExitCode == 0)
            {
                break;
            }

            var useradd = FindExecutable("useradd")
                ?? throw new InvalidOperationException($"PostgreSQL cannot run as root, and the user {ServiceUser} to run it as does not exist and cannot be created: useradd was not found. Create the user (useradd --system --no-create-home --shell /usr/sbin/nologin {ServiceUser}) or run the tests as a non-root user.");
            var created = await RunAsync(useradd, ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ServiceUser], null, ToolTimeout, cancellationToken).ConfigureAwait(false);

            // 0: created; 9: the name is taken (another process created it meanwhile).
            if (created.ExitCode is 0 or 9)
            {
                break;
            }

            // Another useradd may hold the lock on /etc/passwd: look again after a moment.
            if (attempt == 5)
            {
                throw new InvalidOperationException($"PostgreSQL cannot run as root, and creating the user {ServiceUser} to run it as failed (useradd exit code {created.ExitCode}): {created.Output}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt), cancellationToken).ConfigureAwait(false);
        }

        ServiceAccount account;
        if (FindExecutable("runuser") is { } runuser)
        {
            account = new ServiceAccount(runuser, UseRunuser: true);
        }
        else if (FindExecutable("su") is { } su)
        {
            account = new ServiceAccount(su, UseRunuser: false);
        }
        else
        {
            throw new InvalidOperationException($"PostgreSQL cannot run as root, and neither runuser nor su was found to run it as {ServiceUser}. Install util-linux, or run the tests as a non-root user.");
        }

        Volatile.Write(ref _serviceAccount, account);
        return account;
    }

    private static (string File, IReadOnlyList<string> Arguments) AsServiceUser(ServiceAccount? account, string file, IReadOnlyList<string> arguments)
    {
        if (account is null)
        {
            return (file, arguments);
        }

        if (account.UseRunuser)
        {
            return (account.Runner, ["-u", ServiceUser, "--", file, .. arguments]);
        }

        return (account.Runner, ["-s", "/bin/sh", ServiceUser, "-c", string.Join(' ', new[] { file }.Concat(arguments).Select(Quote))]);
    }

    [UnsupportedOSPlatform("windows")]
    private static async Task<string> CreateRootDirectoryAsync(ServiceAccount? account, CancellationToken cancellationToken)
    {
        // The socket path must stay short (the limit is 104 bytes on macOS, 108 on Linux) and have no separators, and the
        // service user must be able to reach the directory: as root, or when TMPDIR does not fit, use /tmp.
        var temp = Path.GetTempPath();
        var candidate = Path.Combine(temp, "billing-pg-" + Guid.NewGuid().ToString("N"), "sock", ".s.PGSQL.65535");
        if (account is not null || candidate.Length > MaxSocketPathLength || candidate.Any(c => c is ',' or '"' or '\'' || char.IsWhiteSpace(c)))
        {
            temp = "/tmp";
        }

        string root;
        do
        {
            root = Path.Combine(temp, "billing-pg-" + Guid.NewGuid().ToString("N"));
        }
        while (Directory.Exists(root));

        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(root, Private);
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "sock"), Private);
            if (account is not null)
            {
                var chown = FindExecutable("chown") ?? throw new InvalidOperationException("chown is not on PATH; it is needed to give the server directory to " + ServiceUser + ".");
                var result = await RunAsync(chown, ["-R", ServiceUser + ":", root], null, ToolTimeout, cancellationToken).ConfigureAwait(false);
                if (result.ExitCode != 0)
                {
                    throw new InvalidOperationException($"chown -R {ServiceUser}: {root} failed with exit code {result.ExitCode}: {result.Output}");
                }
            }

            return root;
        }
        catch
        {
            ServerProcesses.DeleteDirectory(root);
            throw;
        }
    }

    // ---- Processes ----

    private static ProcessStartInfo CreateStartInfo(string file, IEnumerable<string> arguments, string? workingDirectory)
    {
        var info = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? string.Empty,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        // libpq and the server read PG* variables (PGHOST, PGOPTIONS, PGDATA...): none of the caller's may leak in.
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        info.Environment["LC_ALL"] = "C";
        return info;
    }

    private static async Task<ToolResult> RunAsync(string file, IEnumerable<string> arguments, string? workingDirectory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var process = new Process { StartInfo = CreateStartInfo(file, arguments, workingDirectory) };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"Could not start {file}: {e.Message}", e);
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var error = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await KillAsync(process).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"{Path.GetFileName(file)} did not finish within {timeout.TotalSeconds:0.###} s.");
        }

        var text = (await output.ConfigureAwait(false) + await error.ConfigureAwait(false)).Trim();
        return new ToolResult(process.ExitCode, text);
    }

    private static IEnumerable<string> SearchDirectories()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
    }

    private static string? FindExecutable(string name) =>
        SearchDirectories().Select(d => Path.Combine(d, name)).FirstOrDefault(IsExecutable);

    private static bool IsExecutable(string path)
    {
        if (OperatingSystem.IsWindows() || !File.Exists(path))
        {
            return false;
        }

        const UnixFileMode AnyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        return (File.GetUnixFileMode(path) & AnyExecute) != 0;
    }

    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private enum StartOutcome
    {
        Ready,
        Exited,
        TimedOut,
    }

    private sealed record ToolResult(int ExitCode, string Output);

    private sealed record ServiceAccount(string Runner, bool UseRunuser);

    private sealed record Binaries(string Directory)
    {
        public string InitDb => Path.Combine(Directory, "initdb");

        public string Postgres => Path.Combine(Directory, "postgres");

        public string? Tool(string name)
        {
            var beside = Path.Combine(Directory, name);
            return IsExecutable(beside) ? beside : FindExecutable(name);
        }

        public static Binaries Find()
        {
            var overridden = Environment.GetEnvironmentVariable(BinDirectoryVariable);
            if (!string.IsNullOrWhiteSpace(overridden))
            {
                return HasServer(overridden)
                    ? new Binaries(Path.GetFullPath(overridden))
                    : throw new InvalidOperationException($"{BinDirectoryVariable} is set to '{overridden}', which does not contain the PostgreSQL server binaries initdb and postgres. Point it at a PostgreSQL bin directory (e.g. /usr/lib/postgresql/15/bin) or unset it.");
            }

            var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
            foreach (var directory in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                var initdb = Path.Combine(directory, "initdb");
                if (!IsExecutable(initdb))
                {
                    continue;
                }

                // /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb: postgres is beside the target.
                var target = File.ResolveLinkTarget(initdb, returnFinalTarget: true)?.FullName;
                var real = target is null ? null : Path.GetDirectoryName(target);
                if (real is not null && HasServer(real))
                {
                    return new Binaries(real);
                }

                if (HasServer(directory))
                {
                    return new Binaries(Path.GetFullPath(directory));
                }
            }

            if (System.IO.Directory.Exists(DebianPackageRoot))
            {
                var newest = System.IO.Directory.EnumerateDirectories(DebianPackageRoot)
                    .Select(d => (Version: ParseVersion(Path.GetFileName(d)), Bin: Path.Combine(d, "bin")))
                    .Where(v => v.Version is not null && HasServer(v.Bin))
                    .OrderByDescending(v => v.Version)
                    .FirstOrDefault();
                if (newest.Bin is not null)
                {
                    return new Binaries(newest.Bin);
                }
            }

            throw new InvalidOperationException(NotFoundMessage);
        }

        private static bool HasServer(string directory) =>
            IsExecutable(Path.Combine(directory, "initdb")) && IsExecutable(Path.Combine(directory, "postgres"));

        private static Version? ParseVersion(string name) =>
            int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var major) ? new Version(major, 0)
            : Version.TryParse(name, out var version) ? version
            : null;
    }
}
