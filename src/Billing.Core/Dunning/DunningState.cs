namespace Billing.Dunning;

/// <summary>Where an invoice stands in dunning. Kept on the invoice; changed only by <see cref="DunningPolicy.Decide"/>.</summary>
/// <param name="PolicyVersion">The version of the policy that governs this invoice (fixed when dunning starts).</param>
/// <param name="FailedAttempts">How many charges have failed.</param>
/// <param name="FirstFailureAt">When the first charge failed; the retry schedule counts from it.</param>
/// <param name="NextAttemptAt">When the next automatic retry is due, or null for none.</param>
/// <param name="Exhausted">Whether the policy has given up.</param>
/// <param name="Resolved">Whether a payment succeeded after the failures.</param>
public sealed record DunningState(int PolicyVersion, int FailedAttempts, DateTimeOffset? FirstFailureAt, DateTimeOffset? NextAttemptAt, bool Exhausted, bool Resolved = false)
{
    /// <summary>No failure yet.</summary>
    /// <param name="policyVersion">The policy version in force.</param>
    /// <returns>The initial state.</returns>
    public static DunningState Initial(int policyVersion) => new(policyVersion, 0, null, null, false, false);

    /// <summary>Whether dunning is under way (a failure happened and the invoice is not resolved or exhausted).</summary>
    public bool InProgress => FailedAttempts > 0 && !Exhausted && !Resolved;
}
