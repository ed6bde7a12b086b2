namespace Billing.Redis;

/// <summary>How <see cref="RedisUsageCounter.RecordBatchAsync"/> splits a batch into script calls.</summary>
public enum RedisBatchMode
{
    /// <summary>
    /// One script call for the whole batch when every connected server is a standalone Redis (or a replica set behind
    /// Sentinel); one call per hash slot on Redis Cluster, on a proxy, and while the connection does not know yet what the
    /// server is. A call the server rejects as crossing slots (<c>CROSSSLOT</c>: the server turned out to be a cluster)
    /// did not run and is sent again split by slot.
    /// </summary>
    Auto = 0,

    /// <summary>Always one script call per hash slot (the customer groups' hash tags, see <see cref="RedisUsageCounterOptions.CustomerGroups"/>), whatever the server says it is.</summary>
    PerSlot = 1,
}
