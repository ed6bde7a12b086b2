using System.Globalization;
using System.Text;
using Billing.Usage;

namespace Billing.Redis;

/// <summary>
/// The key names and hash fields. Every customer belongs to one of <see cref="RedisUsageCounterOptions.CustomerGroups"/>
/// customer groups (<see cref="GroupOf"/>, a stable hash of its id), and every key of a group starts with
/// <c>{prefix}:{g&lt;group&gt;}</c>, so the group is the Redis Cluster hash tag and all of a group's keys live in one slot
/// (one script call may touch them all). Customers appear only in hash fields and in the names of unique-value sets.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>{prefix}:{g7}:i:{generation}</c>: a hash of the idempotency keys the group's customers took during one
/// generation of server time (<c>floor(unix ms / generation ms)</c>, see
/// <see cref="RedisUsageCounterOptions.IdempotencyGeneration"/>); each field is a customer and key
/// (<see cref="IdempotencyField"/>), its value <c>{total}:{expiry unix ms}:{acceptance token}</c>, the total the accepted
/// event produced, when the event's dedup window ends and its token; the field <c>""</c> holds the instant (unix ms) the
/// hash is kept until at least. The hash expires at most a slack (1/64 of a generation, at most a minute) after its last
/// key. The scripts build these names from the start passed in <c>KEYS</c> and the server clock; they carry the group's
/// hash tag, so they are in the slot of the keys passed.</item>
/// <item><c>{prefix}:{g7}:c:{day}</c>: a hash of the group's counters of periods starting on one UTC day (<see cref="Day"/>:
/// days since the Unix epoch, floor, of the period start); each field is the exact period start, a customer and a meter
/// (<see cref="CounterField(in UsageCounterKey)"/>), its value <c>{total}:{expiry unix ms}</c>, for <see cref="MeterAggregation.Last"/>
/// followed by <c>:{UTC ticks}:{ordinal key}</c> of the latest event. The expiry is the counter's own: its last write plus
/// its retention; once passed, the counter reads as absent (0) and the next write starts it afresh. The field <c>""</c>
/// holds the instant (unix ms) the hash is kept until at least; the hash expires a slack (1/64 of the retention, at most a
/// minute) after the latest expiry of its counters, so its expiry moves once per slack, not per write, and never
/// back.</item>
/// <item><c>{prefix}:{g7}:u:{counter field}</c>: the set of values seen by a <see cref="MeterAggregation.UniqueCount"/>
/// counter (<see cref="CounterField(in UsageCounterKey)"/>, which starts with the exact period start); expires with its counter, and is
/// deleted when its counter restarts after expiring.</item>
/// </list>
/// <para>A customer is written as the number of UTF-8 bytes of its id, <c>:</c> and the id (<see cref="CustomerTag"/>),
/// followed by the meter or idempotency key, so a field names exactly one customer and meter (or key) whatever characters
/// they hold. The period start (<see cref="Period"/>) is whole Unix seconds, with <c>.fffffff</c> appended only when it has
/// a fraction of a second: digits, <c>-</c> and <c>.</c>, never <c>:</c>, so in a counter field it ends at the first
/// <c>:</c> and the rest is the customer's tag and the meter.</para>
/// <para><b>Why a day.</b> Periods of different subscriptions start at different instants (periods are typically
/// anchored at the subscription's creation instant, to the sub-second), so a hash per exact period start would hold one counter and a script call
/// would read and write about one hash per event. Bucketing by the UTC day of the start lets the counters of a group whose
/// periods start the same UTC day share a hash, read with one <c>HMGET</c> and written with one <c>HSET</c> per call;
/// every counter keeps its own exact period start (in its field) and its own expiry (in its value), so no semantic
/// depends on the bucket. The cost: a hash's memory is freed only when it expires, after the latest expiry of its
/// counters, so a counter with a long retention keeps its bucket's shorter, already expired counters (which read as 0) in
/// memory until then (an expired counter is not deleted on its own). A day is coarse enough that subscriptions created over
/// a day share a bucket, and fine enough that a bucket's counters mostly have the same period length and retention.</para>
/// <para>With few groups, counters occupy few Redis Cluster slots (at most one per group), so at most that many nodes
/// hold them; see <see cref="RedisUsageCounterOptions.CustomerGroups"/>.</para>
/// </remarks>
internal sealed class RedisKeys
{
    private readonly string?[] _groups;
    private readonly string?[] _idempotency;

    public RedisKeys(string prefix, int groups)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(groups, 1);
        Prefix = prefix;
        _groups = new string?[groups];
        _idempotency = new string?[groups];
    }

    public string Prefix { get; }

    /// <summary>The number of customer groups.</summary>
    public int Groups => _groups.Length;

    /// <summary>The customer's group: FNV-1a (32 bits) over the UTF-16 code units of its id (each as two bytes, low byte
    /// first), modulo <paramref name="groups"/>. Stable across processes, runtimes and versions.</summary>
    public static int GroupOf(string customerId, int groups)
    {
        const uint OffsetBasis = 2_166_136_261, Prime = 16_777_619;
        var hash = OffsetBasis;
        foreach (var c in customerId)
        {
            hash = unchecked((hash ^ (byte)c) * Prime);
            hash = unchecked((hash ^ (uint)(c >> 8)) * Prime);
        }

        return (int)(hash % (uint)groups);
    }

    /// <summary>The customer's group with this instance's number of groups.</summary>
    public int Group(string customerId) => GroupOf(customerId, _groups.Length);

    /// <summary><c>{prefix}:{g7}</c>: the part every key of group 7 starts with.</summary>
    public string GroupKey(int group) =>
        _groups[group] ??= Prefix + ":{g" + group.ToString(CultureInfo.InvariantCulture) + "}";

    /// <summary><c>{prefix}:{g7}:i:</c>: the start of the names of the group's idempotency hashes (the scripts append the
    /// generation).</summary>
    public string IdempotencyHashes(int group) => _idempotency[group] ??= GroupKey(group) + ":i:";

    /// <summary><c>{prefix}:{g7}:c:{day}</c>: the hash of the group's counters of periods starting on the UTC day
    /// <paramref name="day"/> (<see cref="Day"/>).</summary>
    public string CounterHash(int group, long day) =>
        GroupKey(group) + ":c:" + day.ToString(CultureInfo.InvariantCulture);

    /// <summary>The hash of the group's counters of periods starting the same UTC day as <paramref name="periodStart"/>.</summary>
    public string CounterHash(int group, DateTimeOffset periodStart) => CounterHash(group, Day(periodStart));

    /// <summary><c>{prefix}:{g7}:u:{counter field}</c>: the set of values seen by a UniqueCount counter.</summary>
    public string UniqueSet(int group, in UsageCounterKey counter) => GroupKey(group) + ":u:" + CounterField(counter);

    /// <summary>The UTC day of an instant: whole days since the Unix epoch, rounded down (negative before 1970).</summary>
    public static long Day(DateTimeOffset instant) => SinceEpoch(instant, TimeSpan.TicksPerDay, out _);

    /// <summary><c>{UTF-8 bytes of the id}:{id}</c>: what a field of the customer starts with.</summary>
    public static string CustomerTag(string customerId) =>
        Encoding.UTF8.GetByteCount(customerId).ToString(CultureInfo.InvariantCulture) + ":" + customerId;

    /// <summary>The counter's field in its day hash: <c>{period start}:{customer tag}{meter}</c> (<see cref="Period"/>,
    /// <see cref="CustomerTag"/>), so it names exactly one period start, customer and meter.</summary>
    public static string CounterField(in UsageCounterKey counter) => CounterField(CustomerTag(counter.CustomerId), counter);

    /// <summary><see cref="CounterField(in UsageCounterKey)"/> with the customer's tag already at hand.</summary>
    public static string CounterField(string customerTag, in UsageCounterKey counter) =>
        Period(counter.PeriodStart) + ":" + customerTag + counter.MeterKey;

    /// <summary>An idempotency key's field: the customer's tag (<see cref="CustomerTag"/>) followed by the key.</summary>
    public static string IdempotencyField(string customerTag, string idempotencyKey) => customerTag + idempotencyKey;

    /// <summary>The period start as Unix seconds (floor), with the fraction in ticks appended when there is one.</summary>
    public static string Period(DateTimeOffset periodStart)
    {
        var seconds = SinceEpoch(periodStart, TimeSpan.TicksPerSecond, out var fraction);
        return fraction == 0
            ? seconds.ToString(CultureInfo.InvariantCulture)
            : seconds.ToString(CultureInfo.InvariantCulture) + "." + fraction.ToString("D7", CultureInfo.InvariantCulture);
    }

    /// <summary>Whole units of <paramref name="unitTicks"/> since the Unix epoch, rounded down (so negative before 1970),
    /// and the ticks past the last whole unit (0 or more).</summary>
    private static long SinceEpoch(DateTimeOffset instant, long unitTicks, out long rest)
    {
        var units = Math.DivRem(instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks, unitTicks, out rest);
        if (rest < 0)
        {
            units--;
            rest += unitTicks;
        }

        return units;
    }
}
