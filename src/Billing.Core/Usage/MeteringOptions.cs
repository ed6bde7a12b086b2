using Billing.Subscriptions;

namespace Billing.Usage;

/// <summary>Settings of usage ingestion.</summary>
public sealed class MeteringOptions
{
    /// <summary>How long an idempotency key stays taken in the counters (default 35 days; 1 hour to 400 days).</summary>
    public TimeSpan DedupWindow { get; set; } = TimeSpan.FromDays(35);

    /// <summary>How long after a period ends its events are still accepted (default 24 hours; 0 to 35 days).</summary>
    /// <remarks>
    /// Every value is safe: the engine keeps the renewal invoice billing a period's usage a draft until the grace has
    /// passed (plus <see cref="BillingOptions.DraftFinalizationDelay"/>) and prices its usage again at finalization, and
    /// an event for a period whose invoice was finalized anyway is rejected as <c>period_closed</c>. A longer grace
    /// delays the collection of renewals of plans with metered prices by as much.
    /// </remarks>
    public TimeSpan LateEventGrace { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How far in the future a timestamp may be (default 5 minutes; 0 to 1 hour), for clock skew.</summary>
    public TimeSpan FutureTolerance { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a period's counter is kept after the period and its grace end (default 35 days; ≥ 1 day).</summary>
    public TimeSpan CounterRetention { get; set; } = TimeSpan.FromDays(35);

    /// <summary>Subscription states in which entitlement checks answer "not entitled" (default: unpaid).</summary>
    public IReadOnlySet<SubscriptionStatus> BlockingStatuses { get; set; } = new HashSet<SubscriptionStatus> { SubscriptionStatus.Unpaid };

    /// <summary>The most events in one batch (default 1,000; 1 to 10,000).</summary>
    public int MaxBatchSize { get; set; } = 1_000;

    /// <summary>
    /// How long the service reuses a customer's subscriptions and the plans it read to resolve events (default 0: read
    /// them for every batch; at most 1 minute).
    /// </summary>
    /// <remarks>
    /// Only with a store that reports its commits (<see cref="Ports.IBillingStoreChanges"/>; the in-memory and EF Core
    /// stores do): a commit through the same store object (a new subscription, a cancellation, a plan change, a renewal)
    /// drops what it changed at once, so within one process events always resolve against the latest state. What another
    /// process changed is seen within this duration: until then, that process's cancellation or plan change may still
    /// let events through on the old plan and period (they are counted, stored and billed as such). Customers on a test
    /// clock are never cached. When a batch reads customers the cache lacks, the same read takes the batch's customers
    /// cached for half this duration or more (refresh ahead): their entries then expire together, and later batches make
    /// fewer, larger reads.
    /// </remarks>
    public TimeSpan ResolutionCacheDuration { get; set; } = TimeSpan.Zero;

    /// <summary>Throws when a setting is out of range.</summary>
    /// <exception cref="BillingValidationException">The first bad setting.</exception>
    public void Validate()
    {
        Check(DedupWindow >= TimeSpan.FromHours(1) && DedupWindow <= TimeSpan.FromDays(400), nameof(DedupWindow), "1 hour to 400 days.");
        Check(LateEventGrace >= TimeSpan.Zero && LateEventGrace <= TimeSpan.FromDays(35), nameof(LateEventGrace), "0 to 35 days.");
        Check(FutureTolerance >= TimeSpan.Zero && FutureTolerance <= TimeSpan.FromHours(1), nameof(FutureTolerance), "0 to 1 hour.");
        Check(CounterRetention >= TimeSpan.FromDays(1), nameof(CounterRetention), "at least 1 day.");
        Check(BlockingStatuses is not null, nameof(BlockingStatuses), "required.");
        Check(MaxBatchSize is >= 1 and <= 10_000, nameof(MaxBatchSize), "1 to 10,000.");
        Check(ResolutionCacheDuration >= TimeSpan.Zero && ResolutionCacheDuration <= TimeSpan.FromMinutes(1), nameof(ResolutionCacheDuration), "0 to 1 minute.");
    }

    private static void Check(bool ok, string field, string message)
    {
        if (!ok)
        {
            throw new BillingValidationException(field, $"Metering option {field}: {message}");
        }
    }
}
