using Billing.Catalog;
using Billing.Customers;
using Billing.Events;
using Billing.Invoices;
using Billing.Payments;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.InMemory;

/// <summary>A unit of work over an <see cref="InMemoryBillingStore"/>.</summary>
internal sealed class InMemorySession : IBillingSession, ICustomerStore, IPlanStore, ISubscriptionStore, IInvoiceStore, IPaymentStore, ITestClockStore, IOutbox, IIdempotencyStore
{
    private readonly InMemoryBillingStore _store;
    private bool _done;

    public InMemorySession(InMemoryBillingStore store)
    {
        _store = store;
        Customers = new(store.Customers, store.Gate);
        Plans = new(store.Plans, store.Gate);
        Subscriptions = new(store.Subscriptions, store.Gate);
        Invoices = new(store.Invoices, store.Gate);
        Payments = new(store.Payments, store.Gate);
        TestClocks = new(store.TestClocks, store.Gate);
    }

    internal PendingSet<Customer> Customers { get; }

    internal PendingSet<Plan> Plans { get; }

    internal PendingSet<Subscription> Subscriptions { get; }

    internal PendingSet<Invoice> Invoices { get; }

    internal PendingSet<Payment> Payments { get; }

    internal PendingSet<TestClock> TestClocks { get; }

    internal Dictionary<string, (long Base, long Taken)> Numbers { get; } = new(StringComparer.Ordinal);

    internal List<BillingEvent> Events { get; } = [];

    internal List<IdempotencyRecord> IdempotencyRecords { get; } = [];

    ICustomerStore IBillingSession.Customers => this;

    IPlanStore IBillingSession.Plans => this;

    ISubscriptionStore IBillingSession.Subscriptions => this;

    IInvoiceStore IBillingSession.Invoices => this;

    IPaymentStore IBillingSession.Payments => this;

    ITestClockStore IBillingSession.TestClocks => this;

    IOutbox IBillingSession.Outbox => this;

    IIdempotencyStore IBillingSession.Idempotency => this;

    public ValueTask CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        cancellationToken.ThrowIfCancellationRequested();
        _done = true;
        _store.Commit(this);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _done = true;
        return ValueTask.CompletedTask;
    }

    // Customers
    ValueTask<Customer?> ICustomerStore.GetAsync(string id, CancellationToken cancellationToken) => new(Customers.Get(id));

    void ICustomerStore.Add(Customer customer) => Customers.Add(customer);

    void ICustomerStore.Update(Customer customer) => Customers.Update(customer, customer.Version);

    ValueTask<IReadOnlyList<Customer>> ICustomerStore.ListByTestClockAsync(string testClockId, CancellationToken cancellationToken) =>
        new(Customers.Where(c => c.TestClockId == testClockId).OrderBy(c => c.Id, StringComparer.Ordinal).ToList());

    ValueTask<ListPage<Customer>> ICustomerStore.ListAsync(PageRequest page, string? email, CancellationToken cancellationToken) =>
        new(Customers.Page(page, c => (c.CreatedAt, c.Id), c => email is null || string.Equals(c.Email, email, StringComparison.Ordinal)));

    // Plans
    ValueTask<Plan?> IPlanStore.GetAsync(string id, CancellationToken cancellationToken) => new(Plans.Get(id));

    void IPlanStore.Add(Plan plan) => Plans.Add(plan);

    void IPlanStore.Update(Plan plan) => Plans.Update(plan, plan.Version);

    ValueTask<ListPage<Plan>> IPlanStore.ListAsync(PageRequest page, bool? archived, CancellationToken cancellationToken) =>
        new(Plans.Page(page, p => (p.CreatedAt, p.Id), p => archived is not { } only || p.Archived == only));

    // Subscriptions
    ValueTask<Subscription?> ISubscriptionStore.GetAsync(string id, CancellationToken cancellationToken) => new(Subscriptions.Get(id));

    void ISubscriptionStore.Add(Subscription subscription) => Subscriptions.Add(subscription);

    void ISubscriptionStore.Update(Subscription subscription) => Subscriptions.Update(subscription, subscription.Version);

    ValueTask<IReadOnlyList<Subscription>> ISubscriptionStore.ListDueAsync(DateTimeOffset now, string? testClockId, int limit, CancellationToken cancellationToken) =>
        new(Subscriptions.Due(now, testClockId, limit, s => s.NextActionAt, s => s.TestClockId));

    ValueTask<IReadOnlyList<Subscription>> ISubscriptionStore.ClaimDueAsync(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease, CancellationToken cancellationToken) =>
        new(Subscriptions.Due(now, testClockId, limit, s => s.NextActionAt, s => s.TestClockId, (leaseStart, lease)));

    ValueTask<IReadOnlyList<Subscription>> ISubscriptionStore.ListByCustomerAsync(string customerId, CancellationToken cancellationToken) =>
        new(Subscriptions.Where(s => s.CustomerId == customerId).OrderBy(s => s.Id, StringComparer.Ordinal).ToList());

    // Invoices
    ValueTask<Invoice?> IInvoiceStore.GetAsync(string id, CancellationToken cancellationToken) => new(Invoices.Get(id));

    ValueTask<Invoice?> IInvoiceStore.GetByDedupKeyAsync(string dedupKey, CancellationToken cancellationToken) =>
        new(Invoices.GetByUnique(0, dedupKey, i => i.DedupKey));

    void IInvoiceStore.Add(Invoice invoice) => Invoices.Add(invoice);

    void IInvoiceStore.Update(Invoice invoice) => Invoices.Update(invoice, invoice.Version);

    ValueTask<IReadOnlyList<Invoice>> IInvoiceStore.ListDueAsync(DateTimeOffset now, string? testClockId, int limit, CancellationToken cancellationToken) =>
        new(Invoices.Due(now, testClockId, limit, i => i.NextActionAt, i => i.TestClockId));

    ValueTask<IReadOnlyList<Invoice>> IInvoiceStore.ClaimDueAsync(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease, CancellationToken cancellationToken) =>
        new(Invoices.Due(now, testClockId, limit, i => i.NextActionAt, i => i.TestClockId, (leaseStart, lease)));

    ValueTask<IReadOnlyList<Invoice>> IInvoiceStore.ListBySubscriptionAsync(string subscriptionId, CancellationToken cancellationToken) =>
        new(Invoices.Where(i => i.SubscriptionId == subscriptionId).OrderBy(i => i.CreatedAt).ThenBy(i => i.Id, StringComparer.Ordinal).ToList());

    ValueTask<long> IInvoiceStore.NextNumberAsync(string sequence, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sequence);
        if (!Numbers.TryGetValue(sequence, out var entry))
        {
            var committed = _store.CommittedNumber(sequence);
            entry = (committed, committed);
        }

        entry.Taken++;
        Numbers[sequence] = entry;
        return new(entry.Taken);
    }

    // Payments
    ValueTask<Payment?> IPaymentStore.GetAsync(string id, CancellationToken cancellationToken) => new(Payments.Get(id));

    ValueTask<Payment?> IPaymentStore.GetByIdempotencyKeyAsync(string idempotencyKey, CancellationToken cancellationToken) =>
        new(Payments.GetByUnique(0, idempotencyKey, p => p.IdempotencyKey));

    void IPaymentStore.Add(Payment payment) => Payments.Add(payment);

    void IPaymentStore.Update(Payment payment) => Payments.Update(payment, payment.Version);

    ValueTask<IReadOnlyList<Payment>> IPaymentStore.ListByInvoiceAsync(string invoiceId, CancellationToken cancellationToken) =>
        new(Payments.Where(p => p.InvoiceId == invoiceId).OrderBy(p => p.Attempt).ToList());

    // Test clocks
    ValueTask<TestClock?> ITestClockStore.GetAsync(string id, CancellationToken cancellationToken) => new(TestClocks.Get(id));

    void ITestClockStore.Add(TestClock clock) => TestClocks.Add(clock);

    void ITestClockStore.Update(TestClock clock) => TestClocks.Update(clock, clock.Version);

    // Outbox
    void IOutbox.Append(BillingEvent billingEvent)
    {
        ArgumentNullException.ThrowIfNull(billingEvent);
        Events.Add(billingEvent);
    }

    ValueTask<IReadOnlyList<OutboxEntry>> IOutbox.ReadAsync(long afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        return new(_store.ReadOutbox(afterPosition, limit));
    }

    // Idempotency
    ValueTask<IdempotencyRecord?> IIdempotencyStore.GetAsync(string scope, string key, CancellationToken cancellationToken) =>
        new(IdempotencyRecords.LastOrDefault(r => r.Scope == scope && r.Key == key) ?? _store.GetIdempotency(scope, key));

    void IIdempotencyStore.Add(IdempotencyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        IdempotencyRecords.Add(record);
    }
}

/// <summary>This session's buffered writes of one kind, overlaid on the committed table for reads.</summary>
internal sealed class PendingSet<T>
    where T : class
{
    private readonly Table<T> _table;
    private readonly Lock _gate;
    private static readonly Dictionary<string, Pending<T>> NoChanges = new(StringComparer.Ordinal);
    private Dictionary<string, Pending<T>> _changes = NoChanges;

    public PendingSet(Table<T> table, Lock gate)
    {
        _table = table;
        _gate = gate;
    }

    public IReadOnlyCollection<Pending<T>> Changes => _changes.Values;

    public T? Get(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (_changes.TryGetValue(id, out var pending))
        {
            return pending.Value;
        }

        lock (_gate)
        {
            return _table.Get(id);
        }
    }

    public T? GetByUnique(int index, string key, Func<T, string?> keyOf)
    {
        ArgumentNullException.ThrowIfNull(key);
        foreach (var pending in _changes.Values)
        {
            if (keyOf(pending.Value) == key)
            {
                return pending.Value;
            }
        }

        lock (_gate)
        {
            var committed = _table.GetByUnique(index, key);
            return committed is not null && _changes.ContainsKey(_table.IdOf(committed)) ? null : committed;
        }
    }

    public IEnumerable<T> Where(Func<T, bool> predicate)
    {
        List<T> committed;
        lock (_gate)
        {
            committed = [.. _table.Rows.Where(r => !_changes.ContainsKey(_table.IdOf(r)) && predicate(r))];
        }

        return committed.Concat(_changes.Values.Select(p => p.Value).Where(predicate));
    }

    /// <summary>
    /// A page of the rows that match, newest first (committed rows overlaid with this session's writes); the cursor
    /// must name a row this session can read.
    /// </summary>
    public ListPage<T> Page(PageRequest page, Func<T, (DateTimeOffset CreatedAt, string Id)> key, Func<T, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(page);
        page.Validate();
        (DateTimeOffset CreatedAt, string Id)? after = null;
        if (page.StartingAfter is { } id)
        {
            after = key(Get(id) ?? throw new BillingNotFoundException(_table.ObjectType, id));
        }

        return NewestFirst.Page(Where(predicate), key, page.Limit, after);
    }

    /// <summary>
    /// Rows due at or before <paramref name="now"/> on a clock, earliest first, at most <paramref name="limit"/>:
    /// the committed due index merged with this session's own writes.
    /// </summary>
    public IReadOnlyList<T> Due(DateTimeOffset now, string? clock, int limit, Func<T, DateTimeOffset?> due, Func<T, string?> clockOf, (DateTimeOffset Start, TimeSpan Lease)? claim = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var pending = _changes.Values.Select(p => p.Value).Where(v => clockOf(v) == clock && due(v) <= now).ToList();
        List<T> committed;
        lock (_gate)
        {
            committed = [.. _table.Due(now, clock, claim?.Start).Where(r => !_changes.ContainsKey(_table.IdOf(r))).Take(limit)];
            if (claim is { } c)
            {
                // Claims apply at once (stronger than at commit): no other session can claim these rows meanwhile.
                var until = c.Start + c.Lease;
                foreach (var row in committed)
                {
                    _table.Claim(_table.IdOf(row), until);
                }
            }
        }

        return [.. committed.Concat(pending)
            .OrderBy(r => due(r)!.Value.UtcTicks).ThenBy(r => _table.IdOf(r), StringComparer.Ordinal)
            .Take(limit)];
    }

    public void Add(T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var id = _table.IdOf(value);
        if (_changes.ContainsKey(id))
        {
            throw new DuplicateKeyException(_table.ObjectType, "id", id);
        }

        Writable()[id] = new Pending<T>(value, IsNew: true, ReadVersion: 0);
    }

    private Dictionary<string, Pending<T>> Writable() =>
        ReferenceEquals(_changes, NoChanges) ? _changes = new Dictionary<string, Pending<T>>(StringComparer.Ordinal) : _changes;

    public void Update(T value, long readVersion)
    {
        ArgumentNullException.ThrowIfNull(value);
        var id = _table.IdOf(value);
        Writable()[id] = _changes.TryGetValue(id, out var earlier)
            ? earlier with { Value = value }
            : new Pending<T>(value, IsNew: false, ReadVersion: readVersion);
    }
}
