using Billing.Catalog;
using Billing.Customers;
using Billing.Events;
using Billing.Invoices;
using Billing.Payments;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.InMemory;

/// <summary>
/// A thread-safe in-memory <see cref="IBillingStore"/> with database semantics: sessions buffer their writes and
/// commit them atomically; a stale version fails with <see cref="ConcurrencyConflictException"/>; a duplicate id or
/// unique key (invoice dedup key, payment idempotency key, event id, idempotency record) fails with
/// <see cref="DuplicateKeyException"/>; invoice numbers are gap-free and never handed out twice.
/// </summary>
/// <remarks>
/// The embedded default of the engine and the reference for the store contract suite. Commits are serialized by one
/// lock; reads take the lock briefly and return immutable records. Two sessions that take a number from the same
/// sequence conflict at commit (the second fails and can retry), as a row lock would make them wait in a database.
/// </remarks>
public sealed class InMemoryBillingStore : IBillingStore, IBillingStoreChanges
{
    private readonly BillingStoreChangeFeed _changes = new();
    private readonly Lock _gate = new();
    private readonly Dictionary<string, long> _sequences = new(StringComparer.Ordinal);
    private readonly List<OutboxEntry> _outbox = [];
    private readonly HashSet<string> _eventIds = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Scope, string Key), IdempotencyRecord> _idempotency = [];

    internal Table<Customer> Customers { get; } = new("customer", c => c.Id, c => c.Version, (c, v) => c with { Version = v });

    internal Table<Plan> Plans { get; } = new("plan", p => p.Id, p => p.Version, (p, v) => p with { Version = v });

    internal Table<Subscription> Subscriptions { get; } = new("subscription", s => s.Id, s => s.Version, (s, v) => s with { Version = v }, s => s.NextActionAt, s => s.TestClockId);

    internal Table<Invoice> Invoices { get; } = new("invoice", i => i.Id, i => i.Version, (i, v) => i with { Version = v }, i => i.NextActionAt, i => i.TestClockId, ("dedup_key", i => i.DedupKey), ("number", i => i.Number));

    internal Table<Payment> Payments { get; } = new("payment", p => p.Id, p => p.Version, (p, v) => p with { Version = v }, ("idempotency_key", p => p.IdempotencyKey));

    internal Table<TestClock> TestClocks { get; } = new("test_clock", c => c.Id, c => c.Version, (c, v) => c with { Version = v });

    internal Lock Gate => _gate;

    /// <inheritdoc />
    public ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult<IBillingSession>(new InMemorySession(this));
    }

    internal long CommittedNumber(string sequence)
    {
        lock (_gate)
        {
            return _sequences.GetValueOrDefault(sequence);
        }
    }

    internal IReadOnlyList<OutboxEntry> ReadOutbox(long afterPosition, int limit)
    {
        lock (_gate)
        {
            // Positions are 1-based list indexes.
            var start = (int)Math.Min(Math.Max(afterPosition, 0), _outbox.Count);
            return _outbox.GetRange(start, Math.Min(limit, _outbox.Count - start));
        }
    }

    internal IdempotencyRecord? GetIdempotency(string scope, string key)
    {
        lock (_gate)
        {
            return _idempotency.GetValueOrDefault((scope, key));
        }
    }

    /// <inheritdoc />
    public IDisposable Subscribe(Action<BillingStoreChange> committed) => _changes.Subscribe(committed);

    internal void Commit(InMemorySession session)
    {
        CommitLocked(session);
        _changes.Publish(session.Customers.Changes.Select(c => c.Value), session.Subscriptions.Changes.Select(s => s.Value), session.Plans.Changes.Select(p => p.Value));
    }

    private void CommitLocked(InMemorySession session)
    {
        lock (_gate)
        {
            // Validate everything first: a failure leaves the store untouched. Sequences come first: a race for
            // the same number is a retryable conflict, not the duplicate number it would otherwise surface as.
            foreach (var (sequence, (baseNumber, _)) in session.Numbers)
            {
                if (_sequences.GetValueOrDefault(sequence) != baseNumber)
                {
                    throw new ConcurrencyConflictException("invoice_number_sequence", sequence, baseNumber);
                }
            }

            Customers.Validate(session.Customers.Changes);
            Plans.Validate(session.Plans.Changes);
            Subscriptions.Validate(session.Subscriptions.Changes);
            Invoices.Validate(session.Invoices.Changes);
            Payments.Validate(session.Payments.Changes);
            TestClocks.Validate(session.TestClocks.Changes);

            var newEventIds = session.Events.Count == 0 ? null : new HashSet<string>(StringComparer.Ordinal);
            foreach (var e in session.Events)
            {
                if (_eventIds.Contains(e.Id) || !newEventIds!.Add(e.Id))
                {
                    throw new DuplicateKeyException("event", "id", e.Id);
                }
            }

            var newIdempotency = session.IdempotencyRecords.Count == 0 ? null : new HashSet<(string, string)>();
            foreach (var r in session.IdempotencyRecords)
            {
                if (_idempotency.ContainsKey((r.Scope, r.Key)) || !newIdempotency!.Add((r.Scope, r.Key)))
                {
                    throw new DuplicateKeyException("idempotency_record", "scope_key", $"{r.Scope}/{r.Key}");
                }
            }

            Customers.Apply(session.Customers.Changes);
            Plans.Apply(session.Plans.Changes);
            Subscriptions.Apply(session.Subscriptions.Changes);
            Invoices.Apply(session.Invoices.Changes);
            Payments.Apply(session.Payments.Changes);
            TestClocks.Apply(session.TestClocks.Changes);
            foreach (var (sequence, (_, taken)) in session.Numbers)
            {
                _sequences[sequence] = taken;
            }

            foreach (var e in session.Events)
            {
                _eventIds.Add(e.Id);
                _outbox.Add(new OutboxEntry(_outbox.Count + 1, e));
            }

            foreach (var r in session.IdempotencyRecords)
            {
                _idempotency[(r.Scope, r.Key)] = r;
            }
        }
    }
}
