namespace Billing.Usage;

/// <summary>
/// The state of one counter and the one definition of how an event changes it; every in-process counter (and the
/// durable aggregate in memory) folds events through it, and the Redis and SQL versions mirror it.
/// </summary>
/// <remarks>Not thread-safe: the owner serializes access.</remarks>
public sealed class UsageCounterState
{
    private HashSet<string>? _unique;
    private long _lastTicks = long.MinValue;
    private string? _lastKey;

    /// <summary>The aggregate so far (0 when empty).</summary>
    public long Total { get; private set; }

    /// <summary>The total the counter would have after <paramref name="usageEvent"/>, without applying it.</summary>
    /// <param name="aggregation">The meter's aggregation.</param>
    /// <param name="usageEvent">The event.</param>
    /// <returns>The total after the event.</returns>
    /// <exception cref="OverflowException">A sum or count past <see cref="long.MaxValue"/>.</exception>
    public long Peek(MeterAggregation aggregation, in UsageCounterEvent usageEvent) => aggregation switch
    {
        MeterAggregation.Sum => checked(Total + usageEvent.Quantity),
        MeterAggregation.Count => checked(Total + 1),
        MeterAggregation.Max => Math.Max(Total, usageEvent.Quantity),
        MeterAggregation.Last => IsLater(usageEvent) ? usageEvent.Quantity : Total,
        MeterAggregation.UniqueCount => _unique is not null && _unique.Contains(usageEvent.UniqueValue!) ? Total : checked(Total + 1),
        _ => throw new ArgumentOutOfRangeException(nameof(aggregation), aggregation, "Unknown aggregation."),
    };

    /// <summary>Applies an event.</summary>
    /// <param name="aggregation">The meter's aggregation.</param>
    /// <param name="usageEvent">The event.</param>
    /// <returns>The new total.</returns>
    /// <exception cref="OverflowException">A sum or count past <see cref="long.MaxValue"/> (the state is unchanged).</exception>
    public long Apply(MeterAggregation aggregation, in UsageCounterEvent usageEvent)
    {
        var total = Peek(aggregation, usageEvent);
        Commit(aggregation, usageEvent, total);
        return total;
    }

    /// <summary>Applies an event whose new total <see cref="Peek"/> has just computed (saves computing it twice).</summary>
    internal void Commit(MeterAggregation aggregation, in UsageCounterEvent usageEvent, long total)
    {
        switch (aggregation)
        {
            case MeterAggregation.Last when IsLater(usageEvent):
                _lastTicks = usageEvent.Timestamp.UtcTicks;
                _lastKey = usageEvent.IdempotencyKey;
                break;
            case MeterAggregation.UniqueCount:
                (_unique ??= new HashSet<string>(StringComparer.Ordinal)).Add(usageEvent.UniqueValue!);
                break;
        }

        Total = total;
    }

    private bool IsLater(in UsageCounterEvent e)
    {
        var ticks = e.Timestamp.UtcTicks;
        return ticks > _lastTicks || (ticks == _lastTicks && string.CompareOrdinal(e.IdempotencyKey, _lastKey) > 0);
    }
}
