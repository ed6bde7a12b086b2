using Billing.Usage;

namespace Billing.Ports;

/// <summary>
/// The usage counters: per (customer, meter, period) totals with exactly-once recording. The idempotency check, the
/// hard-limit check and the increment of one event happen atomically.
/// </summary>
/// <remarks>
/// <para>
/// Idempotency keys are scoped to the customer and stay taken for the event's dedup window. A duplicate changes
/// nothing and returns the original result; an over-limit event changes nothing and leaves its key free, so the same
/// event can be sent again once the limit allows it.
/// </para>
/// <para>
/// A fast counter keeps each accepted event's <see cref="UsageCounterEvent.AcceptanceToken"/> with its idempotency key
/// and answers a duplicate with it (<see cref="UsageCounterResult.AcceptanceToken"/>); <see cref="RebuildAsync"/> keeps
/// the token of each event it is given. The metering service compares it with the token stored durably to tell a
/// concurrent repeat of an event from a key the counter forgot. A durable counter need not keep tokens (it answers 0).
/// </para>
/// <para>
/// A counter is a fast copy, never the only one: the metering service also stores every accepted event durably and
/// can rebuild a counter from those events with <see cref="RebuildAsync"/> (after a Redis flush or restart).
/// </para>
/// </remarks>
public interface IUsageCounter
{
    /// <summary>
    /// True when the counter is the durable store itself: every event it accepts is stored durably in the same atomic
    /// step, in the table <see cref="IUsageEventStore"/> reads, and its keys are kept for good (the EF Core durable
    /// counter). False (the default) for a fast copy (in memory, Redis) that can lose or forget keys.
    /// </summary>
    /// <remarks>
    /// The metering service relies on it: with a durable counter, an append reporting "already stored" for an event
    /// the counter accepted means a concurrent repeat of the event appended first (never that the counter forgot the
    /// key), so it neither turns the answer into a duplicate nor rebuilds the counter, and does not compare acceptance
    /// tokens; and it skips the checks for a counter that lost its state or forgot a key, which cannot happen. A fast
    /// counter must keep acceptance tokens: there the service tells the two cases apart by them.
    /// </remarks>
    bool IsDurable => false;

    /// <summary>Records one event.</summary>
    /// <param name="usageEvent">The event.</param>
    /// <param name="cancellationToken">Cancels the call (an event already sent may still be counted).</param>
    /// <returns>What happened, with the counter's total.</returns>
    ValueTask<UsageCounterResult> RecordAsync(UsageCounterEvent usageEvent, CancellationToken cancellationToken = default);

    /// <summary>Records events in order; each one is atomic on its own and gets its own result.</summary>
    /// <param name="events">The events (an event repeating an earlier key of the batch is a duplicate of it).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per event, in order.</returns>
    ValueTask<IReadOnlyList<UsageCounterResult>> RecordBatchAsync(IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default);

    /// <summary>Reads a counter's total; 0 for a counter that has seen nothing.</summary>
    /// <param name="counter">The counter.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The total.</returns>
    ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces a counter's state with the aggregate of <paramref name="events"/> (the durable accepted events of the
    /// counter) and marks their idempotency keys as taken again, each with its event's
    /// <see cref="UsageCounterEvent.AcceptanceToken"/>.
    /// </summary>
    /// <param name="counter">The counter.</param>
    /// <param name="aggregation">The meter's aggregation.</param>
    /// <param name="events">Every accepted event of the counter; hard limits are not applied.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The rebuilt total.</returns>
    /// <remarks>Events recorded for the same counter while it is rebuilt may be lost from it; run rebuilds when writers are quiet.</remarks>
    ValueTask<long> RebuildAsync(UsageCounterKey counter, MeterAggregation aggregation, IReadOnlyList<UsageCounterEvent> events, CancellationToken cancellationToken = default);
}
