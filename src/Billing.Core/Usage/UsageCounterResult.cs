namespace Billing.Usage;

/// <summary>What a counter did with one event, and the counter's total.</summary>
/// <param name="Outcome">Accepted, duplicate or over the limit.</param>
/// <param name="Total">
/// Accepted: the total including the event. Duplicate: the total the original event produced (the original
/// result). Over limit: the current total, unchanged.
/// </param>
/// <param name="AcceptanceToken">
/// Duplicate: the <see cref="UsageCounterEvent.AcceptanceToken"/> of the event that took the key (the original
/// acceptance), or 0 when the counter does not keep tokens (a durable counter) or the key was taken without one.
/// Accepted and over limit: 0 (an accepted event's token is its own).
/// </param>
/// <remarks>
/// The metering service compares the token of the original acceptance with the token stored durably to tell a
/// concurrent repeat of an event (same token: the acceptance stands) from a counter that forgot a key (another token).
/// </remarks>
public readonly record struct UsageCounterResult(UsageOutcome Outcome, long Total, long AcceptanceToken = 0);
