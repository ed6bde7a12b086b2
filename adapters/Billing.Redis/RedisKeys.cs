using System.Globalization;
using Billing.Usage;

namespace Billing.Redis;

/// <summary>
/// The key names: every key of a customer starts with <c>{prefix}:{customer}</c>, so the customer is the Redis Cluster
/// hash tag and all of a customer's keys live in one slot (one script call may touch them all).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>{prefix}:{cus}:i:{generation}</c>: a hash of the idempotency keys taken during one generation of server time
/// (<c>floor(unix ms / generation ms)</c>, see <see cref="RedisUsageCounterOptions.IdempotencyGeneration"/>); each field
/// is a key, its value <c>{total}:{expiry unix ms}</c>, the total the accepted event produced and when the event's dedup
/// window ends; the field <c>""</c> holds the instant (unix ms) the hash is kept until at least. The hash expires at most a
/// slack (1/64 of a generation, at most a minute) after its last key. The scripts build these names from the prefix passed in
/// <c>KEYS</c> and the server clock; they carry the customer's hash tag, so they are in the slot of the keys
/// passed.</item>
/// <item><c>{prefix}:{cus}:c:{meter}:{periodStartUnixSeconds}</c>: a hash with <c>total</c> and, for
/// <see cref="MeterAggregation.Last"/>, <c>last_ts</c> (UTC ticks) and <c>last_key</c> (the idempotency key's ordinal sort
/// key), and <c>exp</c>, the instant (unix ms) it is kept until at least; expires the counter retention after its last
/// write, plus a slack of 1/64 of the retention, at most a minute (so that the expiry moves once per slack, not per
/// write).</item>
/// <item><c>{prefix}:{cus}:u:{meter}:{periodStartUnixSeconds}</c>: the set of values seen by a
/// <see cref="MeterAggregation.UniqueCount"/> counter; expires with its counter.</item>
/// </list>
/// <para>A customer id with <c>{</c>, <c>}</c> or <c>%</c> is escaped (<c>%7B</c>, <c>%7D</c>, <c>%25</c>) so the hash tag
/// always ends at the brace the adapter writes; the period start is whole Unix seconds, with <c>.fffffff</c> appended
/// only when it has a fraction of a second. The period is the last segment, so a meter key may contain <c>:</c>.</para>
/// </remarks>
internal sealed class RedisKeys(string prefix)
{
    public string Prefix { get; } = prefix;

    /// <summary><c>{prefix}:{customer}</c>: the part every key of the customer starts with.</summary>
    public string Customer(string customerId) => Prefix + ":{" + Escape(customerId) + "}";

    /// <summary><c>{prefix}:{customer}:i:</c>: the start of the names of the customer's idempotency hashes (the scripts
    /// append the generation).</summary>
    public static string IdempotencyHashes(string customer) => customer + ":i:";

    public static string Counter(string customer, in UsageCounterKey counter) => customer + ":c:" + counter.MeterKey + ":" + Period(counter.PeriodStart);

    public static string UniqueSet(string customer, in UsageCounterKey counter) => customer + ":u:" + counter.MeterKey + ":" + Period(counter.PeriodStart);

    /// <summary>The period start as Unix seconds (floor), with the fraction in ticks appended when there is one.</summary>
    public static string Period(DateTimeOffset periodStart)
    {
        var ticks = periodStart.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out var fraction);
        if (fraction == 0)
        {
            return seconds.ToString(CultureInfo.InvariantCulture);
        }

        if (fraction < 0)
        {
            seconds--;
            fraction += TimeSpan.TicksPerSecond;
        }

        return seconds.ToString(CultureInfo.InvariantCulture) + "." + fraction.ToString("D7", CultureInfo.InvariantCulture);
    }

    private static string Escape(string customerId) =>
        customerId.AsSpan().IndexOfAny('{', '}', '%') < 0
            ? customerId
            : customerId.Replace("%", "%25", StringComparison.Ordinal).Replace("{", "%7B", StringComparison.Ordinal).Replace("}", "%7D", StringComparison.Ordinal);
}
