namespace Billing.Usage;

/// <summary>What a usage counter did with one event.</summary>
public enum UsageOutcome
{
    /// <summary>Counted: the idempotency key is now taken and the total includes the event.</summary>
    Accepted = 0,

    /// <summary>The idempotency key was seen within the dedup window: nothing changed; the original result is returned.</summary>
    Duplicate = 1,

    /// <summary>Counting it would take the total past the hard limit: nothing changed and the key stays free.</summary>
    OverLimit = 2,
}
