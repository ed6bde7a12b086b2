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
        var group = names.Group(e.Counter.CustomerId);
        var aggregation = e.Aggregation;
        var code = Code(aggregation);
        var unique = aggregation == MeterAggregation.UniqueCount;
        var keys = new RedisKey[unique ? 3 : 2];
        keys[0] = names.IdempotencyHashes(group);
        keys[1] = names.CounterHash(group, e.Counter.PeriodStart);
        if (unique)
        {
            keys[2] = names.UniqueSet(group, e.Counter);
        }

        var tag = RedisKeys.CustomerTag(e.Counter.CustomerId);
        const int Header = 6, Profile = Header + UsageScripts.RecordArgumentsPerCounter, Run = Profile + UsageScripts.RecordArgumentsPerProfile;
        var values = new RedisValue[Run + 4 + EventArguments(aggregation)];
        values[0] = One;
        values[1] = One;
        values[2] = generationMs;
        values[3] = One; // in the event's order
        values[4] = One;
        values[5] = One;
        values[Header] = 2; // the counter: its hash, field and set
        values[Header + 1] = tag + e.Counter.MeterKey;
        values[Header + 2] = unique ? 3 : 0;
        WriteProfile(values, Profile, counter: 1, groupIndex: 1, code, e, defaultRetentionMs);
        values[Run] = One; // one event, group 1, profile 1
        values[Run + 1] = One;
        values[Run + 2] = One;
        values[Run + 3] = RedisKeys.IdempotencyField(tag, e.IdempotencyKey);
        WriteEvent(values, Run + 4, aggregation, e);
        return new RecordCall(keys, values, null);
    }

    /// <summary>
    /// The call for <paramref name="count"/> events of <paramref name="events"/> from <paramref name="start"/> (positions in
    /// <paramref name="indices"/> when given). With <paramref name="byGroup"/> the events go grouped by customer group (each
    /// group's in their order), otherwise in their order (consecutive events of one group form a run).
    /// </summary>
    public static RecordCall Batch(RedisKeys names, IReadOnlyList<UsageCounterEvent> events, IReadOnlyList<int>? indices, int start, int count, long defaultRetentionMs, long generationMs, bool byGroup = true)
    {
        var keys = new List<RedisKey>();
        var groupIndex = new Dictionary<int, int>(); // group -> its number in the call (from 0)
        var groupKeys = new List<int>(); // per group number: the KEYS index of its idempotency hashes' name (from 1)
        var hashIndex = new Dictionary<(int Group, long PeriodTicks), int>();
        var counters = new List<Counter>();
        var counterIndex = new Dictionary<UsageCounterKey, int>(); // DateTimeOffset equality compares instants
        var profiles = new List<Profile>();
        var profileIndex = new Dictionary<Profile, int>();
        var eventProfile = new int[count];
        var eventGroup = new int[count];
        var fields = new string[count];
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
                eventGroup[i] = eventGroup[i - 1];
                fields[i] = RedisKeys.IdempotencyField(counters[profiles[previous].CounterIndex].Tag, e.IdempotencyKey);
                continue;
            }

            if (!counterIndex.TryGetValue(e.Counter, out var c))
            {
                var group = names.Group(e.Counter.CustomerId);
                if (!groupIndex.TryGetValue(group, out var g))
                {
                    keys.Add(names.IdempotencyHashes(group));
                    g = groupKeys.Count;
                    groupKeys.Add(keys.Count); // Lua indexes from 1
                    groupIndex.Add(group, g);
                }

                if (!hashIndex.TryGetValue((group, e.Counter.PeriodStart.UtcTicks), out var h))
                {
                    keys.Add(names.CounterHash(group, e.Counter.PeriodStart));
                    h = keys.Count;
                    hashIndex.Add((group, e.Counter.PeriodStart.UtcTicks), h);
                }

                c = counters.Count;
                counters.Add(new Counter(e.Counter, group, g, h, RedisKeys.CustomerTag(e.Counter.CustomerId)));
                counterIndex.Add(e.Counter, c);
            }

            var counter = counters[c];
            if (e.Aggregation == MeterAggregation.UniqueCount && counter.SetIndex == 0)
            {
                keys.Add(names.UniqueSet(counter.Group, e.Counter));
                counter.SetIndex = keys.Count;
            }

            var profile = new Profile(c, e.Counter, e.Aggregation, e.HardLimit, dedup, retention);
            if (!profileIndex.TryGetValue(profile, out var p))
            {
                p = profiles.Count;
                profiles.Add(profile);
                profileIndex.Add(profile, p);
            }

            eventProfile[i] = previous = p;
            eventGroup[i] = counter.GroupNumber;
            fields[i] = RedisKeys.IdempotencyField(counter.Tag, e.IdempotencyKey);
            if (i == 0 || eventGroup[i] != eventGroup[i - 1])
            {
                runs++;
            }
        }

        // The order the events are sent in (null: theirs) and the runs: a group's consecutive events.
        var groups = groupKeys.Count;
        int[]? order = null;
        if (byGroup && runs > groups)
        {
            runs = groups;
            var next = new int[groups];
            for (var i = 0; i < count; i++)
            {
                next[eventGroup[i]]++;
            }

            for (int g = 0, at = 0; g < groups; g++)
            {
                (next[g], at) = (at, at + next[g]);
            }

            order = new int[count];
            for (var i = 0; i < count; i++)
            {
                order[next[eventGroup[i]]++] = i;
            }
        }

        // The runs: from, to (positions in sent order) and whether their events have several profiles.
        var bounds = new (int From, int To, bool Several)[runs];
        var profileArguments = 0;
        for (int from = 0, r = 0; from < count; r++)
        {
            var first = order is null ? from : order[from];
            var to = from + 1;
            var several = false;
            for (; to < count && eventGroup[order is null ? to : order[to]] == eventGroup[first]; to++)
            {
                several |= eventProfile[order is null ? to : order[to]] != eventProfile[first];
            }

            bounds[r] = (from, to, several);
            profileArguments += several ? to - from : 0;
            from = to;
        }

        // ARGV: the header, the counters, the profiles, then per run its size, group and profile (0: each event names its
        // own), its events' idempotency fields, and per event its profile (when the run has several) and the rest of its
        // arguments.
        var values = new RedisValue[6 + (counters.Count * UsageScripts.RecordArgumentsPerCounter) + (profiles.Count * UsageScripts.RecordArgumentsPerProfile) + (3 * runs) + eventArguments + profileArguments];
        values[0] = count;
        values[1] = profiles.Count;
        values[2] = generationMs;
        values[3] = order is null ? 1 : 0;
        values[4] = runs;
        values[5] = counters.Count;
        var a = 6;
        foreach (var c in counters)
        {
            values[a] = c.HashIndex;
            values[a + 1] = c.Tag + c.Key.MeterKey;
            values[a + 2] = c.SetIndex;
            a += UsageScripts.RecordArgumentsPerCounter;
        }

        foreach (var p in profiles)
        {
            values[a] = p.CounterIndex + 1;
            values[a + 1] = Code(p.Aggregation);
            values[a + 2] = p.Limit is { } limit ? limit : RedisValue.EmptyString;
            values[a + 3] = p.DedupMs;
            values[a + 4] = p.RetentionMs;
            values[a + 5] = groupKeys[counters[p.CounterIndex].GroupNumber];
            a += UsageScripts.RecordArgumentsPerProfile;
        }

        foreach (var (from, to, several) in bounds)
        {
            var first = order is null ? from : order[from];
            values[a] = to - from;
            values[a + 1] = groupKeys[eventGroup[first]];
            values[a + 2] = several ? 0 : eventProfile[first] + 1;
            a += 3;
            for (var s = from; s < to; s++)
            {
                values[a++] = fields[order is null ? s : order[s]];
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

        return new RecordCall([.. keys], values, order);
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

    private static void WriteProfile(RedisValue[] values, int at, int counter, int groupIndex, string code, in UsageCounterEvent e, long defaultRetentionMs)
    {
        values[at] = counter;
        values[at + 1] = code;
        values[at + 2] = e.HardLimit is { } limit ? limit : RedisValue.EmptyString;
        values[at + 3] = Milliseconds(e.DedupWindow);
        values[at + 4] = Retention(e, defaultRetentionMs);
        values[at + 5] = groupIndex;
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

    /// <summary>A counter of the call: its group (and the group's number in the call), the <c>KEYS</c> indexes (from 1) of
    /// its hash and of its set (0: none) and its customer's tag.</summary>
    private sealed class Counter(UsageCounterKey key, int group, int groupNumber, int hashIndex, string tag)
    {
        public UsageCounterKey Key { get; } = key;

        public int Group { get; } = group;

        public int GroupNumber { get; } = groupNumber;

        public int HashIndex { get; } = hashIndex;

        public string Tag { get; } = tag;

        public int SetIndex { get; set; }
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
