namespace Billing.Subscriptions;

/// <summary>
/// The one table of subscription transitions <c>(from, trigger) → to</c>. Anything not in the table throws
/// <see cref="InvalidStateTransitionException"/> naming the state, the trigger and the allowed triggers.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>incomplete</c>: payment_succeeded → active; payment_failed → incomplete; cancel → canceled.</item>
/// <item><c>trialing</c>: trial_ended → active; payment_failed → past_due; change_plan, schedule_cancellation → trialing; pause → paused; cancel → canceled.</item>
/// <item><c>active</c>: renew, change_plan, schedule_cancellation, payment_succeeded → active; payment_failed → past_due; pause → paused; cancel → canceled.</item>
/// <item><c>past_due</c>: payment_succeeded → active; payment_failed, renew, change_plan, schedule_cancellation → past_due; mark_unpaid → unpaid; cancel → canceled.</item>
/// <item><c>unpaid</c>: payment_succeeded → active; renew → unpaid; cancel → canceled.</item>
/// <item><c>paused</c>: resume → active; cancel → canceled.</item>
/// <item><c>canceled</c>: restart → incomplete.</item>
/// </list>
/// </remarks>
public static class SubscriptionStateMachine
{
    private static readonly TransitionTable<SubscriptionStatus, SubscriptionTrigger> Table = new(
        "subscription",
        [
            (SubscriptionStatus.Incomplete, SubscriptionTrigger.PaymentSucceeded, SubscriptionStatus.Active),
            (SubscriptionStatus.Incomplete, SubscriptionTrigger.PaymentFailed, SubscriptionStatus.Incomplete),
            (SubscriptionStatus.Incomplete, SubscriptionTrigger.Cancel, SubscriptionStatus.Canceled),

            (SubscriptionStatus.Trialing, SubscriptionTrigger.TrialEnded, SubscriptionStatus.Active),
            (SubscriptionStatus.Trialing, SubscriptionTrigger.PaymentFailed, SubscriptionStatus.PastDue),
            (SubscriptionStatus.Trialing, SubscriptionTrigger.ChangePlan, SubscriptionStatus.Trialing),
            (SubscriptionStatus.Trialing, SubscriptionTrigger.ScheduleCancellation, SubscriptionStatus.Trialing),
            (SubscriptionStatus.Trialing, SubscriptionTrigger.Pause, SubscriptionStatus.Paused),
            (SubscriptionStatus.Trialing, SubscriptionTrigger.Cancel, SubscriptionStatus.Canceled),

            (SubscriptionStatus.Active, SubscriptionTrigger.Renew, SubscriptionStatus.Active),
            (SubscriptionStatus.Active, SubscriptionTrigger.ChangePlan, SubscriptionStatus.Active),
            (SubscriptionStatus.Active, SubscriptionTrigger.ScheduleCancellation, SubscriptionStatus.Active),
            (SubscriptionStatus.Active, SubscriptionTrigger.PaymentSucceeded, SubscriptionStatus.Active),
            (SubscriptionStatus.Active, SubscriptionTrigger.PaymentFailed, SubscriptionStatus.PastDue),
            (SubscriptionStatus.Active, SubscriptionTrigger.Pause, SubscriptionStatus.Paused),
            (SubscriptionStatus.Active, SubscriptionTrigger.Cancel, SubscriptionStatus.Canceled),

            (SubscriptionStatus.PastDue, SubscriptionTrigger.PaymentSucceeded, SubscriptionStatus.Active),
            (SubscriptionStatus.PastDue, SubscriptionTrigger.PaymentFailed, SubscriptionStatus.PastDue),
            (SubscriptionStatus.PastDue, SubscriptionTrigger.Renew, SubscriptionStatus.PastDue),
            (SubscriptionStatus.PastDue, SubscriptionTrigger.ChangePlan, SubscriptionStatus.PastDue),
            (SubscriptionStatus.PastDue, SubscriptionTrigger.ScheduleCancellation, SubscriptionStatus.PastDue),
            (SubscriptionStatus.PastDue, SubscriptionTrigger.MarkUnpaid, SubscriptionStatus.Unpaid),
            (SubscriptionStatus.PastDue, SubscriptionTrigger.Cancel, SubscriptionStatus.Canceled),

            (SubscriptionStatus.Unpaid, SubscriptionTrigger.PaymentSucceeded, SubscriptionStatus.Active),
            (SubscriptionStatus.Unpaid, SubscriptionTrigger.Renew, SubscriptionStatus.Unpaid),
            (SubscriptionStatus.Unpaid, SubscriptionTrigger.Cancel, SubscriptionStatus.Canceled),

            (SubscriptionStatus.Paused, SubscriptionTrigger.Resume, SubscriptionStatus.Active),
            (SubscriptionStatus.Paused, SubscriptionTrigger.Cancel, SubscriptionStatus.Canceled),

            (SubscriptionStatus.Canceled, SubscriptionTrigger.Restart, SubscriptionStatus.Incomplete),
        ]);

    /// <summary>The state a trigger leads to.</summary>
    /// <param name="from">The current state.</param>
    /// <param name="trigger">What happened.</param>
    /// <returns>The next state.</returns>
    /// <exception cref="InvalidStateTransitionException">The trigger is not allowed in <paramref name="from"/>.</exception>
    public static SubscriptionStatus Next(SubscriptionStatus from, SubscriptionTrigger trigger) => Table.Fire(from, trigger);

    /// <summary>Whether a trigger is allowed in a state.</summary>
    /// <param name="from">The current state.</param>
    /// <param name="trigger">The trigger.</param>
    /// <returns><see langword="true"/> when <see cref="Next"/> would succeed.</returns>
    public static bool CanFire(SubscriptionStatus from, SubscriptionTrigger trigger) => Table.CanFire(from, trigger);

    /// <summary>The triggers a state allows.</summary>
    /// <param name="from">The state.</param>
    /// <returns>The allowed triggers, in enum order.</returns>
    public static IReadOnlyList<SubscriptionTrigger> AllowedTriggers(SubscriptionStatus from) => [.. Table.Allowed(from)];

    /// <summary>Every transition of the table.</summary>
    public static IReadOnlyList<(SubscriptionStatus From, SubscriptionTrigger Trigger, SubscriptionStatus To)> Transitions { get; } = [.. Table.Transitions];

    /// <summary>The states a subscription can start in: <see cref="SubscriptionStatus.Incomplete"/> or <see cref="SubscriptionStatus.Trialing"/>.</summary>
    public static IReadOnlyList<SubscriptionStatus> InitialStates { get; } = [SubscriptionStatus.Incomplete, SubscriptionStatus.Trialing];
}
