namespace Billing.Ports;

/// <summary>
/// The persistence port: opens units of work. Adapters (in memory, EF Core on PostgreSQL or SQLite) implement it,
/// and every adapter passes the store contract suite in <c>Billing.Testing</c>.
/// </summary>
public interface IBillingStore
{
    /// <summary>Opens a unit of work. Nothing it writes is visible to others until <see cref="IBillingSession.CommitAsync"/>.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The session; dispose it (a session disposed without commit rolls back).</returns>
    ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// A unit of work over every store. Writes (<c>Add</c>, <c>Update</c>, <c>Append</c>) are buffered and applied
/// together by <see cref="CommitAsync"/>, so a state change and the events it emits commit together or not at all.
/// </summary>
/// <remarks>
/// <para>Reads see committed data plus this session's own writes.</para>
/// <para>At commit, an update whose <c>Version</c> is not the stored version throws
/// <see cref="ConcurrencyConflictException"/>; an add whose id or unique key exists throws
/// <see cref="DuplicateKeyException"/>. Either way nothing is written. The store sets <c>Version</c>: 1 on add,
/// +1 on each update.</para>
/// </remarks>
public interface IBillingSession : IAsyncDisposable
{
    /// <summary>Customers.</summary>
    ICustomerStore Customers { get; }

    /// <summary>Plans.</summary>
    IPlanStore Plans { get; }

    /// <summary>Subscriptions.</summary>
    ISubscriptionStore Subscriptions { get; }

    /// <summary>Invoices and their numbering (dunning state lives on the invoice).</summary>
    IInvoiceStore Invoices { get; }

    /// <summary>Payment attempts.</summary>
    IPaymentStore Payments { get; }

    /// <summary>Test clocks.</summary>
    ITestClockStore TestClocks { get; }

    /// <summary>The transactional outbox of billing events.</summary>
    IOutbox Outbox { get; }

    /// <summary>Idempotency records (for example of API requests).</summary>
    IIdempotencyStore Idempotency { get; }

    /// <summary>Applies every buffered write atomically.</summary>
    /// <param name="cancellationToken">Cancels the call (before anything is written).</param>
    /// <returns>A task that completes when the writes are durable.</returns>
    /// <exception cref="ConcurrencyConflictException">An updated object changed since it was read.</exception>
    /// <exception cref="DuplicateKeyException">An added object's id or unique key exists.</exception>
    /// <exception cref="InvalidOperationException">The session was already committed.</exception>
    ValueTask CommitAsync(CancellationToken cancellationToken = default);
}
