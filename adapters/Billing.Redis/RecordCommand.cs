using System.Globalization;
using Billing.Usage;
using StackExchange.Redis;

namespace Billing.Redis;

/// <summary>
/// Builds the <c>KEYS</c> and <c>ARGV</c> of one call of <see cref="UsageScripts.Record"/>: the constants of each distinct
/// (counter, aggregation, limit, dedup window, retention) once as a "profile", and per event only what differs (its
/// profile, idempotency key, quantity, acceptance token, and the timestamp and key for Last or the value for UniqueCount).
/// </summary>
/// <remarks>Numbers are passed as integer <see cref="RedisValue"/>s (written as decimal text by the client, no string
/// allocated); events that share the previous event's profile skip the profile lookup.</remarks>
internal static class RecordCommand
{
    private static readonly RedisValue One = 1;

    /// <summary>The call for one event (<see cref="RedisUsageCounter.RecordAsync"/>).</summary>
    public static RecordCall Single(RedisKeys names, in UsageCounterEvent e, long defaultRetentionMs, long generationMs)
    {
        var customer = names.Customer(e.Counter.CustomerId);
        var aggregation = e.Aggregation;
        var code = Code(aggregation);
        var unique = aggregation == MeterAggregation.UniqueCount;
        var keys = new RedisKey[unique ? 3 : 2];
        keys[0] = RedisKeys.IdempotencyHashes(customer);
        keys[1] = RedisKeys.Counter(customer, e.Counter);
        if (unique)
        {
            keys[2] = RedisKeys.UniqueSet(customer, e.Counter);
        }

        const int Header = 5, Group = Header + UsageScripts.RecordArgumentsPerProfile;
        var values = new RedisValue[Group + 4 + EventArguments(aggregation)];
        values[0] = One;
        values[1] = One;
        values[2] = generationMs;
        values[3] = One; // in the event's order
        values[4] = One;
        WriteProfile(values, Header, hashIndex: 2, customerIndex: 1, code, e, defaultRetentionMs);
        values[Group] = One; // one event, customer 1, profile 1
        values[Group + 1] = One;
        values[Group + 2] = One;
        values[Group + 3] = e.IdempotencyKey;
        WriteEvent(values, Group + 4, aggregation, e);
        return new RecordCall(keys, values, null);
    }

    /// <summary>
    /// The call for <paramref name="count"/> events of <paramref name="events"/> from <paramref name="start"/> (positions in
    /// <paramref name="indices"/> when given). With <paramref name="byCustomer"/> the events go grouped by customer (each
    /// customer's in their order), otherwise in their order (consecutive events of one customer form a group).
    /// </summary>
    public static RecordCall Batch(RedisKeys names, IReadOnlyList<UsageCounterEvent> events, IReadOnlyList<int>? indices, int start, int count, long defaultRetentionMs, long generationMs, bool byCustomer = true)
    {
        var counters = new List<Counter>();
        var counterIndex = new Dictionary<UsageCounterKey, int>(); // DateTimeOffset equality compares instants
        var profiles = new List<Profile>();
        var profileIndex = new Dictionary<Profile, int>();
        var eventProfile = new int[count];
        var eventCustomer = new int[count];
        var customers = new Dictionary<string, Customer>(StringComparer.Ordinal);
        var eventArguments = 0;
        var previous = -1;
        var runs = 0;
        for (var i = 0; i < count; i++)
        {
            var e = events[indices is null ? start + i : indices[start + i]];
            eventArguments += 1 + EventArguments(e.Aggregation);
            var dedup = Milliseconds(e.DedupWindow);
            var retention = Retention(e, defaultRetentionMs);
            if (previous >= 0 && profiles[previous].Matches(e, dedup, retention))
            {
                eventProfile[i] = previous;
                eventCustomer[i] = eventCustomer[i - 1];
                continue;
            }

            if (!counterIndex.TryGetValue(e.Counter, out var c))
            {
                if (!customers.TryGetValue(e.Counter.CustomerId, out var customer))
                {
                    customer = new Customer(names.Customer(e.Counter.CustomerId), customers.Count + 1); // Lua indexes from 1
                    customers.Add(e.Counter.CustomerId, customer);
                }

                c = counters.Count;
                counters.Add(new Counter(e.Counter, customer));
                counterIndex.Add(e.Counter, c);
            }

            if (e.Aggregation == MeterAggregation.UniqueCount)
            {
                counters[c].NeedsSet = true;
            }

            var profile = new Profile(c, e.Counter, e.Aggregation, e.HardLimit, dedup, retention);
            if (!profileIndex.TryGetValue(profile, out var p))
            {
                p = profiles.Count;
                profiles.Add(profile);
                profileIndex.Add(profile, p);
            }

            eventProfile[i] = previous = p;
            eventCustomer[i] = counters[c].Customer.KeyIndex;
            if (i == 0 || eventCustomer[i] != eventCustomer[i - 1])
            {
                runs++;
            }
        }

        // The order the events are sent in (null: theirs) and the groups: a customer's consecutive events.
        int[]? order = null;
        var groups = runs;
        if (byCustomer && runs > customers.Count)
        {
            groups = customers.Count;
            var next = new int[customers.Count + 1];
            for (var i = 0; i < count; i++)
            {
                next[eventCustomer[i]]++;
            }

            for (int k = 1, at = 0; k <= customers.Count; k++)
            {
                (next[k], at) = (at, at + next[k]);
            }

            order = new int[count];
            for (var i = 0; i < count; i++)
            {
                order[next[eventCustomer[i]]++] = i;
            }
        }

        // KEYS: each customer's idempotency hashes, then each counter's hash (and its set where a UniqueCount event uses it).
        var keyCount = customers.Count;
        foreach (var c in counters)
        {
            c.HashIndex = keyCount + 1; // Lua indexes from 1
            keyCount += c.NeedsSet ? 2 : 1;
        }

        var keys = new RedisKey[keyCount];
        foreach (var customer in customers.Values)
        {
            keys[customer.KeyIndex - 1] = RedisKeys.IdempotencyHashes(customer.Prefix);
        }

        foreach (var c in counters)
        {
            keys[c.HashIndex - 1] = RedisKeys.Counter(c.Customer.Prefix, c.Key);
            if (c.NeedsSet)
            {
                keys[c.HashIndex] = RedisKeys.UniqueSet(c.Customer.Prefix, c.Key);
            }
        }

        // The groups: from, to (positions in sent order) and whether their events have several profiles.
        var bounds = new (int From, int To, bool Several)[groups];
        var profileArguments = 0;
        for (int from = 0, g = 0; from < count; g++)
        {
            var first = order is null ? from : order[from];
            var to = from + 1;
            var several = false;
            for (; to < count && eventCustomer[order is null ? to : order[to]] == eventCustomer[first]; to++)
            {
                several |= eventProfile[order is null ? to : order[to]] != eventProfile[first];
            }

            bounds[g] = (from, to, several);
            profileArguments += several ? to - from : 0;
            from = to;
        }

        // ARGV: the header, the profiles, then per group its size, customer and profile (0: each event names its own),
        // its events' idempotency keys, and per event its profile (when the group has several) and the rest of its arguments.
        var values = new RedisValue[5 + (profiles.Count * UsageScripts.RecordArgumentsPerProfile) + (3 * groups) + eventArguments + profileArguments];
        values[0] = count;
        values[1] = profiles.Count;
        values[2] = generationMs;
        values[3] = order is null ? 1 : 0;
        values[4] = groups;
        var a = 5;
        foreach (var p in profiles)
        {
            var c = counters[p.CounterIndex];
            values[a] = c.HashIndex;
            values[a + 1] = Code(p.Aggregation);
            values[a + 2] = p.Limit is { } limit ? limit : RedisValue.EmptyString;
            values[a + 3] = p.DedupMs;
            values[a + 4] = p.RetentionMs;
            values[a + 5] = c.Customer.KeyIndex;
            a += UsageScripts.RecordArgumentsPerProfile;
        }

        foreach (var (from, to, several) in bounds)
        {
            var first = order is null ? from : order[from];
            values[a] = to - from;
            values[a + 1] = eventCustomer[first];
            values[a + 2] = several ? 0 : eventProfile[first] + 1;
            a += 3;
            for (var s = from; s < to; s++)
            {
                var i = order is null ? s : order[s];
                values[a++] = events[indices is null ? start + i : indices[start + i]].IdempotencyKey;
            }

            for (var s = from; s < to; s++)
            {
                var i = order is null ? s : order[s];
                if (several)
                {
                    values[a++] = eventProfile[i] + 1;
                }

                var e = events[indices is null ? start + i : indices[start + i]];
                a = WriteEvent(values, a, e.Aggregation, e);
            }
        }

        return new RecordCall(keys, values, order);
    }

    /// <summary>The aggregation's code in the scripts; throws for an unknown one.</summary>
    public static string Code(MeterAggregation aggregation) => aggregation switch
    {
        MeterAggregation.Sum => UsageScripts.Sum,
        MeterAggregation.Count => UsageScripts.Count,
        MeterAggregation.Max => UsageScripts.Max,
        MeterAggregation.Last => UsageScripts.Last,
        MeterAggregation.UniqueCount => UsageScripts.UniqueCount,
        _ => throw new ArgumentOutOfRangeException(nameof(aggregation), aggregation, "Unknown aggregation."),
    };

    /// <summary>Whole milliseconds, rounded up (a positive window never becomes 0, which would not take the key).</summary>
    public static long Milliseconds(TimeSpan span)
    {
        var ms = Math.DivRem(span.Ticks, TimeSpan.TicksPerMillisecond, out var rest);
        return rest > 0 ? ms + 1 : ms;
    }

    /// <summary>The event's counter retention in ms, or the default when it has none.</summary>
    public static long Retention(in UsageCounterEvent e, long defaultRetentionMs) =>
        e.CounterRetention > TimeSpan.Zero ? Milliseconds(e.CounterRetention) : defaultRetentionMs;

    /// <summary>The key's UTF-16 code units as 4 lowercase hex digits each: byte order = <see cref="string.CompareOrdinal(string, string)"/>.</summary>
    public static string OrdinalSortKey(string key) => string.Create(key.Length * 4, key, static (span, k) =>
    {
        for (var i = 0; i < k.Length; i++)
        {
            ((int)k[i]).TryFormat(span.Slice(i * 4, 4), out _, "x4", CultureInfo.InvariantCulture);
        }
    });

    /// <summary>An event's arguments after its idempotency key (and profile): quantity and acceptance token, then timestamp
    /// and ordinal key (Last) or unique value (UniqueCount).</summary>
    private static int EventArguments(MeterAggregation aggregation) => aggregation switch
    {
        MeterAggregation.Last => 4,
        MeterAggregation.UniqueCount => 3,
        _ => 2,
    };

    private static void WriteProfile(RedisValue[] values, int at, int hashIndex, int customerIndex, string code, in UsageCounterEvent e, long defaultRetentionMs)
    {
        values[at] = hashIndex;
        values[at + 1] = code;
        values[at + 2] = e.HardLimit is { } limit ? limit : RedisValue.EmptyString;
        values[at + 3] = Milliseconds(e.DedupWindow);
        values[at + 4] = Retention(e, defaultRetentionMs);
        values[at + 5] = customerIndex;
    }

    private static int WriteEvent(RedisValue[] values, int at, MeterAggregation aggregation, in UsageCounterEvent e)
    {
        values[at++] = e.Quantity;
        values[at++] = e.AcceptanceToken;
        switch (aggregation)
        {
            case MeterAggregation.Last:
                values[at++] = e.Timestamp.UtcTicks;
                values[at++] = OrdinalSortKey(e.IdempotencyKey);
                break;
            case MeterAggregation.UniqueCount:
                values[at++] = e.UniqueValue;
                break;
        }

        return at;
    }

    /// <summary>One script call: its keys and arguments, and the order its events are sent in (event positions in sent
    /// order; null when it is theirs, and then the script stops at an overflow, keeping what the events before it did;
    /// otherwise it writes nothing when an event overflows).</summary>
    internal sealed record RecordCall(RedisKey[] Keys, RedisValue[] Values, int[]? Order);

    /// <summary>A customer of the call: its key prefix and the index of its idempotency hashes' name in <c>KEYS</c> (from 1).</summary>
    private sealed record Customer(string Prefix, int KeyIndex);

    private sealed class Counter(UsageCounterKey key, Customer customer)
    {
        public UsageCounterKey Key { get; } = key;

        public Customer Customer { get; } = customer;

        public bool NeedsSet { get; set; }

        public int HashIndex { get; set; }
    }

    /// <summary>What events of one profile share; the counter index is derived from the counter, so equality is by value.</summary>
    private readonly record struct Profile(int CounterIndex, UsageCounterKey Counter, MeterAggregation Aggregation, long? Limit, long DedupMs, long RetentionMs)
    {
        public bool Matches(in UsageCounterEvent e, long dedupMs, long retentionMs) =>
            e.Aggregation == Aggregation && e.HardLimit == Limit && dedupMs == DedupMs && retentionMs == RetentionMs
            && e.Counter.PeriodStart.UtcTicks == Counter.PeriodStart.UtcTicks
            && string.Equals(e.Counter.CustomerId, Counter.CustomerId, StringComparison.Ordinal)
            && string.Equals(e.Counter.MeterKey, Counter.MeterKey, StringComparison.Ordinal);
    }
}
