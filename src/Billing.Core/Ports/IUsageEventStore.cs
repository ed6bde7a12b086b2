using Billing.Usage;

namespace Billing.Ports;

/// <summary>
/// The durable usage events: every accepted event, written in batches, unique per (customer, idempotency key).
/// Invoices are priced from <see cref="AggregateAsync"/>, and fast counters are rebuilt from <see cref="ListAsync"/>.
/// </summary>
public interface IUsageEventStore
{
    /// <summary>Stores events in one write; an event whose (customer, key) is already stored is left as it was.</summary>
    /// <remarks>
    /// A stored event keeps the <see cref="StoredUsageEvent.AcceptanceToken"/> of the append that stored it, and
    /// <see cref="FindAsync"/> and <see cref="ListAsync"/> return it: the metering service reads it to tell a concurrent
    /// repeat of an event from a key a fast counter forgot.
    /// </remarks>
    /// <param name="events">The events (up to a few thousand per call).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Per event, in order: true when this call stored it, false when the key was stored already.</returns>
    ValueTask<IReadOnlyList<bool>> AppendAsync(IReadOnlyList<StoredUsageEvent> events, CancellationToken cancellationToken = default);

    /// <summary>Every stored event of one counter, ordered by timestamp then idempotency key.</summary>
    /// <param name="counter">The counter.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The events.</returns>
    ValueTask<IReadOnlyList<StoredUsageEvent>> ListAsync(UsageCounterKey counter, CancellationToken cancellationToken = default);

    /// <summary>The stored event of a customer's idempotency key, or null when the key is not stored.</summary>
    /// <param name="customerId">The customer (keys are scoped to it).</param>
    /// <param name="idempotencyKey">The idempotency key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The event, whichever counter it was stored for; null when none.</returns>
    /// <remarks>
    /// The metering service asks only on its rare paths (an event a counter rejected as over the limit: a counter that
    /// forgot the key must still answer "duplicate"), so a point lookup on the unique key is all it needs.
    /// </remarks>
    ValueTask<StoredUsageEvent?> FindAsync(string customerId, string idempotencyKey, CancellationToken cancellationToken = default);

    /// <summary>The counters that have events in the period starting at <paramref name="periodStart"/>.</summary>
    /// <param name="periodStart">The period start (UTC).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The counters, ordered by customer then meter.</returns>
    ValueTask<IReadOnlyList<UsageCounterKey>> ListCountersAsync(DateTimeOffset periodStart, CancellationToken cancellationToken = default);

    /// <summary>The aggregate of a counter's stored events, computed by the store (0 when it has none).</summary>
    /// <param name="counter">The counter.</param>
    /// <param name="aggregation">The meter's aggregation (see <see cref="MeterAggregation"/> for the exact rules).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The aggregate.</returns>
    ValueTask<long> AggregateAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default);
}
