using Billing.Payments;

namespace Billing.Dunning;

/// <summary>
/// A versioned dunning policy: when to retry a failed payment and what to do when retries run out. Pure:
/// <see cref="Decide"/> maps <c>(state, outcome, now)</c> to a decision and touches nothing.
/// </summary>
/// <remarks>
/// <para>The retry schedule counts from the first failure: with the default 1, 3, 5 and 7 days, a charge failing on
/// day 0 is retried on days 1, 3, 5 and 7; when the retry on day 7 fails too, dunning is exhausted.</para>
/// <para>A hard decline (fraud, stolen card) is never retried: dunning is exhausted at once. Soft declines,
/// retryable failures and required authentication are retried on schedule. Any success resolves dunning,
/// whether it comes from a retry or a manual payment.</para>
/// </remarks>
public sealed record DunningPolicy
{
    /// <summary>Creates a policy.</summary>
    /// <param name="version">The version, 1 or more; stored on each invoice when its dunning starts.</param>
    /// <param name="retrySchedule">Retry offsets from the first failure; positive and strictly ascending (may be empty: no retries).</param>
    /// <param name="finalAction">What happens to the subscription when retries run out.</param>
    /// <param name="markInvoiceUncollectible">Whether the invoice is marked uncollectible when retries run out.</param>
    /// <exception cref="ArgumentException">A bad version or schedule.</exception>
    public DunningPolicy(int version, IEnumerable<TimeSpan> retrySchedule, DunningFinalAction finalAction, bool markInvoiceUncollectible)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        ArgumentNullException.ThrowIfNull(retrySchedule);
        TimeSpan[] schedule = [.. retrySchedule];
        for (var i = 0; i < schedule.Length; i++)
        {
            if (schedule[i] <= TimeSpan.Zero || (i > 0 && schedule[i] <= schedule[i - 1]))
            {
                throw new ArgumentException($"Retry {i + 1} ({schedule[i]}) must be positive and after the previous retry.", nameof(retrySchedule));
            }
        }

        if (!Enum.IsDefined(finalAction))
        {
            throw new ArgumentOutOfRangeException(nameof(finalAction), finalAction, "Unknown final action.");
        }

        Version = version;
        RetrySchedule = schedule;
        FinalAction = finalAction;
        MarkInvoiceUncollectible = markInvoiceUncollectible;
    }

    /// <summary>The default policy (version 1): retries 1, 3, 5 and 7 days after the first failure, then cancel the
    /// subscription and mark the invoice uncollectible.</summary>
    public static DunningPolicy Default { get; } = new(
        1, [TimeSpan.FromDays(1), TimeSpan.FromDays(3), TimeSpan.FromDays(5), TimeSpan.FromDays(7)], DunningFinalAction.Cancel, markInvoiceUncollectible: true);

    /// <summary>The policy's version.</summary>
    public int Version { get; }

    /// <summary>Retry offsets from the first failure.</summary>
    public IReadOnlyList<TimeSpan> RetrySchedule { get; }

    /// <summary>What happens to the subscription when retries run out.</summary>
    public DunningFinalAction FinalAction { get; }

    /// <summary>Whether the invoice is marked uncollectible when retries run out.</summary>
    public bool MarkInvoiceUncollectible { get; }

    /// <summary>Decides what follows a payment outcome.</summary>
    /// <param name="state">The invoice's dunning state before the outcome.</param>
    /// <param name="outcome">What the charge (or a manual payment) gave.</param>
    /// <param name="now">When the outcome happened.</param>
    /// <returns>The decision.</returns>
    /// <exception cref="InvalidOperationException">The state is already exhausted and the outcome is another failure.</exception>
    public DunningDecision Decide(DunningState state, PaymentResult outcome, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(outcome);
        if (outcome.IsSuccess)
        {
            var resolved = state with { NextAttemptAt = null, Resolved = state.FailedAttempts > 0 };
            return new DunningDecision(DunningDecisionKind.Resolved, resolved, null, false, state.InProgress ? ["dunning.resolved"] : []);
        }

        if (state.Exhausted || state.Resolved)
        {
            throw new InvalidOperationException(state.Resolved
                ? "Dunning for this invoice is resolved (it was paid); a later failure cannot reopen it."
                : "Dunning for this invoice is already exhausted; only a successful payment can change it.");
        }

        var events = new List<string>(2);
        var first = state.FirstFailureAt ?? now;
        if (state.FailedAttempts == 0)
        {
            events.Add("dunning.started");
        }

        var failures = state.FailedAttempts + 1;
        var hard = outcome is { Outcome: PaymentOutcome.Declined, DeclineType: DeclineType.Hard };
        var retriesUsed = failures - 1;
        if (hard || retriesUsed >= RetrySchedule.Count)
        {
            events.Add("dunning.exhausted");
            var exhausted = new DunningState(state.FailedAttempts == 0 ? Version : state.PolicyVersion, failures, first, null, true);
            return new DunningDecision(DunningDecisionKind.Exhausted, exhausted, FinalAction, MarkInvoiceUncollectible, events);
        }

        var next = first + RetrySchedule[retriesUsed];
        if (next < now)
        {
            next = now;
        }

        events.Add("dunning.retry_scheduled");
        var scheduled = new DunningState(state.FailedAttempts == 0 ? Version : state.PolicyVersion, failures, first, next, false);
        return new DunningDecision(DunningDecisionKind.RetryScheduled, scheduled, null, false, events);
    }
}
