namespace Billing.Subscriptions;

/// <summary>The lifecycle state of a subscription (Stripe's <c>status</c>).</summary>
public enum SubscriptionStatus
{
    /// <summary>Created without a trial; the first invoice is not paid yet.</summary>
    Incomplete = 0,

    /// <summary>In its free trial.</summary>
    Trialing = 1,

    /// <summary>Paid up and renewing.</summary>
    Active = 2,

    /// <summary>A renewal payment failed; dunning is retrying.</summary>
    PastDue = 3,

    /// <summary>Dunning gave up and the policy keeps the subscription, unpaid, without charging it.</summary>
    Unpaid = 4,

    /// <summary>Billing is paused: no invoices until it resumes.</summary>
    Paused = 5,

    /// <summary>Ended. Final; a restart creates a new period.</summary>
    Canceled = 6,
}
