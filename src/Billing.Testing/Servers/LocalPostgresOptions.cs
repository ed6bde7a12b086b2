namespace Billing.Testing.Servers;

/// <summary>How <see cref="LocalPostgresServer.StartAsync(LocalPostgresOptions?, CancellationToken)"/> configures the throwaway server.</summary>
/// <remarks>
/// <para>The options are read once, when the server starts; changing them afterwards has no effect on it.</para>
/// <para>Settings are passed as <c>-c name=value</c> on the <c>postgres</c> command line, after the ones this class sets, so
/// an entry in <see cref="Settings"/> wins over <see cref="Durable"/> and <see cref="MaxConnections"/> (for example
/// <c>Settings["fsync"] = "on"</c>). The settings that decide where the server listens and where its files are
/// (<c>port</c>, <c>listen_addresses</c>, <c>unix_socket_directories</c>, <c>data_directory</c>, <c>config_file</c>,
/// <c>hba_file</c>, <c>ident_file</c>, <c>external_pid_file</c>) are owned by the server class and rejected with
/// <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class LocalPostgresOptions
{
    /// <summary>
    /// Whether the server keeps PostgreSQL's durability defaults. <see langword="false"/> (the default) starts it with
    /// <c>fsync=off</c>, <c>synchronous_commit=off</c> and <c>full_page_writes=off</c> and skips the sync at the end of
    /// <c>initdb</c>: much faster, and safe for data that is deleted with the server anyway (only an operating system crash
    /// can corrupt it).
    /// </summary>
    public bool Durable { get; set; }

    /// <summary>The server's <c>max_connections</c>; 500 by default: test classes run in parallel and each keeps its own
    /// connection pools open (idle connections stay in a pool for minutes), so a shared server needs room for all of them.</summary>
    /// <remarks>Must be at least 1; PostgreSQL itself refuses values not above <c>superuser_reserved_connections</c> (3 by
    /// default), which fails the start with the server's message.</remarks>
    public int MaxConnections { get; set; } = 500;

    /// <summary>How long the whole start may take, <c>initdb</c> included, before it fails with a <see cref="TimeoutException"/>;
    /// 60 seconds by default. Must be positive.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Extra server settings, passed as <c>-c name=value</c> (for example <c>["shared_buffers"] = "64MB"</c>).</summary>
    /// <remarks>Names must be non-empty and contain no <c>=</c>, whitespace or control characters; values must not be
    /// <see langword="null"/>. See the class remarks for the names that are rejected.</remarks>
    public IDictionary<string, string> Settings { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
}
