using System.Globalization;
using Billing.Usage;
using StackExchange.Redis;

namespace Billing.Redis;

/// <summary>
/// Builds the <c>KEYS</c> and <c>ARGV</c> of one call of <see cref="UsageScripts.Record"/>: each counter's field once (under
/// its hash), each distinct (aggregation, limit, dedup window) once as "settings", and per event only what differs (its
/// idempotency field, quantity, acceptance token, the timestamp and key for Last or the value for UniqueCount, and its
/// counter, settings and counter retention only when the other events of its run have others).
/// </summary>
/// <remarks>Numbers are passed as integer <see cref="RedisValue"/>s (written as decimal text by the client, no string
/// allocated); events of the previous event's counter and settings skip the lookups. The retention is not part of the
/// settings: the metering service gives every counter its own (until its period closes, plus the retention), so as
/// settings it would make one per counter, four arguments and a table each in the script, instead of one argument per
/// event.</remarks>
internal static class RecordCommand
{
    private static readonly RedisValue One = 1;

    /// <summary>The call for one event (<see cref="RedisUsageCounter.RecordAsync"/>).</summary>
    public static RecordCall Single(RedisKeys names, in UsageCounterEvent e, long defaultRetentionMs, long generationMs)
    {
        var group = names.Group(e.Counter.CustomerId);
        var aggregation = e.Aggregation;
        var unique = aggregation == MeterAggregation.UniqueCount;
        var keys = new RedisKey[unique ? 3 : 2];
        keys[0] = names.IdempotencyHashes(group);
        keys[1] = names.CounterHash(group, e.Counter.PeriodStart);
        if (unique)
        {
            keys[2] = names.UniqueSet(group, e.Counter);
        }

        var tag = RedisKeys.CustomerTag(e.Counter.CustomerId);
        var dedup = Milliseconds(e.DedupWindow);
        const int Hash = UsageScripts.RecordHeader;
        var settings = Hash + 3 + (unique ? 2 : 0);
        var run = settings + UsageScripts.RecordArgumentsPerSettings;
        var values = new RedisValue[run + UsageScripts.RecordRunHeader + 1 + EventArguments(aggregation)];
        values[0] = One;
        values[1] = One;
        values[2] = generationMs;
        values[3] = One; // in the event's order
        values[4] = One;
        values[5] = One;
        values[6] = unique ? 1 : 0;
        values[Hash] = 2; // the counter hash, its one counter's field
        values[Hash + 1] = One;
        values[Hash + 2] = RedisKeys.CounterField(tag, e.Counter);
        if (unique)
        {
            values[Hash + 3] = One; // counter 1's set
            values[Hash + 4] = 3;
        }

        WriteSettings(values, settings, aggregation, e.HardLimit, dedup);
        values[run] = One; // one event, group 1, counter 1, settings 1, its retention
        values[run + 1] = One;
        values[run + 2] = dedup;
        values[run + 3] = One;
        values[run + 4] = One;
        values[run + 5] = Retention(e, defaultRetentionMs);
        values[run + 6] = RedisKeys.IdempotencyField(tag, e.IdempotencyKey);
        WriteEvent(values, run + 7, aggregation, e);
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
        var groups = new List<Group>();
        var hashIndex = new Dictionary<(int Group, long Day), int>(); // counters of periods starting the same UTC day share a hash
        var hashes = new List<Hash>();
        var counters = new List<Counter>();
        var counterIndex = new Dictionary<UsageCounterKey, int>(); // DateTimeOffset equality compares instants
        var settings = new List<Settings>();
        var settingsIndex = new Dictionary<Settings, int>();
        var eventCounter = new int[count];
        var eventSettings = new int[count];
        var eventRetention = new long[count];
        var eventGroup = new int[count];
        var fields = new string[count];
        var eventArguments = 0;
        var sets = 0;
        var runs = 0;
        for (var i = 0; i < count; i++)
        {
            var e = events[indices is null ? start + i : indices[start + i]];
            eventArguments += EventArguments(e.Aggregation);
            var dedup = Milliseconds(e.DedupWindow);
            eventRetention[i] = Retention(e, defaultRetentionMs);
            var current = new Settings(e.Aggregation, e.HardLimit, dedup);
            if (i > 0 && counters[eventCounter[i - 1]].Matches(e.Counter) && settings[eventSettings[i - 1]] == current)
            {
                eventCounter[i] = eventCounter[i - 1];
                eventSettings[i] = eventSettings[i - 1];
                eventGroup[i] = eventGroup[i - 1];
                fields[i] = RedisKeys.IdempotencyField(counters[eventCounter[i]].Tag, e.IdempotencyKey);
                continue;
            }

            if (!counterIndex.TryGetValue(e.Counter, out var c))
            {
                var group = names.Group(e.Counter.CustomerId);
                if (!groupIndex.TryGetValue(group, out var g))
                {
                    keys.Add(names.IdempotencyHashes(group));
                    g = groups.Count;
                    groups.Add(new Group(keys.Count)); // Lua indexes from 1
                    groupIndex.Add(group, g);
                }

                var day = RedisKeys.Day(e.Counter.PeriodStart);
                if (!hashIndex.TryGetValue((group, day), out var h))
                {
                    keys.Add(names.CounterHash(group, day));
                    h = hashes.Count;
                    hashes.Add(new Hash(keys.Count));
                    hashIndex.Add((group, day), h);
                }

                c = counters.Count;
                counters.Add(new Counter(e.Counter, group, g, RedisKeys.CustomerTag(e.Counter.CustomerId)));
                hashes[h].Counters.Add(c);
                counterIndex.Add(e.Counter, c);
            }

            var counter = counters[c];
            if (e.Aggregation == MeterAggregation.UniqueCount && counter.SetIndex == 0)
            {
                keys.Add(names.UniqueSet(counter.Group, e.Counter));
                counter.SetIndex = keys.Count;
                sets++;
            }

            if (!settingsIndex.TryGetValue(current, out var s))
            {
                s = settings.Count;
                settings.Add(current);
                settingsIndex.Add(current, s);
            }

            eventCounter[i] = c;
            eventSettings[i] = s;
            eventGroup[i] = counter.GroupNumber;
            var groupOf = groups[counter.GroupNumber];
            groupOf.Window = Math.Max(groupOf.Window, dedup);
            fields[i] = RedisKeys.IdempotencyField(counter.Tag, e.IdempotencyKey);
            if (i == 0 || eventGroup[i] != eventGroup[i - 1])
            {
                runs++;
            }
        }

        // The order the events are sent in (null: theirs) and the runs: a group's consecutive events.
        int[]? order = null;
        if (byGroup && runs > groups.Count)
        {
            runs = groups.Count;
            var next = new int[groups.Count];
            for (var i = 0; i < count; i++)
            {
                next[eventGroup[i]]++;
            }

            for (int g = 0, at = 0; g < groups.Count; g++)
            {
                (next[g], at) = (at, at + next[g]);
            }

            order = new int[count];
            for (var i = 0; i < count; i++)
            {
                order[next[eventGroup[i]]++] = i;
            }
        }

        // The runs: from, to (positions in sent order) and whether their events share one counter, one settings and one
        // retention.
        var bounds = new (int From, int To, bool OneCounter, bool OneSettings, bool OneRetention)[runs];
        var perEvent = 0;
        for (int from = 0, r = 0; from < count; r++)
        {
            var first = order is null ? from : order[from];
            var to = from + 1;
            var oneCounter = true;
            var oneSettings = true;
            var oneRetention = true;
            for (; to < count && eventGroup[order is null ? to : order[to]] == eventGroup[first]; to++)
            {
                var i = order is null ? to : order[to];
                oneCounter &= eventCounter[i] == eventCounter[first];
                oneSettings &= eventSettings[i] == eventSettings[first];
                oneRetention &= eventRetention[i] == eventRetention[first];
            }

            bounds[r] = (from, to, oneCounter, oneSettings, oneRetention);
            perEvent += ((oneCounter ? 0 : 1) + (oneSettings ? 0 : 1) + (oneRetention ? 0 : 1)) * (to - from);
            from = to;
        }

        // ARGV: the header; per counter hash its KEYS index, its number of counters and their fields (numbering the
        // counters); per set its counter and KEYS index; the settings; then per run its size, group, window, counter,
        // settings and retention (0: each event names its own), its events' idempotency fields, and per event its counter,
        // settings and retention (when the run's are 0) and the rest of its arguments.
        var values = new RedisValue[UsageScripts.RecordHeader + (2 * hashes.Count) + counters.Count + (2 * sets)
            + (settings.Count * UsageScripts.RecordArgumentsPerSettings) + (UsageScripts.RecordRunHeader * runs) + count + eventArguments + perEvent];
        values[0] = count;
        values[1] = settings.Count;
        values[2] = generationMs;
        values[3] = order is null ? 1 : 0;
        values[4] = runs;
        values[5] = hashes.Count;
        values[6] = sets;
        var a = UsageScripts.RecordHeader;
        var number = 0;
        foreach (var hash in hashes)
        {
            values[a] = hash.KeyIndex;
            values[a + 1] = hash.Counters.Count;
            a += 2;
            foreach (var c in hash.Counters)
            {
                var counter = counters[c];
                counter.Number = ++number; // Lua indexes from 1
                values[a++] = RedisKeys.CounterField(counter.Tag, counter.Key);
            }
        }

        foreach (var counter in counters)
        {
            if (counter.SetIndex > 0)
            {
                values[a] = counter.Number;
                values[a + 1] = counter.SetIndex;
                a += 2;
            }
        }

        foreach (var x in settings)
        {
            WriteSettings(values, a, x.Aggregation, x.Limit, x.DedupMs);
            a += UsageScripts.RecordArgumentsPerSettings;
        }

        foreach (var (from, to, oneCounter, oneSettings, oneRetention) in bounds)
        {
            var first = order is null ? from : order[from];
            var group = groups[eventGroup[first]];
            values[a] = to - from;
            values[a + 1] = group.KeyIndex;
            values[a + 2] = group.Window;
            values[a + 3] = oneCounter ? counters[eventCounter[first]].Number : 0;
            values[a + 4] = oneSettings ? eventSettings[first] + 1 : 0;
            values[a + 5] = oneRetention ? eventRetention[first] : 0;
            a += UsageScripts.RecordRunHeader;
            for (var s = from; s < to; s++)
            {
                values[a++] = fields[order is null ? s : order[s]];
            }

            for (var s = from; s < to; s++)
            {
                var i = order is null ? s : order[s];
                if (!oneCounter)
                {
                    values[a++] = counters[eventCounter[i]].Number;
                }

                if (!oneSettings)
                {
                    values[a++] = eventSettings[i] + 1;
                }

                if (!oneRetention)
                {
                    values[a++] = eventRetention[i];
                }

                var e = events[indices is null ? start + i : indices[start + i]];
                a = WriteEvent(values, a, e.Aggregation, e);
            }
        }

        return a == values.Length
            ? new RecordCall([.. keys], values, order)
            : throw new InvalidOperationException($"Built {a} of {values.Length} script arguments.");
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

    private static void WriteSettings(RedisValue[] values, int at, MeterAggregation aggregation, long? limit, long dedupMs)
    {
        values[at] = Code(aggregation);
        values[at + 1] = limit is { } l ? l : RedisValue.EmptyString;
        values[at + 2] = dedupMs;
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

    /// <summary>A customer group of the call: the <c>KEYS</c> index (from 1) of its idempotency hashes' name and the longest
    /// dedup window of its events.</summary>
    private sealed class Group(int keyIndex)
    {
        public int KeyIndex { get; } = keyIndex;

        public long Window { get; set; }
    }

    /// <summary>A counter hash of the call (a group's counters of periods starting on one UTC day): its <c>KEYS</c> index
    /// (from 1) and its counters.</summary>
    private sealed class Hash(int keyIndex)
    {
        public int KeyIndex { get; } = keyIndex;

        public List<int> Counters { get; } = [];
    }

    /// <summary>A counter of the call: its group (and the group's number in the call), its customer's tag, the <c>KEYS</c>
    /// index (from 1) of its set (0: none) and its number in the script (from 1, in the order of the hashes).</summary>
    private sealed class Counter(UsageCounterKey key, int group, int groupNumber, string tag)
    {
        public UsageCounterKey Key { get; } = key;

        public int Group { get; } = group;

        public int GroupNumber { get; } = groupNumber;

        public string Tag { get; } = tag;

        public int SetIndex { get; set; }

        public int Number { get; set; }

        /// <summary>Whether <paramref name="other"/> is this counter (ordinal ids, the same instant).</summary>
        public bool Matches(in UsageCounterKey other) =>
            other.PeriodStart.UtcTicks == Key.PeriodStart.UtcTicks
            && string.Equals(other.CustomerId, Key.CustomerId, StringComparison.Ordinal)
            && string.Equals(other.MeterKey, Key.MeterKey, StringComparison.Ordinal);
    }

    /// <summary>What events of one settings share besides their counter and retention.</summary>
    private readonly record struct Settings(MeterAggregation Aggregation, long? Limit, long DedupMs);
}
