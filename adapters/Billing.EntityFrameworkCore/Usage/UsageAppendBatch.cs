using Billing.InMemory;
using Billing.Usage;

namespace Billing.EntityFrameworkCore.Usage;

/// <summary>
/// A validated append batch: the first event of each (customer, idempotency key), in ordinal key order, and a way
/// back from a stored key to the event's position in the caller's list.
/// </summary>
/// <remarks>
/// Rows go to the database in key order, so concurrent batches take each other's keys in one order (no deadlocks)
/// and the primary key index is written in order. Keys repeated in the batch: the first event (lowest position)
/// wins; the others are never sent and are answered false. Sorting positions (not a dictionary of keys) makes the
/// deduplication a walk over neighbours and the way back a binary search, without hashing any key.
/// </remarks>
internal sealed class UsageAppendBatch
{
    private readonly IReadOnlyList<StoredUsageEvent> _events;
    private readonly int[] _send;

    private UsageAppendBatch(IReadOnlyList<StoredUsageEvent> events, int[] send, int count)
    {
        _events = events;
        _send = send;
        Count = count;
    }

    /// <summary>How many events are sent (the distinct keys).</summary>
    public int Count { get; }

    /// <summary>The <paramref name="i"/>-th event to send, in key order.</summary>
    public StoredUsageEvent this[int i] => _events[_send[i]];

    /// <summary>The caller's position of the <paramref name="i"/>-th event to send.</summary>
    public int PositionAt(int i) => _send[i];

    /// <summary>Validates the events and orders the first event of each key.</summary>
    /// <exception cref="ArgumentException">An event is malformed.</exception>
    public static UsageAppendBatch Create(IReadOnlyList<StoredUsageEvent> events)
    {
        var n = events.Count;
        var order = new int[n];
        for (var i = 0; i < n; i++)
        {
            InMemoryUsageEventStore.Validate(events[i]);
            order[i] = i;
        }

        Array.Sort(order, new ByKeyThenPosition(events));
        var count = 0;
        for (var i = 0; i < n; i++)
        {
            if (count == 0 || Compare(events[order[i]], events[order[count - 1]]) != 0)
            {
                order[count++] = order[i];
            }
        }

        return new UsageAppendBatch(events, order, count);
    }

    /// <summary>
    /// The caller's position of the sent event with this key. Stored keys usually come back in the order they were
    /// sent: <paramref name="cursor"/> (0 for the first key read back) remembers where the last one was, so each is
    /// found by a short forward walk; a key out of that order is found by binary search.
    /// </summary>
    /// <exception cref="InvalidOperationException">The key was not sent.</exception>
    public int PositionOf(string customerId, string idempotencyKey, ref int cursor)
    {
        for (var i = cursor; i < Count; i++)
        {
            var c = Compare(_events[_send[i]], customerId, idempotencyKey);
            if (c == 0)
            {
                cursor = i + 1;
                return _send[i];
            }

            if (c > 0)
            {
                break;
            }
        }

        int lo = 0, hi = Count - 1;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            var c = Compare(_events[_send[mid]], customerId, idempotencyKey);
            if (c == 0)
            {
                return _send[mid];
            }

            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        throw new InvalidOperationException($"The database reported a key that was not sent: ({customerId}, {idempotencyKey}).");
    }

    private static int Compare(StoredUsageEvent a, StoredUsageEvent b) => Compare(a, b.Counter.CustomerId, b.IdempotencyKey);

    private static int Compare(StoredUsageEvent a, string customerId, string idempotencyKey)
    {
        var byCustomer = string.CompareOrdinal(a.Counter.CustomerId, customerId);
        return byCustomer != 0 ? byCustomer : string.CompareOrdinal(a.IdempotencyKey, idempotencyKey);
    }

    private sealed class ByKeyThenPosition(IReadOnlyList<StoredUsageEvent> events) : IComparer<int>
    {
        public int Compare(int x, int y)
        {
            var byKey = UsageAppendBatch.Compare(events[x], events[y]);
            return byKey != 0 ? byKey : x.CompareTo(y);
        }
    }
}
