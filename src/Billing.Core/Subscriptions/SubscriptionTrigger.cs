namespace Billing.Subscriptions;

/// <summary>What can happen to a subscription; <see cref="SubscriptionStateMachine"/> says where each leads.</summary>
public enum SubscriptionTrigger
{
    /// <summary>The invoice that starts or restores the subscription was paid (or was zero).</summary>
    PaymentSucceeded = 0,

    /// <summary>A payment for the current invoice failed.</summary>
    PaymentFailed = 1,

    /// <summary>The trial ended and its first invoice was paid (or was zero).</summary>
    TrialEnded = 2,

    /// <summary>A new period started.</summary>
    Renew = 3,

    /// <summary>The plan or quantity changed.</summary>
    ChangePlan = 4,

    /// <summary>Billing paused.</summary>
    Pause = 5,

    /// <summary>Billing resumed.</summary>
    Resume = 6,

    /// <summary>Canceled now (or at the end of the period, when that time comes).</summary>
    Cancel = 7,

    /// <summary>Dunning is exhausted and the policy marks the subscription unpaid.</summary>
    MarkUnpaid = 8,

    /// <summary>A canceled subscription starts again with a new period and a new first invoice.</summary>
    Restart = 9,

    /// <summary>Cancel-at-period-end was set or cleared (the state does not change).</summary>
    ScheduleCancellation = 10,
}
