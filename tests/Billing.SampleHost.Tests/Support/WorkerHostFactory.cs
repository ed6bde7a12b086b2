using Billing.Ports;
using Billing.SampleHost.Workers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.SampleHost.Tests.Support;

/// <summary>
/// The sample host with its background workers on (short real-time intervals; "now" is still the fake
/// <see cref="SampleHostFactory.Clock"/>), delivering outbox events to a <see cref="RecordingSink"/>.
/// </summary>
public class WorkerHostFactory : SampleHostFactory
{
    public WorkerHostFactory()
        : this(null)
    {
    }

    /// <summary>A host on the database in <paramref name="directory"/> (kept), or in a new temp directory.</summary>
    public WorkerHostFactory(string? directory)
        : base(directory)
    {
    }

    public bool BillingRunEnabled { get; init; } = true;

    public bool OutboxEnabled { get; init; } = true;

    public int OutboxBatchSize { get; init; } = 100;

    internal RecordingSink Sink { get; init; } = new();

    internal WorkerStatus Status => Services.GetRequiredService<WorkerStatus>();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:Workers:BillingRun:Enabled", BillingRunEnabled ? "true" : "false");
        builder.UseSetting("Billing:Workers:BillingRun:Interval", "00:00:00.050");
        builder.UseSetting("Billing:Workers:Outbox:Enabled", OutboxEnabled ? "true" : "false");
        builder.UseSetting("Billing:Workers:Outbox:Interval", "00:00:00.050");
        builder.UseSetting("Billing:Workers:Outbox:BatchSize", OutboxBatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    protected override void ConfigureServices(IServiceCollection services)
    {
        services.Replace(ServiceDescriptor.Singleton<IOutboxSink>(Sink));
    }
}

/// <summary>An outbox sink that records what it is given; <see cref="OnDispatch"/> can hold a dispatch.</summary>
internal sealed class RecordingSink : IOutboxSink
{
    private readonly Lock _gate = new();
    private readonly List<OutboxEntry> _entries = [];

    /// <summary>Runs before an entry is recorded (for example to block it).</summary>
    public Func<OutboxEntry, Task>? OnDispatch { get; set; }

    public IReadOnlyList<OutboxEntry> Entries
    {
        get
        {
            lock (_gate)
            {
                return [.. _entries];
            }
        }
    }

    public async ValueTask DispatchAsync(OutboxEntry entry, CancellationToken cancellationToken)
    {
        if (OnDispatch is { } hook)
        {
            await hook(entry);
        }

        lock (_gate)
        {
            _entries.Add(entry);
        }
    }
}

public static class Wait
{
    /// <summary>Polls <paramref name="condition"/> until it holds; fails naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (!await condition())
        {
            if (Environment.TickCount64 > deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(25);
        }
    }

    public static Task Until(Func<bool> condition, TimeSpan timeout, string what) => Until(() => Task.FromResult(condition()), timeout, what);
}

public static class OutboxReader
{
    /// <summary>Every committed outbox entry, in position order.</summary>
    public static async Task<IReadOnlyList<OutboxEntry>> ReadAllAsync(IServiceProvider services)
    {
        var store = services.GetRequiredService<IBillingStore>();
        var all = new List<OutboxEntry>();
        await using var session = await store.BeginAsync();
        while (true)
        {
            var batch = await session.Outbox.ReadAsync(all.Count == 0 ? 0 : all[^1].Position, 1000);
            if (batch.Count == 0)
            {
                return all;
            }

            all.AddRange(batch);
        }
    }
}
