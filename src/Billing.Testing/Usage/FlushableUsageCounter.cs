using Billing.InMemory;
using Billing.Ports;
using Billing.Usage;

namespace Billing.Testing.Usage;

/// <summary>
/// In-memory usage counters that can lose everything at once, like a Redis <c>FLUSHALL</c> or a restart without
/// persistence: <see cref="Flush"/> replaces the <see cref="InMemoryUsageCounter"/> behind it with an empty one. For
/// tests of what the metering service does when a fast counter forgets keys and totals.
/// </summary>
/// <remarks>Thread-safe; a call in flight during <see cref="Flush"/> completes on the counters it started on (as a script
/// already running on Redis does).</remarks>
public sealed class FlushableUsageCounter : IUsageCounter
{
    private InMemoryUsageCounter _inner = new();

    /// <summary>Forgets every key and total.</summary>
    public void Flush() => Volatile.Write(ref _inner, new InMemoryUsageCounter());

    /// <inheritdoc />
    public ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default) =>
        Volatile.Read(ref _inner).RecordAsync(usageEvent, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default) =>
        Volatile.Read(ref _inner).RecordBatchAsync(events, cancellationToken);

    /// <inheritdoc />
    public ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default) =>
        Volatile.Read(ref _inner).GetTotalAsync(counter, cancellationToken);

    /// <inheritdoc />
    public ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default) =>
        Volatile.Read(ref _inner).RebuildAsync(counter, aggregation, events, cancellationToken);
}
