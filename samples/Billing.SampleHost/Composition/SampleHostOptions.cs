namespace Billing.SampleHost.Composition;

/// <summary>The host's configuration section <c>Billing</c> (appsettings.json or environment variables such as
/// <c>Billing__Database__Provider=postgresql</c>).</summary>
internal sealed class SampleHostOptions
{
    public const string Section = "Billing";

    public DatabaseSettings Database { get; set; } = new();

    public RedisSettings Redis { get; set; } = new();

    public TestClockSettings TestClocks { get; set; } = new();

    /// <summary>The background workers (<c>Billing:Workers:*</c>).</summary>
    public WorkerSettings Workers { get; set; } = new();

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

    /// <summary><c>Billing:ApiKeys</c>: how authentication reads API keys.</summary>
    public ApiKeySettings ApiKeys { get; set; } = new();
}

/// <summary><c>Billing:ApiKeys</c>.</summary>
internal sealed class ApiKeySettings
{
    public static readonly TimeSpan MaxCacheDuration = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long an instance reuses a key row it read to authenticate (default one second; <c>00:00:00</c> reads the
    /// row on every request).
    /// </summary>
    /// <remarks>
    /// Bounds how late a change made elsewhere is seen: a key revoked through another instance (or in the database)
    /// is refused by this one at most this long after the revocation committed. A revocation through this instance,
    /// and an expiry (checked against the clock on every request), take effect on the next request regardless. A key
    /// created anywhere works at once: unknown keys are never cached.
    /// </remarks>
    public TimeSpan CacheDuration { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The problems with these settings (empty when valid).</summary>
    public IReadOnlyList<string> Validate() =>
        CacheDuration < TimeSpan.Zero || CacheDuration > MaxCacheDuration
            ? [$"Billing:ApiKeys:CacheDuration must be from 00:00:00 to {MaxCacheDuration:c}, not {CacheDuration}."]
            : [];
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

/// <summary><c>Billing:Workers</c>: the billing run and the outbox dispatcher, both on by default.</summary>
internal sealed class WorkerSettings
{
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(10);

    public static readonly TimeSpan MaxInterval = TimeSpan.FromDays(1);

    public const int MaxBatchSize = 10_000;

    /// <summary><c>Billing:Workers:BillingRun</c>: renewals, trial ends, draft finalization, payments and dunning
    /// retries of real-time customers (test-clock customers move only when their clock is advanced).</summary>
    public BillingRunWorkerSettings BillingRun { get; set; } = new();

    /// <summary><c>Billing:Workers:Outbox</c>: dispatches committed billing events (for now: structured logs).</summary>
    public OutboxWorkerSettings Outbox { get; set; } = new();

    /// <summary>The problems with these settings, one message per bad key (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        CheckInterval(errors, "Billing:Workers:BillingRun:Interval", BillingRun.Interval);
        CheckInterval(errors, "Billing:Workers:Outbox:Interval", Outbox.Interval);
        if (Outbox.BatchSize is < 1 or > MaxBatchSize)
        {
            errors.Add($"Billing:Workers:Outbox:BatchSize must be 1 to {MaxBatchSize}, not {Outbox.BatchSize}.");
        }

        return errors;
    }

    private static void CheckInterval(List<string> errors, string key, TimeSpan value)
    {
        if (value < MinInterval || value > MaxInterval)
        {
            errors.Add($"{key} must be from {MinInterval.TotalMilliseconds:0} ms to {MaxInterval.TotalHours:0} hours (hh:mm:ss), not {value}.");
        }
    }
}

internal sealed class BillingRunWorkerSettings
{
    /// <summary>Whether this instance runs the billing run (default on). Any number of instances may: they claim
    /// due work with <c>SKIP LOCKED</c> on PostgreSQL.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The pause between runs (default one minute); a run does everything due at its start.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(1);
}

internal sealed class OutboxWorkerSettings
{
    /// <summary>Whether this instance dispatches outbox events (default on). With several instances on one
    /// PostgreSQL database, one at a time holds the checkpoint; the others skip.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The pause when the outbox is drained (default five seconds).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Events per batch (default 100); the checkpoint moves after each batch.</summary>
    public int BatchSize { get; set; } = 100;
}
