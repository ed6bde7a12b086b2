namespace Billing.Testing.Servers;

/// <summary>How <see cref="LocalRedisServer.StartAsync(LocalRedisOptions?, CancellationToken)"/> configures the throwaway server.</summary>
/// <remarks>
/// <para>The options are read once, when the server starts (<see cref="LocalRedisServer.RestartAsync"/> starts it again
/// with the same ones); changing them afterwards has no effect on it.</para>
/// <para>Settings are passed as <c>--name value</c> on the <c>redis-server</c> command line, after the ones this class sets,
/// so an entry in <see cref="Settings"/> wins over the defaults: for example <c>Settings["appendonly"] = "yes"</c> and
/// <c>Settings["appendfsync"] = "always"</c> give a server whose data survives <see cref="LocalRedisServer.KillAsync"/>
/// and <see cref="LocalRedisServer.RestartAsync"/>. The settings that decide where the server listens and where its files
/// are (<c>port</c>, <c>bind</c>, <c>dir</c>, <c>daemonize</c>, <c>logfile</c>, <c>pidfile</c>, <c>unixsocket</c>,
/// <c>tls-port</c>, <c>supervised</c>) are owned by the server class and rejected with <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class LocalRedisOptions
{
    /// <summary>
    /// The <c>redis-server</c> executable to run; <see langword="null"/> (the default) looks for <c>redis-server</c> on
    /// <c>PATH</c>, then in <c>/usr/local/bin</c> and <c>/usr/bin</c>.
    /// </summary>
    /// <remarks>When set, only this path is tried: a missing or non-executable file fails the start with an
    /// <see cref="InvalidOperationException"/> that says what to install.</remarks>
    public string? ServerPath { get; set; }

    /// <summary>How long the start (and each <see cref="LocalRedisServer.RestartAsync"/>) may take before it fails with a
    /// <see cref="TimeoutException"/>; 30 seconds by default. Must be positive.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Extra server settings, passed as <c>--name value</c> (for example <c>["maxmemory"] = "64mb"</c>).</summary>
    /// <remarks>Names must be non-empty, must not start with <c>-</c> and must contain no white space or control characters;
    /// values must not be <see langword="null"/> or contain control characters, and are passed as one argument. See the
    /// class remarks for the names that are rejected. By default the server runs with <c>save ""</c> and
    /// <c>appendonly no</c>: nothing is written to disk.</remarks>
    public IDictionary<string, string> Settings { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
}
