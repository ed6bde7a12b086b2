using System.Globalization;
using Billing.Usage;
using StackExchange.Redis;

namespace Billing.Redis;

/// <summary>
/// Builds the <c>KEYS</c> and <c>ARGV</c> of one call of <see cref="UsageScripts.Record"/>: the constants of each distinct
/// (counter, aggregation, limit, dedup window, retention) once as a "profile", and per event only what differs (its
/// profile, idempotency key, quantity, and the timestamp and key for Last or the value for UniqueCount).
/// </summary>
/// <remarks>Numbers are passed as integer <see cref="RedisValue"/>s (written as decimal text by the client, no string
/// allocated); events that share the previous event's profile skip the profile lookup.</remarks>
internal static class RecordCommand
{
    private static readonly RedisValue One = 1;

    /// <summary>The call for one event (<see cref="RedisUsageCounter.RecordAsync"/>).</summary>
    public static (RedisKey[] Keys, RedisValue[] Values) Single(RedisKeys names, in UsageCounterEvent e, long defaultRetentionMs, long generationMs)
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

        var values = new RedisValue[3 + UsageScripts.RecordArgumentsPerProfile + EventArguments(aggregation)];
        values[0] = One;
        values[1] = One;
        values[2] = generationMs;
        WriteProfile(values, 3, hashIndex: 2, customerIndex: 1, code, e, defaultRetentionMs);
        WriteEvent(values, 3 + UsageScripts.RecordArgumentsPerProfile, aggregation, e);
        return (keys, values);
    }

    /// <summary>
    /// The call for <paramref name="count"/> events of <paramref name="events"/> from <paramref name="start"/> (positions in
    /// <paramref name="indices"/> when given).
    /// </summary>
    public static (RedisKey[] Keys, RedisValue[] Values) Batch(RedisKeys names, IReadOnlyList<UsageCounterEvent> events, IReadOnlyList<int>? indices, int start, int count, long defaultRetentionMs, long generationMs)
    {
        var counters = new List<Counter>();
        var counterIndex = new Dictionary<UsageCounterKey, int>(); // DateTimeOffset equality compares instants
        var profiles = new List<Profile>();
        var profileIndex = new Dictionary<Profile, int>();
        var eventProfile = new int[count];
        var customers = new Dictionary<string, Customer>(StringComparer.Ordinal);
        var eventArguments = 0;
        var previous = -1;
        for (var i = 0; i < count; i++)
        {
            var e = events[indices is null ? start + i : indices[start + i]];
            eventArguments += EventArguments(e.Aggregation);
            var dedup = Milliseconds(e.DedupWindow);
            var retention = Retention(e, defaultRetentionMs);
            if (previous >= 0 && profiles[previous].Matches(e, dedup, retention))
            {
                eventProfile[i] = previous;
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

        var several = profiles.Count > 1;
        var values = new RedisValue[3 + (profiles.Count * UsageScripts.RecordArgumentsPerProfile) + eventArguments + (several ? count : 0)];
        values[0] = count;
        values[1] = profiles.Count;
        values[2] = generationMs;
        var at = 3;
        foreach (var p in profiles)
        {
            var c = counters[p.CounterIndex];
            values[at] = c.HashIndex;
            values[at + 1] = Code(p.Aggregation);
            values[at + 2] = p.Limit is { } limit ? limit : RedisValue.EmptyString;
            values[at + 3] = p.DedupMs;
            values[at + 4] = p.RetentionMs;
            values[at + 5] = c.Customer.KeyIndex;
            at += UsageScripts.RecordArgumentsPerProfile;
        }

        for (var i = 0; i < count; i++)
        {
            var e = events[indices is null ? start + i : indices[start + i]];
            var p = eventProfile[i];
            if (several)
            {
                values[at++] = p + 1;
            }

            at = WriteEvent(values, at, e.Aggregation, e);
        }

        return (keys, values);
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
        values[at++] = e.IdempotencyKey;
        values[at++] = e.Quantity;
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
