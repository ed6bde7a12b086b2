using System.Collections.Concurrent;
using Billing.Catalog;
using Billing.Customers;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Usage;

/// <summary>
/// What event resolution reads, kept for <see cref="MeteringOptions.ResolutionCacheDuration"/>: customers with their
/// subscriptions, plans, and the customer of each subscription. Dropped at once when the store reports a commit that
/// changed them (<see cref="IBillingStoreChanges"/>).
/// </summary>
/// <remarks>
/// A read racing a commit is never cached stale: readers take <see cref="Version"/> before reading, and an entry is only
/// kept when no commit was reported between that and its insertion (checked again after inserting, since a report
/// between the check and the insert would otherwise be missed). Customers on a test clock are not cached (their "now"
/// moves with the clock). The maps are bounded: past <see cref="MaxEntries"/> entries one is cleared.
/// </remarks>
internal sealed class ResolutionCache
{
    /// <summary>The most entries a map holds before it is cleared.</summary>
    internal const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, Entry<(Customer Customer, IReadOnlyList<Subscription> Subscriptions)>> _customers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Entry<Plan>> _plans = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _subscriptionCustomers = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _duration;
    private long _version;

    private ResolutionCache(IBillingStoreChanges changes, TimeProvider time, TimeSpan duration)
    {
        _time = time;
        _duration = duration;
        Listener.Attach(changes, this);
    }

    /// <summary>A cache over <paramref name="store"/>, or null when caching is off or the store does not report its commits.</summary>
    public static ResolutionCache? For(IBillingStore store, TimeProvider time, TimeSpan duration) =>
        duration > TimeSpan.Zero && store is IBillingStoreChanges changes ? new ResolutionCache(changes, time, duration) : null;

    /// <summary>Counts the commits reported; take it before reading what will be added.</summary>
    public long Version => Volatile.Read(ref _version);

    /// <summary>A cached customer with its subscriptions.</summary>
    public bool TryGetCustomer(string customerId, out (Customer Customer, IReadOnlyList<Subscription> Subscriptions) value) =>
        TryGet(_customers, customerId, out value, out _);

    /// <summary>
    /// A cached customer with its subscriptions, and whether the entry has lived half its duration or more: worth
    /// reading again when a read of other customers is made anyway (see <see cref="UsageMeteringService"/>'s read-ahead).
    /// </summary>
    public bool TryGetCustomer(string customerId, out (Customer Customer, IReadOnlyList<Subscription> Subscriptions) value, out bool ageing)
    {
        if (TryGet(_customers, customerId, out value, out var age))
        {
            ageing = age >= _duration / 2;
            return true;
        }

        ageing = false;
        return false;
    }

    /// <summary>A cached plan.</summary>
    public bool TryGetPlan(string planId, out Plan plan) => TryGet(_plans, planId, out plan!, out _);

    /// <summary>The customer of a subscription seen before (a subscription never changes customer).</summary>
    public string? CustomerOf(string subscriptionId) => _subscriptionCustomers.GetValueOrDefault(subscriptionId);

    /// <summary>Keeps a customer and its subscriptions read after <paramref name="version"/> was taken.</summary>
    public void AddCustomer(long version, Customer customer, IReadOnlyList<Subscription> subscriptions)
    {
        if (customer.TestClockId is not null)
        {
            return;
        }

        Add(_customers, version, customer.Id, (customer, subscriptions));
        foreach (var subscription in subscriptions)
        {
            // Only a new key can grow the map: the count (which takes every lock of the map) is read only then.
            if (_subscriptionCustomers.ContainsKey(subscription.Id))
            {
                continue;
            }

            if (_subscriptionCustomers.Count >= MaxEntries)
            {
                _subscriptionCustomers.Clear();
            }

            _subscriptionCustomers.TryAdd(subscription.Id, customer.Id);
        }
    }

    /// <summary>Keeps a plan read after <paramref name="version"/> was taken.</summary>
    public void AddPlan(long version, Plan plan) => Add(_plans, version, plan.Id, plan);

    private void OnCommitted(BillingStoreChange change)
    {
        // First the version (readers in flight will not insert), then the entries already there.
        Interlocked.Increment(ref _version);
        foreach (var id in change.CustomerIds)
        {
            _customers.TryRemove(id, out _);
        }

        foreach (var id in change.PlanIds)
        {
            _plans.TryRemove(id, out _);
        }
    }

    private bool TryGet<T>(ConcurrentDictionary<string, Entry<T>> map, string id, out T value, out TimeSpan age)
    {
        // The clock's time, so a fake clock drives it; a clock set back makes the entry stale rather than longer-lived.
        if (map.TryGetValue(id, out var entry) && _time.GetUtcNow() - entry.Since is var a && a >= TimeSpan.Zero && a < _duration)
        {
            value = entry.Value;
            age = a;
            return true;
        }

        value = default!;
        age = default;
        return false;
    }

    private void Add<T>(ConcurrentDictionary<string, Entry<T>> map, long version, string id, T value)
    {
        if (Version != version)
        {
            return;
        }

        // Replacing an entry does not grow the map: the count (which takes every lock of the map) is read only for a new key.
        if (!map.ContainsKey(id) && map.Count >= MaxEntries)
        {
            map.Clear();
        }

        var entry = new Entry<T>(value, _time.GetUtcNow());
        map[id] = entry;
        if (Version != version)
        {
            map.TryRemove(new KeyValuePair<string, Entry<T>>(id, entry));
        }
    }

    private sealed record Entry<T>(T Value, DateTimeOffset Since);

    /// <summary>
    /// The store's subscriber: holds the cache weakly, so a cache (and its service) that is no longer used can be
    /// collected; the next report after that unsubscribes it.
    /// </summary>
    private sealed class Listener
    {
        private readonly WeakReference<ResolutionCache> _cache;
        private IDisposable? _subscription;

        private Listener(ResolutionCache cache) => _cache = new(cache);

        public static void Attach(IBillingStoreChanges changes, ResolutionCache cache)
        {
            var listener = new Listener(cache);
            listener._subscription = changes.Subscribe(listener.OnCommitted);
        }

        private void OnCommitted(BillingStoreChange change)
        {
            if (_cache.TryGetTarget(out var cache))
            {
                cache.OnCommitted(change);
            }
            else
            {
                _subscription?.Dispose();
            }
        }
    }
}
