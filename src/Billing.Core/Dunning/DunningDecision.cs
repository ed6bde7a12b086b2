namespace Billing.Dunning;

/// <summary>What to do after a payment outcome.</summary>
public enum DunningDecisionKind
{
    /// <summary>The invoice is paid: dunning (if any) is over.</summary>
    Resolved = 0,

    /// <summary>Retry at <see cref="DunningDecision.NextAttemptAt"/>.</summary>
    RetryScheduled = 1,

    /// <summary>No more retries: apply the final actions.</summary>
    Exhausted = 2,
}

/// <summary>The decision of a <see cref="DunningPolicy"/>: the next state, what to do, and the events to emit.</summary>
/// <param name="Kind">What to do.</param>
/// <param name="State">The invoice's dunning state after the decision.</param>
/// <param name="FinalAction">For <see cref="DunningDecisionKind.Exhausted"/>: what happens to the subscription.</param>
/// <param name="MarkInvoiceUncollectible">For <see cref="DunningDecisionKind.Exhausted"/>: whether the invoice is written off.</param>
/// <param name="Events">The billing event types to emit, in order (for example <c>dunning.started</c>, <c>dunning.retry_scheduled</c>).</param>
public sealed record DunningDecision(
    DunningDecisionKind Kind,
    DunningState State,
    DunningFinalAction? FinalAction,
    bool MarkInvoiceUncollectible,
    IReadOnlyList<string> Events)
{
    /// <summary>For <see cref="DunningDecisionKind.RetryScheduled"/>: when to retry.</summary>
    public DateTimeOffset? NextAttemptAt => State.NextAttemptAt;
}
