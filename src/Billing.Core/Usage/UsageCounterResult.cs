namespace Billing.Usage;

/// <summary>What a counter did with one event, and the counter's total.</summary>
/// <param name="Outcome">Accepted, duplicate or over the limit.</param>
/// <param name="Total">
/// Accepted: the total including the event. Duplicate: the total the original event produced (the original
/// result). Over limit: the current total, unchanged.
/// </param>
public readonly record struct UsageCounterResult(UsageOutcome Outcome, long Total);
