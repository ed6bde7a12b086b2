namespace Billing.Usage;

/// <summary>How a meter turns a period's usage events into one number.</summary>
public enum MeterAggregation
{
    /// <summary>The sum of the events' quantities.</summary>
    Sum = 0,

    /// <summary>The number of events (quantities are ignored).</summary>
    Count = 1,

    /// <summary>The largest quantity seen in the period.</summary>
    Max = 2,

    /// <summary>
    /// The quantity of the latest event by timestamp; events with the same timestamp are ordered by idempotency key
    /// (ordinal), so the answer never depends on arrival order.
    /// </summary>
    Last = 3,

    /// <summary>The number of distinct values of one event property (for example distinct user ids).</summary>
    UniqueCount = 4,
}
