using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.Versioning;
using System.Text;

namespace Billing.Testing.Servers;

/// <summary>
/// A throwaway Redis server started from the machine's <c>redis-server</c> for tests: listening on 127.0.0.1 at a free
/// port, working in a new temporary directory, with nothing persisted (<c>save ""</c>, <c>appendonly no</c>) unless the
/// options say otherwise. It can be crashed (<see cref="KillAsync"/>) and started again on the same port
/// (<see cref="RestartAsync"/>) to test how a client survives a server that goes away.
/// </summary>
/// <remarks>
/// <para><b>Binary.</b> <c>redis-server</c> comes from <see cref="LocalRedisOptions.ServerPath"/> when set (nothing else is
/// tried), else from the first <c>redis-server</c> on <c>PATH</c>, then <c>/usr/local/bin</c> and <c>/usr/bin</c>. When it
/// is not found the start fails with an <see cref="InvalidOperationException"/> that says what to install
/// (<c>apt-get install -y redis-server</c> on Debian); it never skips silently. Redis 6 or later (7.0 is the reference) on
/// Linux or macOS; Windows is not supported (<see cref="PlatformNotSupportedException"/>). Redis runs as the current user,
/// root included (unlike PostgreSQL it does not refuse to). The <c>redis-server</c> system service that Debian's package
/// installs listens on port 6379 and does not interfere: this server always takes a free port.</para>
/// <para><b>Files and output.</b> The working directory (where persistence files would go) holds <c>server.log</c>, which
/// receives the server's output, never the test runner's console. Start failures and timeouts include the end of the log
/// in the exception message.</para>
/// <para><b>Commands.</b> <see cref="ExecuteAsync(string[])"/> is a minimal RESP2 client on a raw TCP connection, enough
/// to prepare and inspect the server in tests; the code under test uses its own client with
/// <see cref="ConfigurationString"/> or <see cref="EndPoint"/>.</para>
/// <para><b>Lifetime.</b> <see cref="DisposeAsync"/> kills the server and deletes its directory. A server not disposed
/// is stopped by its watchdog shell, which sends it SIGTERM when its standard input closes and then deletes the directory:
/// at a normal exit (<see cref="AppDomain.ProcessExit"/> closes it and waits), and when the process is killed or crashes,
/// even during its exit handlers (VSTest kills its test host shortly after the run). No orphan keeps running.</para>
/// <para>All members are thread-safe; <see cref="KillAsync"/>, <see cref="RestartAsync"/> and <see cref="DisposeAsync"/>
/// run one at a time.</para>
/// </remarks>
public sealed class LocalRedisServer : IAsyncDisposable
{
    private const string LoopbackHost = "127.0.0.1";
    private const string ServerName = "redis-server";
    private const string StopRequestedFile = "stop-requested";
    private const int PortAttempts = 5;
    private const int MaxLineLength = 1 << 20;
    private const int MaxBulkLength = 512 << 20;

    private const string InstallHint = "Install it: apt-get install -y redis-server (Debian).";

    private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);
    private static readonly string[] ReservedSettings =
        ["port", "bind", "dir", "daemonize", "logfile", "pidfile", "unixsocket", "tls-port", "supervised"];

    private static readonly Lock RegistryGate = new();
    private static readonly HashSet<LocalRedisServer> LiveServers = [];
    private static readonly Lazy<Task<LocalRedisServer>> SharedServer =
        new(() => Task.Run(() => StartCoreAsync(new LocalRedisOptions(), shared: true, CancellationToken.None)), LazyThreadSafetyMode.ExecutionAndPublication);
    private static bool _exitHandlerInstalled;

    private readonly string _binary;
    private readonly IReadOnlyList<string> _settings;
    private readonly TimeSpan _startTimeout;
    private readonly bool _shared;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private readonly Lock _gate = new();
    private Process? _process;
    private bool _disposed;

    private LocalRedisServer(string binary, IReadOnlyList<string> settings, TimeSpan startTimeout, string rootDirectory, Process process, int port, bool shared)
    {
        _binary = binary;
        _settings = settings;
        _startTimeout = startTimeout;
        RootDirectory = rootDirectory;
        _process = process;
        _shared = shared;
        Port = port;
        EndPoint = LoopbackHost + ":" + port.ToString(CultureInfo.InvariantCulture);
        ConfigurationString = EndPoint + ",abortConnect=false,allowAdmin=true";
    }

    /// <summary>The address the server listens on: always <c>127.0.0.1</c> (never other interfaces).</summary>
    public string Host { get; } = LoopbackHost;

    /// <summary>The TCP port the server listens on, chosen free at start and kept by <see cref="RestartAsync"/>.</summary>
    public int Port { get; }

    /// <summary>The server's address as <c>127.0.0.1:port</c>.</summary>
    public string EndPoint { get; }

    /// <summary>
    /// A StackExchange.Redis configuration string for the server: <c>127.0.0.1:port,abortConnect=false,allowAdmin=true</c>.
    /// </summary>
    /// <remarks><c>abortConnect=false</c> lets a client be created while the server is down (after <see cref="KillAsync"/>)
    /// and reconnect once it is back; <c>allowAdmin=true</c> allows admin commands such as <c>FLUSHALL</c> and
    /// <c>SCRIPT FLUSH</c> through the client's server API.</remarks>
    public string ConfigurationString { get; }

    /// <summary>The server's working directory (log, and persistence files if enabled); deleted on dispose.</summary>
    internal string RootDirectory { get; }

    /// <summary>
    /// Starts a new throwaway server: <c>redis-server</c> on 127.0.0.1 at a free port in a new temporary directory, and
    /// waits until it answers <c>PING</c>.
    /// </summary>
    /// <param name="options">How to configure the server; <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels the start; whatever was started is killed and deleted.</param>
    /// <returns>The running server; dispose it to kill it and delete its files.</returns>
    /// <remarks>
    /// The port is found by binding port 0 on 127.0.0.1; when another process takes it before the server binds it, the start
    /// is retried with a new port (up to 5 times). <see cref="LocalRedisOptions.StartTimeout"/> bounds the whole start.
    /// </remarks>
    /// <exception cref="InvalidOperationException"><c>redis-server</c> was not found (the message says what to install), or
    /// the server exited during startup (the message includes the end of its log).</exception>
    /// <exception cref="TimeoutException">The server did not answer <c>PING</c> within the start timeout (the message
    /// includes the end of its log).</exception>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="PlatformNotSupportedException">On Windows.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    public static Task<LocalRedisServer> StartAsync(LocalRedisOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LocalRedisOptions();
        Validate(options);
        return StartCoreAsync(options, shared: false, cancellationToken);
    }

    /// <summary>
    /// The process-wide shared server, started with the default options on the first call; every call returns the same
    /// instance.
    /// </summary>
    /// <returns>The shared server.</returns>
    /// <remarks>
    /// <para>Thread-safe: concurrent first calls start one server. It is killed and deleted when the process exits.</para>
    /// <para><see cref="DisposeAsync"/> does nothing on the shared server (other tests are using it), so <c>await using</c>
    /// on it is harmless; <see cref="KillAsync"/> and <see cref="RestartAsync"/> throw. Give each test its own keys (a
    /// unique prefix), and do not call <see cref="FlushAllAsync"/> on it while other tests may be running: start an own
    /// server for that.</para>
    /// <para>When the start fails, the failure is kept: every later call gets the same exception at once instead of waiting
    /// for another timeout.</para>
    /// </remarks>
    public static Task<LocalRedisServer> SharedAsync() => SharedServer.Value;

    /// <summary>Sends one command to the server on a new connection and returns its reply.</summary>
    /// <param name="command">The command name and its arguments, each sent as a RESP bulk string (UTF-8), for example
    /// <c>"SET", "key", "value"</c>.</param>
    /// <returns>The reply: a simple or bulk string as <see cref="string"/> (UTF-8), an integer as <see cref="long"/>, a null
    /// bulk string or null array as <see langword="null"/>, an array as <c>object?[]</c> of these.</returns>
    /// <remarks>Each call opens and closes its own connection, so calls work the same before and after
    /// <see cref="RestartAsync"/>. Each call is limited to 10 seconds.</remarks>
    /// <exception cref="ArgumentException"><paramref name="command"/> is empty or contains <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The server replied with an error (the message includes it, for example
    /// <c>ERR unknown command</c> or <c>NOSCRIPT</c>).</exception>
    /// <exception cref="SocketException">The server does not accept connections (for example after
    /// <see cref="KillAsync"/>).</exception>
    /// <exception cref="IOException">The connection was closed before the whole reply arrived.</exception>
    /// <exception cref="TimeoutException">No whole reply within 10 seconds.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    public Task<object?> ExecuteAsync(params string[] command) => ExecuteAsync(command, CancellationToken.None);

    /// <summary>Sends one command to the server on a new connection and returns its reply.</summary>
    /// <param name="command">The command name and its arguments, each sent as a RESP bulk string (UTF-8).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The reply, as described at <see cref="ExecuteAsync(string[])"/>.</returns>
    /// <remarks>See <see cref="ExecuteAsync(string[])"/>.</remarks>
    /// <exception cref="ArgumentException"><paramref name="command"/> is empty or contains <see langword="null"/>.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="command"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The server replied with an error (the message includes it).</exception>
    /// <exception cref="SocketException">The server does not accept connections.</exception>
    /// <exception cref="IOException">The connection was closed before the whole reply arrived.</exception>
    /// <exception cref="TimeoutException">No whole reply within 10 seconds.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    public async Task<object?> ExecuteAsync(IEnumerable<string> command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        string[] arguments = [.. command];
        if (arguments.Length == 0 || arguments.Any(a => a is null))
        {
            throw new ArgumentException("A command needs a name and must not contain null arguments.", nameof(command));
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(CommandTimeout);
        try
        {
            return await SendAsync(Port, arguments, limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Redis on {EndPoint} did not reply to {arguments[0]} within {CommandTimeout.TotalSeconds:0.###} s.");
        }
    }

    /// <summary>Deletes every key in every database (<c>FLUSHALL</c>).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the server has deleted the keys.</returns>
    /// <remarks>Loaded Lua scripts are kept; send <c>SCRIPT FLUSH</c> with <see cref="ExecuteAsync(string[])"/> to drop
    /// them too. On the shared server this deletes other tests' keys as well.</remarks>
    /// <exception cref="InvalidOperationException">The server replied with an error.</exception>
    /// <exception cref="SocketException">The server does not accept connections (for example after
    /// <see cref="KillAsync"/>).</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    public async Task FlushAllAsync(CancellationToken cancellationToken = default)
    {
        var reply = await ExecuteAsync(["FLUSHALL"], cancellationToken).ConfigureAwait(false);
        if (reply is not "OK")
        {
            throw new InvalidOperationException($"Redis on {EndPoint} replied to FLUSHALL with '{reply}' instead of OK.");
        }
    }

    /// <summary>
    /// Kills the server with <c>SIGKILL</c>, as a crash would: connected clients see their connections drop, new connections
    /// are refused, and every key is lost (nothing is persisted by default). The port and directory are kept for
    /// <see cref="RestartAsync"/>.
    /// </summary>
    /// <returns>A task that completes when the server's port no longer accepts connections.</returns>
    /// <remarks>Does nothing when the server is already down (killed, or exited on its own).</remarks>
    /// <exception cref="InvalidOperationException">On the shared server (other tests are using it).</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    public async Task KillAsync()
    {
        ThrowIfShared(nameof(KillAsync));
        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            Process? process;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                process = _process;
                _process = null;
            }

            if (process is not null)
            {
                await KillAndWaitAsync(process, Port).ConfigureAwait(false);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Starts the server again on the same port, in the same directory and with the same options, and waits until it answers
    /// <c>PING</c>. When it is running it is first killed as by <see cref="KillAsync"/>.
    /// </summary>
    /// <param name="cancellationToken">Cancels the start; whatever was started is killed (the server stays down).</param>
    /// <returns>A task that completes when the server answers <c>PING</c>.</returns>
    /// <remarks>The new server starts empty, unless persistence was enabled through
    /// <see cref="LocalRedisOptions.Settings"/> (it then loads its files from the directory). Loaded Lua scripts are gone
    /// either way. <see cref="LocalRedisOptions.StartTimeout"/> bounds the start; after a failure the server is down and
    /// the call can be repeated.</remarks>
    /// <exception cref="InvalidOperationException">On the shared server; or the server exited during startup, for example
    /// because another process took the port meanwhile (the message includes the end of its log).</exception>
    /// <exception cref="TimeoutException">The server did not answer <c>PING</c> within the start timeout.</exception>
    /// <exception cref="ObjectDisposedException">The server was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfShared(nameof(RestartAsync));
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("LocalRedisServer runs redis-server on Linux and macOS only.");
        }

        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Process? old;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                old = _process;
                _process = null;
            }

            if (old is not null)
            {
                await KillAndWaitAsync(old, Port).ConfigureAwait(false);
            }

            var clock = Stopwatch.StartNew();
            var (process, outcome, log) = await LaunchAsync(_binary, _settings, RootDirectory, Port, clock, _startTimeout, cancellationToken).ConfigureAwait(false);
            if (process is null)
            {
                throw outcome == StartOutcome.TimedOut
                    ? new TimeoutException($"Redis did not answer PING on {EndPoint} within {_startTimeout.TotalSeconds:0.###} s after the restart. The end of its log:{Environment.NewLine}{log}")
                    : new InvalidOperationException($"Redis exited while restarting on {EndPoint}{(IsPortTaken(log) ? " (another process took the port meanwhile)" : string.Empty)}. The end of its log:{Environment.NewLine}{log}");
            }

            bool disposedMeanwhile;
            lock (_gate)
            {
                // The process exit handler may have run meanwhile.
                disposedMeanwhile = _disposed;
                if (!disposedMeanwhile)
                {
                    _process = process;
                }
            }

            if (disposedMeanwhile)
            {
                await KillAndWaitAsync(process, Port).ConfigureAwait(false);
                throw new ObjectDisposedException(nameof(LocalRedisServer));
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Kills the server (<c>SIGKILL</c>) and deletes its directory.</summary>
    /// <returns>A task that completes when the server's port no longer accepts connections and its files are deleted.</returns>
    /// <remarks>
    /// Idempotent and thread-safe. Does nothing on the instance returned by <see cref="SharedAsync"/>, which is killed when
    /// the process exits. Deleting the directory is best effort (three attempts); a failure leaves it in the temporary
    /// directory and does not throw.
    /// </remarks>
    public async ValueTask DisposeAsync()
    {
        if (_shared)
        {
            return;
        }

        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            Process? process;
            lock (_gate)
            {
                if (_disposed)
                {
                    return;
                }

                _disposed = true;
                process = _process;
                _process = null;
            }

            Unregister(this);
            if (process is not null)
            {
                await KillAndWaitAsync(process, Port).ConfigureAwait(false);
            }

            for (var attempt = 1; !ServerProcesses.DeleteDirectory(RootDirectory) && attempt < 3; attempt++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private void ThrowIfShared(string operation)
    {
        if (_shared)
        {
            throw new InvalidOperationException($"{operation} is not allowed on the shared server: other tests are using it. Start an own server with LocalRedisServer.StartAsync.");
        }
    }

    private static async Task<LocalRedisServer> StartCoreAsync(LocalRedisOptions options, bool shared, CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("LocalRedisServer runs redis-server on Linux and macOS only.");
        }

        return await StartUnixAsync(options, shared, cancellationToken).ConfigureAwait(false);
    }

    [UnsupportedOSPlatform("windows")]
    private static async Task<LocalRedisServer> StartUnixAsync(LocalRedisOptions options, bool shared, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var binary = FindServer(options.ServerPath);
        List<string> settings = [];
        foreach (var (name, value) in options.Settings)
        {
            settings.AddRange(["--" + name, value]);
        }

        var root = CreateRootDirectory();
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                var port = ServerProcesses.FreePort();
                var (process, outcome, log) = await LaunchAsync(binary, settings, root, port, clock, options.StartTimeout, cancellationToken).ConfigureAwait(false);
                if (process is not null)
                {
                    var server = new LocalRedisServer(binary, settings, options.StartTimeout, root, process, port, shared);
                    Register(server);
                    return server;
                }

                if (outcome == StartOutcome.TimedOut)
                {
                    throw new TimeoutException($"Redis did not answer PING on {LoopbackHost}:{port} within {options.StartTimeout.TotalSeconds:0.###} s. The end of its log:{Environment.NewLine}{log}");
                }

                if (!IsPortTaken(log))
                {
                    throw new InvalidOperationException($"Redis ({binary}) exited during startup on {LoopbackHost}:{port}. The end of its log:{Environment.NewLine}{log}");
                }

                if (attempt == PortAttempts)
                {
                    throw new InvalidOperationException($"Redis could not listen on a free port: another process took each of the {PortAttempts} ports tried before the server bound it. The end of its log:{Environment.NewLine}{log}");
                }
            }
        }
        catch
        {
            ServerProcesses.DeleteDirectory(root);
            throw;
        }
    }

    private static void Validate(LocalRedisOptions options)
    {
        if (options.StartTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"StartTimeout must be positive (was {options.StartTimeout}).", nameof(options));
        }

        if (options.ServerPath is { } path && string.IsNullOrWhiteSpace(path))
        {
            throw new ArgumentException("ServerPath must be null (search PATH) or a path to redis-server, not empty.", nameof(options));
        }

        foreach (var (name, value) in options.Settings)
        {
            if (string.IsNullOrEmpty(name) || name[0] == '-' || name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                throw new ArgumentException($"The setting name '{name}' is not valid: it must be non-empty, not start with '-', and have no white space or control characters.", nameof(options));
            }

            if (ReservedSettings.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"The setting '{name}' is chosen by LocalRedisServer and cannot be overridden.", nameof(options));
            }

            if (value is null || value.Any(char.IsControl))
            {
                throw new ArgumentException($"The setting '{name}' has a null value or one with control characters.", nameof(options));
            }
        }
    }

    /// <summary>Starts <c>redis-server</c> under its watchdog shell and waits until it answers; kills it unless ready.</summary>
    [UnsupportedOSPlatform("windows")]
    private static async Task<(Process? Process, StartOutcome Outcome, string Log)> LaunchAsync(
        string binary, IReadOnlyList<string> settings, string root, int port, Stopwatch clock, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var logStart = ServerProcesses.LogLength(root);
        var (process, wrapperOutput) = StartServerProcess(binary, settings, root, port);
        StartOutcome outcome;
        try
        {
            outcome = await WaitUntilReadyAsync(process, root, port, clock, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await KillAndWaitAsync(process, port: null).ConfigureAwait(false);
            throw;
        }

        if (outcome == StartOutcome.Ready)
        {
            return (process, outcome, string.Empty);
        }

        await KillAndWaitAsync(process, port: null).ConfigureAwait(false);
        var log = ServerProcesses.LogTail(root, logStart);
        lock (wrapperOutput)
        {
            if (wrapperOutput.Length > 0)
            {
                log += Environment.NewLine + wrapperOutput.ToString().TrimEnd();
            }
        }

        return (null, outcome, log);
    }

    [UnsupportedOSPlatform("windows")]
    private static (Process Process, StringBuilder WrapperOutput) StartServerProcess(string binary, IReadOnlyList<string> settings, string root, int port)
    {
        List<string> arguments =
        [
            "--port", port.ToString(CultureInfo.InvariantCulture),
            "--bind", LoopbackHost,
            "--dir", root,
            "--daemonize", "no",
            "--logfile", string.Empty,
            "--save", string.Empty,
            "--appendonly", "no",
            .. settings,
        ];

        // The shell is a watchdog: it runs redis-server in the background and, when its standard input (a pipe from this
        // process) reaches end of file, stops it with SIGTERM and deletes the directory. That happens when this process dies
        // in any way without killing it first, so no orphan server survives. KillAsync and DisposeAsync kill the shell, the
        // watchdog and the server together with SIGKILL, so none of that runs then.
        var stopFlag = Quote(Path.Combine(root, StopRequestedFile));
        var script = string.Join(
            '\n',
            "exec >>" + Quote(Path.Combine(root, ServerProcesses.LogFile)) + " 2>&1",
            "exec 3<&0",
            string.Join(' ', new[] { binary }.Concat(arguments).Select(Quote)) + " </dev/null 3<&- &",
            "rs=$!",
            "( read -r line <&3; : >" + stopFlag + "; kill -TERM \"$rs\" 2>/dev/null ) </dev/null &",
            "watchdog=$!",
            "exec 3<&-",
            "wait \"$rs\"",
            "status=$?",
            "kill \"$watchdog\" 2>/dev/null",
            "if [ -e " + stopFlag + " ]; then rm -rf " + Quote(root) + "; fi",
            "exit \"$status\"");
        var info = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = root,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        info.Environment["LC_ALL"] = "C";
        var process = new Process { StartInfo = info };
        try
        {
            // The shell writes here only when it cannot start: keep that for the error message, off the console.
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
            throw new InvalidOperationException($"Could not start /bin/sh to run {binary}: {e.Message}", e);
        }
    }

    private static async Task<StartOutcome> WaitUntilReadyAsync(Process process, string root, int port, Stopwatch clock, TimeSpan timeout, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (process.HasExited)
            {
                return StartOutcome.Exited;
            }

            if (await IsReadyAsync(root, port, cancellationToken).ConfigureAwait(false))
            {
                // A server that lost the port to another one may still be shutting down: it must be alive to be ours.
                return process.HasExited ? StartOutcome.Exited : StartOutcome.Ready;
            }

            if (clock.Elapsed >= timeout)
            {
                return StartOutcome.TimedOut;
            }

            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Answers <c>PING</c> with <c>PONG</c>, and is the server working in <paramref name="root"/> (not another
    /// process that took the port).</summary>
    private static async Task<bool> IsReadyAsync(string root, int port, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(ProbeTimeout);
        try
        {
            if (await SendAsync(port, ["PING"], limit.Token).ConfigureAwait(false) is not "PONG")
            {
                return false;
            }

            return await SendAsync(port, ["CONFIG", "GET", "dir"], limit.Token).ConfigureAwait(false) is object?[] { Length: 2 } reply
                && reply[1] is string dir
                && dir.EndsWith(Path.GetFileName(root), StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidOperationException or InvalidDataException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Not listening yet, or loading (-LOADING), or the probe took too long: try again.
            return false;
        }
    }

    private static bool IsPortTaken(string log) => log.Contains("Address already in use", StringComparison.Ordinal);

    [UnsupportedOSPlatform("windows")]
    private static string CreateRootDirectory()
    {
        var temp = Path.GetTempPath();
        string root;
        do
        {
            root = Path.Combine(temp, "billing-redis-" + Guid.NewGuid().ToString("N"));
        }
        while (Directory.Exists(root));

        Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return root;
    }

    private static string FindServer(string? configured)
    {
        if (configured is not null)
        {
            var full = Path.GetFullPath(configured);
            return IsExecutable(full)
                ? full
                : throw new InvalidOperationException($"redis-server was not found at '{configured}' (LocalRedisOptions.ServerPath). {InstallHint}");
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/bin", "/usr/bin"])
            .Select(d => Path.Combine(d, ServerName))
            .FirstOrDefault(IsExecutable)
            ?? throw new InvalidOperationException($"redis-server was not found on PATH or in /usr/local/bin or /usr/bin. {InstallHint}");
    }

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

    // ---- Processes ----

    /// <summary>Kills the shell, the watchdog and the server with <c>SIGKILL</c>, waits for the shell, then (when
    /// <paramref name="port"/> is given) until the port refuses connections, since the server dies asynchronously.</summary>
    private static async Task KillAndWaitAsync(Process process, int? port)
    {
        ServerProcesses.KillTree(process);
        using (var timeout = new CancellationTokenSource(KillTimeout))
        {
            try
            {
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
                if (port is { } p)
                {
                    while (await AcceptsConnectionsAsync(p, timeout.Token).ConfigureAwait(false))
                    {
                        await Task.Delay(PollInterval, timeout.Token).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Signalled; nothing more can be done.
            }
        }

        process.Dispose();
    }

    private static async Task<bool> AcceptsConnectionsAsync(int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static void Register(LocalRedisServer server)
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

    private static void Unregister(LocalRedisServer server)
    {
        lock (RegistryGate)
        {
            LiveServers.Remove(server);
        }
    }

    private static void OnProcessExit(object? sender, EventArgs e)
    {
        LocalRedisServer[] servers;
        lock (RegistryGate)
        {
            servers = [.. LiveServers];
            LiveServers.Clear();
        }

        List<(Process? Process, string Root)> stopping = [];
        foreach (var server in servers)
        {
            Process? process;
            lock (server._gate)
            {
                if (server._disposed)
                {
                    continue;
                }

                server._disposed = true;
                process = server._process;
                server._process = null;
            }

            if (process is not null)
            {
                RequestStop(process);
            }

            stopping.Add((process, server.RootDirectory));
        }

        // Each watchdog stops its server and the shell then deletes the directory, so the stop completes even when this
        // process is killed meanwhile (VSTest kills its test host about 100 ms after the run). Killing the tree from here
        // first could be cut short between the shell and the server: a stopped server and its directory were left.
        foreach (var (process, root) in stopping)
        {
            if (process is not null)
            {
                if (!process.WaitForExit(KillTimeout))
                {
                    ServerProcesses.KillTree(process);
                    process.WaitForExit(KillTimeout);
                }

                process.Dispose();
            }

            ServerProcesses.DeleteDirectory(root);
        }
    }

    /// <summary>Closes the shell's standard input: its watchdog stops the server with SIGTERM and the shell deletes the
    /// directory when the server has exited.</summary>
    private static void RequestStop(Process process)
    {
        try
        {
            process.StandardInput.Close();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            // Already exited.
        }
    }

    // ---- RESP2 ----

    private static async Task<object?> SendAsync(int port, string[] command, CancellationToken cancellationToken)
    {
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
        var stream = client.GetStream();
        await stream.WriteAsync(Encode(command), cancellationToken).ConfigureAwait(false);
        return await new RespReader(stream, command[0]).ReadAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The command as a RESP array of bulk strings: <c>*N\r\n</c>, then <c>$len\r\nbytes\r\n</c> per argument.</summary>
    private static byte[] Encode(string[] command)
    {
        using var buffer = new MemoryStream();
        void Write(string text) => buffer.Write(Encoding.ASCII.GetBytes(text));
        Write("*" + command.Length.ToString(CultureInfo.InvariantCulture) + "\r\n");
        foreach (var argument in command)
        {
            var bytes = Encoding.UTF8.GetBytes(argument);
            Write("$" + bytes.Length.ToString(CultureInfo.InvariantCulture) + "\r\n");
            buffer.Write(bytes);
            Write("\r\n");
        }

        return buffer.ToArray();
    }

    private enum StartOutcome
    {
        Ready,
        Exited,
        TimedOut,
    }

    /// <summary>Reads one RESP2 reply from a stream (buffered; the reader is used for one reply only).</summary>
    private sealed class RespReader(Stream stream, string commandName)
    {
        private byte[] _buffer = new byte[4096];
        private int _start;
        private int _end;

        public async Task<object?> ReadAsync(CancellationToken cancellationToken)
        {
            var line = await ReadLineAsync(cancellationToken).ConfigureAwait(false);
            if (line.Length == 0)
            {
                throw new InvalidDataException("Redis sent an empty reply line.");
            }

            var payload = line[1..];
            switch (line[0])
            {
                case '+':
                    return payload;
                case '-':
                    throw new InvalidOperationException($"Redis replied to {commandName} with an error: {payload}");
                case ':':
                    return ParseInteger(payload);
                case '$':
                {
                    var length = ParseInteger(payload);
                    if (length < 0)
                    {
                        return null;
                    }

                    if (length > MaxBulkLength)
                    {
                        throw new InvalidDataException($"Redis announced a bulk string of {length} bytes, more than the 512 MB allowed.");
                    }

                    var bytes = await ReadExactAsync((int)length + 2, cancellationToken).ConfigureAwait(false);
                    if (bytes[^2] != '\r' || bytes[^1] != '\n')
                    {
                        throw new InvalidDataException("A bulk string in Redis's reply does not end with CRLF.");
                    }

                    return Encoding.UTF8.GetString(bytes, 0, (int)length);
                }

                case '*':
                {
                    var count = ParseInteger(payload);
                    if (count < 0)
                    {
                        return null;
                    }

                    if (count > MaxBulkLength)
                    {
                        throw new InvalidDataException($"Redis announced an array of {count} elements.");
                    }

                    var items = new object?[(int)count];
                    for (var i = 0; i < items.Length; i++)
                    {
                        items[i] = await ReadAsync(cancellationToken).ConfigureAwait(false);
                    }

                    return items;
                }

                default:
                    throw new InvalidDataException($"Redis sent a reply of unknown type '{line[0]}' (RESP2 expected).");
            }
        }

        private static long ParseInteger(string text) =>
            long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
                ? value
                : throw new InvalidDataException($"Redis sent '{text}' where an integer was expected.");

        private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
        {
            var scanned = 0; // bytes after _start already searched (the buffer may be compacted between reads)
            while (true)
            {
                for (var i = _start + Math.Max(scanned, 1); i < _end; i++)
                {
                    if (_buffer[i] == '\n' && _buffer[i - 1] == '\r')
                    {
                        var line = Encoding.UTF8.GetString(_buffer, _start, i - 1 - _start);
                        _start = i + 1;
                        return line;
                    }
                }

                scanned = _end - _start;
                if (_end - _start >= MaxLineLength)
                {
                    throw new InvalidDataException($"Redis sent a reply line longer than {MaxLineLength} bytes.");
                }

                await FillAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        private async Task<byte[]> ReadExactAsync(int count, CancellationToken cancellationToken)
        {
            var result = new byte[count];
            var buffered = Math.Min(count, _end - _start);
            Array.Copy(_buffer, _start, result, 0, buffered);
            _start += buffered;
            if (buffered < count)
            {
                await stream.ReadExactlyAsync(result.AsMemory(buffered), cancellationToken).ConfigureAwait(false);
            }

            return result;
        }

        /// <summary>Reads more bytes after the unread ones (compacting or growing the buffer first).</summary>
        private async Task FillAsync(CancellationToken cancellationToken)
        {
            if (_start > 0)
            {
                Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException("Redis closed the connection before the whole reply arrived.");
            }

            _end += read;
        }
    }
}
