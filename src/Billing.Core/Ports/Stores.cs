using Billing.Catalog;
using Billing.Customers;
using Billing.Events;
using Billing.Invoices;
using Billing.Payments;
using Billing.Subscriptions;

namespace Billing.Ports;

/// <summary>Customers.</summary>
public interface ICustomerStore
{
    /// <summary>Reads a customer.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The customer, or null.</returns>
    ValueTask<Customer?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Adds a customer (unique id).</summary>
    /// <param name="customer">The customer.</param>
    void Add(Customer customer);

    /// <summary>Updates a customer; its <c>Version</c> must be the version read.</summary>
    /// <param name="customer">The customer.</param>
    void Update(Customer customer);

    /// <summary>Lists the customers attached to a test clock, in id order.</summary>
    /// <param name="testClockId">The clock.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The customers.</returns>
    ValueTask<IReadOnlyList<Customer>> ListByTestClockAsync(string testClockId, CancellationToken cancellationToken = default);

    /// <summary>Lists customers a page at a time, newest first (see <see cref="PageRequest"/> for the order and the cursor).</summary>
    /// <param name="page">The page size and the cursor (a customer id).</param>
    /// <param name="email">Only customers with exactly this email address (ordinal, case-sensitive), or null for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page.</returns>
    /// <remarks>Sees committed customers plus this session's own writes, like every read.</remarks>
    /// <exception cref="BillingNotFoundException">The cursor names no customer.</exception>
    ValueTask<ListPage<Customer>> ListAsync(PageRequest page, string? email = null, CancellationToken cancellationToken = default);
}

/// <summary>Plans (the catalog).</summary>
public interface IPlanStore
{
    /// <summary>Reads a plan.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The plan, or null.</returns>
    ValueTask<Plan?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Adds a plan (unique id).</summary>
    /// <param name="plan">The plan.</param>
    void Add(Plan plan);

    /// <summary>Updates a plan; its <c>Version</c> must be the version read.</summary>
    /// <param name="plan">The plan.</param>
    void Update(Plan plan);

    /// <summary>Lists plans a page at a time, newest first (see <see cref="PageRequest"/> for the order and the cursor).</summary>
    /// <param name="page">The page size and the cursor (a plan id).</param>
    /// <param name="archived">Only archived plans (true), only active ones (false), or all (null).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page.</returns>
    /// <remarks>Sees committed plans plus this session's own writes, like every read.</remarks>
    /// <exception cref="BillingNotFoundException">The cursor names no plan.</exception>
    ValueTask<ListPage<Plan>> ListAsync(PageRequest page, bool? archived = null, CancellationToken cancellationToken = default);
}

/// <summary>Subscriptions.</summary>
public interface ISubscriptionStore
{
    /// <summary>Reads a subscription.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscription, or null.</returns>
    ValueTask<Subscription?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Adds a subscription (unique id).</summary>
    /// <param name="subscription">The subscription.</param>
    void Add(Subscription subscription);

    /// <summary>Updates a subscription; its <c>Version</c> must be the version read.</summary>
    /// <param name="subscription">The subscription.</param>
    void Update(Subscription subscription);

    /// <summary>
    /// Lists subscriptions with <c>NextActionAt ≤ now</c> on the given clock (null: real time only), earliest
    /// first, at most <paramref name="limit"/>, without claiming them (see <see cref="ClaimDueAsync"/>).
    /// </summary>
    /// <param name="now">The instant.</param>
    /// <param name="testClockId">The test clock, or null for subscriptions on real time.</param>
    /// <param name="limit">The batch size.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The due subscriptions.</returns>
    ValueTask<IReadOnlyList<Subscription>> ListDueAsync(DateTimeOffset now, string? testClockId, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Claims up to <paramref name="limit"/> due subscriptions for one billing run: like <see cref="ListDueAsync"/>,
    /// but rows claimed by another run whose lease has not ended are skipped, and the returned rows are claimed
    /// until <c>leaseStart + lease</c>.
    /// </summary>
    /// <remarks>
    /// The claim takes effect when the session commits (a store may apply it earlier); an <see cref="Update"/> of
    /// the row clears it, so a row that a run has moved forward can be claimed again as soon as it is due again.
    /// A run that dies keeps its claims until the lease ends, after which any run takes the rows over. PostgreSQL
    /// claims with <c>FOR UPDATE SKIP LOCKED</c>, so runs in several processes never wait for each other.
    /// <paramref name="leaseStart"/> is real (wall-clock) time even when <paramref name="now"/> is a test clock's.
    /// </remarks>
    /// <param name="now">The instant work is due by.</param>
    /// <param name="testClockId">The test clock, or null for subscriptions on real time.</param>
    /// <param name="limit">The batch size.</param>
    /// <param name="leaseStart">The real time the claim starts.</param>
    /// <param name="lease">How long the claim lasts.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The claimed subscriptions, earliest first.</returns>
    ValueTask<IReadOnlyList<Subscription>> ClaimDueAsync(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>Lists a customer's subscriptions, in id order.</summary>
    /// <param name="customerId">The customer.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The subscriptions.</returns>
    ValueTask<IReadOnlyList<Subscription>> ListByCustomerAsync(string customerId, CancellationToken cancellationToken = default);

    /// <summary>
    /// A read-ahead hint: reads the given customers and their subscriptions together (a store with round trips does it
    /// in a few queries instead of two per customer), so that this session's later <see cref="ICustomerStore.GetAsync"/>
    /// of those customers and <see cref="ListByCustomerAsync"/> of them answer from what was read.
    /// </summary>
    /// <param name="customerIds">The customers (duplicates and unknown ids are allowed).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the rows are read.</returns>
    /// <remarks>
    /// Changes nothing and returns nothing: the answers after it are the ones the individual reads would have given at
    /// the moment of the read-ahead (writes pending in the session still win over what was read). The default does
    /// nothing, which is right for stores without round trips.
    /// </remarks>
    ValueTask PreloadByCustomersAsync(IReadOnlyCollection<string> customerIds, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}

/// <summary>Invoices and gap-free invoice numbering.</summary>
public interface IInvoiceStore
{
    /// <summary>Reads an invoice.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice, or null.</returns>
    ValueTask<Invoice?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Reads the invoice with a dedup key (for example a subscription period).</summary>
    /// <param name="dedupKey">The key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoice, or null.</returns>
    ValueTask<Invoice?> GetByDedupKeyAsync(string dedupKey, CancellationToken cancellationToken = default);

    /// <summary>Adds an invoice (unique id and unique <c>DedupKey</c>).</summary>
    /// <param name="invoice">The invoice.</param>
    void Add(Invoice invoice);

    /// <summary>Updates an invoice; its <c>Version</c> must be the version read.</summary>
    /// <param name="invoice">The invoice.</param>
    void Update(Invoice invoice);

    /// <summary>Lists invoices with <c>NextActionAt ≤ now</c> on the given clock, earliest first, at most <paramref name="limit"/>.</summary>
    /// <param name="now">The instant.</param>
    /// <param name="testClockId">The test clock, or null for real time.</param>
    /// <param name="limit">The batch size.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The due invoices.</returns>
    ValueTask<IReadOnlyList<Invoice>> ListDueAsync(DateTimeOffset now, string? testClockId, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Claims up to <paramref name="limit"/> due invoices for one billing run: like <see cref="ListDueAsync"/>,
    /// but rows claimed by another run whose lease has not ended are skipped, and the returned rows are claimed
    /// until <c>leaseStart + lease</c>.
    /// </summary>
    /// <remarks>
    /// The claim takes effect when the session commits (a store may apply it earlier); an <see cref="Update"/> of
    /// the row clears it, so a row that a run has moved forward can be claimed again as soon as it is due again.
    /// A run that dies keeps its claims until the lease ends, after which any run takes the rows over. PostgreSQL
    /// claims with <c>FOR UPDATE SKIP LOCKED</c>, so runs in several processes never wait for each other.
    /// <paramref name="leaseStart"/> is real (wall-clock) time even when <paramref name="now"/> is a test clock's.
    /// </remarks>
    /// <param name="now">The instant work is due by.</param>
    /// <param name="testClockId">The test clock, or null for invoices on real time.</param>
    /// <param name="limit">The batch size.</param>
    /// <param name="leaseStart">The real time the claim starts.</param>
    /// <param name="lease">How long the claim lasts.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The claimed invoices, earliest first.</returns>
    ValueTask<IReadOnlyList<Invoice>> ClaimDueAsync(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>Lists a subscription's invoices, oldest first.</summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The invoices.</returns>
    ValueTask<IReadOnlyList<Invoice>> ListBySubscriptionAsync(string subscriptionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes the next number of a sequence inside this unit of work: 1, 2, 3… A number is used only if the session
    /// commits, so committed numbers have no gaps; concurrent sessions never get the same number.
    /// </summary>
    /// <param name="sequence">The sequence (for example the invoice prefix).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The number.</returns>
    ValueTask<long> NextNumberAsync(string sequence, CancellationToken cancellationToken = default);
}

/// <summary>Payment attempts.</summary>
public interface IPaymentStore
{
    /// <summary>Reads a payment.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The payment, or null.</returns>
    ValueTask<Payment?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Reads the payment with an idempotency key.</summary>
    /// <param name="idempotencyKey">The key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The payment, or null.</returns>
    ValueTask<Payment?> GetByIdempotencyKeyAsync(string idempotencyKey, CancellationToken cancellationToken = default);

    /// <summary>Adds a payment (unique id and unique idempotency key).</summary>
    /// <param name="payment">The payment.</param>
    void Add(Payment payment);

    /// <summary>Updates a payment; its <c>Version</c> must be the version read.</summary>
    /// <param name="payment">The payment.</param>
    void Update(Payment payment);

    /// <summary>Lists an invoice's payments by attempt.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The payments.</returns>
    ValueTask<IReadOnlyList<Payment>> ListByInvoiceAsync(string invoiceId, CancellationToken cancellationToken = default);
}

/// <summary>A virtual clock that customers can be attached to.</summary>
public sealed record TestClock
{
    /// <summary>The clock's id (<c>clock_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>A name for people.</summary>
    public string? Name { get; init; }

    /// <summary>The clock's current time.</summary>
    public required DateTimeOffset FrozenTime { get; init; }

    /// <summary>The optimistic-concurrency version.</summary>
    public long Version { get; init; }
}

/// <summary>Test clocks.</summary>
public interface ITestClockStore
{
    /// <summary>Reads a clock.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The clock, or null.</returns>
    ValueTask<TestClock?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Adds a clock (unique id).</summary>
    /// <param name="clock">The clock.</param>
    void Add(TestClock clock);

    /// <summary>Updates a clock; its <c>Version</c> must be the version read.</summary>
    /// <param name="clock">The clock.</param>
    void Update(TestClock clock);
}

/// <summary>An event in the outbox with its position.</summary>
/// <param name="Position">Assigned at commit, strictly increasing in commit order.</param>
/// <param name="Event">The event.</param>
public sealed record OutboxEntry(long Position, BillingEvent Event);

/// <summary>The transactional outbox.</summary>
public interface IOutbox
{
    /// <summary>Appends an event; it is stored when the session commits (unique event id).</summary>
    /// <param name="billingEvent">The event.</param>
    void Append(BillingEvent billingEvent);

    /// <summary>Reads committed events after a position, in order.</summary>
    /// <param name="afterPosition">The last position already read (0 for the start).</param>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The entries.</returns>
    ValueTask<IReadOnlyList<OutboxEntry>> ReadAsync(long afterPosition, int limit, CancellationToken cancellationToken = default);
}

/// <summary>A stored outcome of an idempotent request, unique per (scope, key).</summary>
/// <param name="Scope">Who owns the key (for example an API key id).</param>
/// <param name="Key">The client's idempotency key.</param>
/// <param name="RequestHash">A hash of the request, to detect a reused key with another request.</param>
/// <param name="Response">The stored response.</param>
/// <param name="CreatedAt">When it was stored.</param>
/// <param name="ExpiresAt">When it may be forgotten.</param>
public sealed record IdempotencyRecord(string Scope, string Key, string RequestHash, string Response, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt);

/// <summary>Idempotency records.</summary>
public interface IIdempotencyStore
{
    /// <summary>Reads the record for a (scope, key).</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="key">The key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The record, or null.</returns>
    ValueTask<IdempotencyRecord?> GetAsync(string scope, string key, CancellationToken cancellationToken = default);

    /// <summary>Adds a record; unique per (scope, key): a second add of the same pair fails at commit.</summary>
    /// <param name="record">The record.</param>
    void Add(IdempotencyRecord record);
}
