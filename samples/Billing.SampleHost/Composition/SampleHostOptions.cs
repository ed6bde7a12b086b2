namespace Billing.SampleHost.Composition;

/// <summary>The host's configuration section <c>Billing</c> (appsettings.json or environment variables such as
/// <c>Billing__Database__Provider=postgresql</c>).</summary>
internal sealed class SampleHostOptions
{
    public const string Section = "Billing";

    public DatabaseSettings Database { get; set; } = new();

    public RedisSettings Redis { get; set; } = new();

    public TestClockSettings TestClocks { get; set; } = new();

    /// <summary>
    /// Where usage counters live when Redis is not configured: <c>memory</c> (the embedded default, per process) or
    /// <c>database</c> (the EF Core counter on the billing database). Redis, when configured, always wins.
    /// </summary>
    public string UsageCounters { get; set; } = "memory";

    /// <summary>
    /// An admin API key to make sure of at start (<c>sk_…</c>, at least 32 characters). When empty and no key exists,
    /// the host creates one and prints it once.
    /// </summary>
    public string? BootstrapApiKey { get; set; }
}

internal sealed class DatabaseSettings
{
    /// <summary><c>sqlite</c> (default) or <c>postgresql</c>.</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>The connection string; for SQLite the default is <c>Data Source=data/billing.db</c> (relative to the
    /// working directory).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The PostgreSQL schema (default <c>billing</c>); ignored on SQLite.</summary>
    public string? Schema { get; set; }
}

internal sealed class RedisSettings
{
    /// <summary>A StackExchange.Redis configuration string (for example <c>localhost:6379,abortConnect=false</c>);
    /// empty keeps counters out of Redis.</summary>
    public string? Configuration { get; set; }
}

internal sealed class TestClockSettings
{
    /// <summary>Whether test clocks may be used; null means on in Development, off elsewhere.</summary>
    public bool? Enabled { get; set; }
}
