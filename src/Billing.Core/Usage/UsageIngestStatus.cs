namespace Billing.Usage;

/// <summary>What ingestion did with one event.</summary>
public enum UsageIngestStatus
{
    /// <summary>Counted and stored durably.</summary>
    Accepted = 0,

    /// <summary>Seen before (same customer and idempotency key): nothing changed; the original result is returned.</summary>
    Duplicate = 1,

    /// <summary>Not counted; <see cref="UsageIngestResult.Reason"/> says why. The idempotency key stays free.</summary>
    Rejected = 2,
}
