namespace Billing.Redis;

/// <summary>How <see cref="RedisUsageCounter"/> connects to Redis and names its keys.</summary>
/// <remarks>
/// Validated when the host starts (<c>AddRedisUsageCounters</c>) or when a counter is created; every problem is reported
/// with the option's name.
/// </remarks>
public sealed class RedisUsageCounterOptions
{
    /// <summary>The default <see cref="KeyPrefix"/>: <c>billing</c>.</summary>
    public const string DefaultKeyPrefix = "billing";

    /// <summary>The longest <see cref="KeyPrefix"/>.</summary>
    public const int MaxKeyPrefixLength = 64;

    /// <summary>The largest <see cref="MaxEventsPerScriptCall"/>.</summary>
    public const int MaxScriptCallSize = 10_000;

    /// <summary>The default <see cref="CustomerGroups"/>: 16.</summary>
    public const int DefaultCustomerGroups = 16;

    /// <summary>The largest <see cref="CustomerGroups"/>: 16,384, the number of Redis Cluster hash slots.</summary>
    public const int MaxCustomerGroups = 16_384;

    /// <summary>
    /// A StackExchange.Redis configuration string, for example <c>redis-1:6379,redis-2:6379,password=…,abortConnect=false</c>.
    /// Required by <see cref="RedisUsageCounter.ConnectAsync"/> and <c>AddRedisUsageCounters</c>; not used when the counter is
    /// given a multiplexer.
    /// </summary>
    /// <remarks>
    /// <c>abortConnect=false</c> is recommended: the client then starts while Redis is down and reconnects on its own. With
    /// the default (<c>abortConnect=true</c>) a failed first connect fails the call that needed it, and the next call tries
    /// again.
    /// </remarks>
    public string? ConfigurationString { get; set; }

    /// <summary>
    /// The first part of every key (default <c>billing</c>): keys look like <c>billing:{g7}:c:1740787200</c>. 1 to 64
    /// characters, without <c>{</c> or <c>}</c> (the braces hold the customer group's Redis Cluster hash tag) and without
    /// white space.
    /// </summary>
    public string KeyPrefix { get; set; } = DefaultKeyPrefix;

    /// <summary>
    /// How long a counter is kept after its last write when the event does not say
    /// (<see cref="Usage.UsageCounterEvent.CounterRetention"/> is zero): 70 days by default. Must be positive.
    /// </summary>
    public TimeSpan DefaultCounterRetention { get; set; } = TimeSpan.FromDays(70);

    /// <summary>
    /// How long one generation of idempotency keys spans (default 35 days, the default dedup window; 1 second to 400 days).
    /// </summary>
    /// <remarks>
    /// Idempotency keys are fields of one hash per customer group (<see cref="CustomerGroups"/>) and generation of server
    /// time, so a script call takes a group's keys with a handful of Redis calls instead of one per event. Each field carries the instant its dedup
    /// window ends, so a key is free again exactly when its window has passed, whatever the generation. A lookup searches
    /// the generations the longest window among the call's events (at least one generation) can reach: the current and
    /// the previous one while windows are not longer than a generation. A hash is deleted when its last key expires (up to 1/64 of
    /// a generation, at most a minute, later), so an expired key may use memory for up to one more generation. Shorter generations free memory sooner and cost more
    /// lookups per call when windows are longer than a generation. A key taken with a window longer than those of the
    /// group's later events is found while a generation of those later windows still reaches it; keep one dedup window
    /// per deployment (the metering service does).
    /// </remarks>
    public TimeSpan IdempotencyGeneration { get; set; } = TimeSpan.FromDays(35);

    /// <summary>
    /// How many customer groups share the keys (default 16; 1 to 16,384). Every customer belongs to one group, by a stable
    /// hash of its id; the idempotency keys and counters of a group's customers are fields of a few hashes per group (one
    /// per generation of keys, one per UTC day that periods start on), so a script call reads and writes each group's
    /// hashes once, however many of its customers the call's events touch.
    /// </summary>
    /// <remarks>
    /// <para>Fewer groups mean fewer Redis calls per script call when a batch's events are spread over many customers (a
    /// batch of 100 events over 1,000 customers touches at most 16 groups with the default, instead of about 100 customers'
    /// keys), and larger hashes: a counter hash holds the counters of about (customers ÷ groups) × meters whose periods
    /// start the same UTC day, an idempotency hash the keys those customers took in a generation. Counter hashes are per day
    /// rather than per exact period start because periods of different subscriptions start at different instants (anchored
    /// at their creation); the exact start is part of each counter's field. A counter past its retention keeps its field
    /// (read as absent) until it is written again or its hash expires with the latest counter of its group and day, so a
    /// counter with a long retention keeps its day's shorter, expired counters in memory until it expires. On a standalone
    /// server a batch is one script call whatever the number.</para>
    /// <para><b>Redis Cluster.</b> The group is the hash tag (<c>billing:{g7}:…</c>), so counters live in at most this many
    /// slots, i.e. on at most this many primary nodes, and a batch is sent as one call per slot its groups occupy. Raise it
    /// to spread counters and their load over a larger cluster (several groups per primary node); the calls per batch grow
    /// with the groups it touches.</para>
    /// <para><b>Changing it</b> (or upgrading from a version that keyed by customer, or counters by exact period start) moves customers to other keys: keys of
    /// another layout are not read any more, so counters start from zero and earlier idempotency keys are not seen by the
    /// counters. Rebuild the counters from the durable events (<see cref="RedisUsageCounter.RebuildAsync"/>), which also
    /// takes their keys again; the old keys expire on their own.</para>
    /// </remarks>
    public int CustomerGroups { get; set; } = DefaultCustomerGroups;

    /// <summary>
    /// The most events one script call carries (default 1,000; 1 to 10,000): a larger batch of one customer, and a rebuild,
    /// are split into consecutive calls so that no script blocks the server for long.
    /// </summary>
    public int MaxEventsPerScriptCall { get; set; } = 1_000;

    /// <summary>
    /// How a batch is split into script calls (default <see cref="RedisBatchMode.Auto"/>: one call per batch on a standalone
    /// server, one per hash slot on Redis Cluster).
    /// </summary>
    public RedisBatchMode BatchMode { get; set; } = RedisBatchMode.Auto;

    /// <summary>
    /// Whether concurrent <see cref="RedisUsageCounter.RecordAsync"/> and <see cref="RedisUsageCounter.RecordBatchAsync"/>
    /// calls share script calls on a standalone server (default true): at most two such calls are in flight per counter
    /// instance, and the events and batches recorded meanwhile go together, whole and in arrival order, in the next one (as
    /// many as fit in <see cref="MaxEventsPerScriptCall"/>; a larger batch goes on its own). Every event keeps its own atomic
    /// check and its own result, and every batch the results and overflow behaviour of a call of its own; this only saves
    /// round trips and server work (the script reads and writes each customer group's hashes once per call, not once per
    /// batch). Set false to send one script call per event and per batch.
    /// </summary>
    public bool CoalesceRecords { get; set; } = true;
}
