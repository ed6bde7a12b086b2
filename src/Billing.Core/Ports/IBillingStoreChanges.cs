namespace Billing.Ports;

/// <summary>
/// Implemented by an <see cref="IBillingStore"/> that reports, after each commit, which customers and plans it changed,
/// so readers in the same process can drop what they cached (the usage metering's resolution cache does).
/// </summary>
/// <remarks>
/// Only commits made through this store object are reported. Another process, or another store object over the same
/// database, changes data without a report; a cache built on these reports must therefore also expire.
/// </remarks>
public interface IBillingStoreChanges
{
    /// <summary>
    /// Calls <paramref name="committed"/> after every successful commit that added or updated customers, subscriptions or
    /// plans: on the committing thread, before that commit returns to its caller.
    /// </summary>
    /// <param name="committed">The callback; it must be quick and must not throw.</param>
    /// <returns>Disposing it stops the calls.</returns>
    IDisposable Subscribe(Action<BillingStoreChange> committed);
}

/// <summary>What one commit changed.</summary>
public sealed class BillingStoreChange
{
    /// <summary>The customers added or updated, and the customers of the subscriptions added or updated.</summary>
    public required IReadOnlyCollection<string> CustomerIds { get; init; }

    /// <summary>The plans added or updated.</summary>
    public required IReadOnlyCollection<string> PlanIds { get; init; }
}

/// <summary>
/// The subscribers of a store's <see cref="IBillingStoreChanges"/>: a building block for store implementations.
/// </summary>
/// <remarks>Thread-safe. Subscribing and unsubscribing copy the list, so a publish never takes a lock.</remarks>
public sealed class BillingStoreChangeFeed : IBillingStoreChanges
{
    private Action<BillingStoreChange>[] _subscribers = [];

    /// <inheritdoc />
    public IDisposable Subscribe(Action<BillingStoreChange> committed)
    {
        ArgumentNullException.ThrowIfNull(committed);
        Update(list => [.. list, committed]);
        return new Subscription(this, committed);
    }

    /// <summary>
    /// Reports a commit to every subscriber: the customers it added or updated, the customers of the subscriptions it
    /// added or updated, and the plans it added or updated. Nothing when no one listens or nothing of these changed.
    /// </summary>
    /// <param name="customers">The customers the commit wrote.</param>
    /// <param name="subscriptions">The subscriptions the commit wrote.</param>
    /// <param name="plans">The plans the commit wrote.</param>
    public void Publish(IEnumerable<Customers.Customer> customers, IEnumerable<Subscriptions.Subscription> subscriptions, IEnumerable<Catalog.Plan> plans)
    {
        ArgumentNullException.ThrowIfNull(customers);
        ArgumentNullException.ThrowIfNull(subscriptions);
        ArgumentNullException.ThrowIfNull(plans);
        var subscribers = Volatile.Read(ref _subscribers);
        if (subscribers.Length == 0)
        {
            return;
        }

        var customerIds = new HashSet<string>(customers.Select(c => c.Id), StringComparer.Ordinal);
        customerIds.UnionWith(subscriptions.Select(s => s.CustomerId));
        string[] planIds = [.. plans.Select(p => p.Id)];
        if (customerIds.Count == 0 && planIds.Length == 0)
        {
            return;
        }

        var change = new BillingStoreChange { CustomerIds = customerIds, PlanIds = planIds };
        foreach (var subscriber in subscribers)
        {
            subscriber(change);
        }
    }

    private void Update(Func<Action<BillingStoreChange>[], Action<BillingStoreChange>[]> change)
    {
        while (true)
        {
            var current = Volatile.Read(ref _subscribers);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _subscribers, change(current), current), current))
            {
                return;
            }
        }
    }

    private sealed class Subscription(BillingStoreChangeFeed feed, Action<BillingStoreChange> committed) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                feed.Update(list => Array.IndexOf(list, committed) is var i and >= 0 ? [.. list[..i], .. list[(i + 1)..]] : list);
            }
        }
    }
}
