namespace Billing.Usage;

/// <summary>The result of ingesting one usage event.</summary>
/// <remarks>
/// Rejection reasons (machine-readable): <c>validation_error</c> (with <see cref="Field"/>), <c>customer_not_found</c>,
/// <c>subscription_not_found</c>, <c>no_subscription_for_meter</c> (no live subscription prices the meter),
/// <c>timestamp_too_old</c> (its period closed more than the grace window ago), <c>period_closed</c> (its period ended
/// and the invoice billing that period's usage is already finalized), <c>timestamp_in_future</c>, <c>over_limit</c>
/// (a hard limit).
/// </remarks>
public sealed record UsageIngestResult
{
    /// <summary>The event's idempotency key.</summary>
    public required string IdempotencyKey { get; init; }

    /// <summary>Accepted, duplicate or rejected.</summary>
    public required UsageIngestStatus Status { get; init; }

    /// <summary>Why it was rejected; null otherwise.</summary>
    public string? Reason { get; init; }

    /// <summary>A human-readable explanation of a rejection.</summary>
    public string? Message { get; init; }

    /// <summary>The offending field of a validation rejection.</summary>
    public string? Field { get; init; }

    /// <summary>The counter the event went to (accepted, duplicate, over limit).</summary>
    public UsageCounterKey? Counter { get; init; }

    /// <summary>The subscription it was billed to.</summary>
    public string? SubscriptionId { get; init; }

    /// <summary>The period total after the event (accepted), the original result (duplicate), or the unchanged total (over limit).</summary>
    public long? Total { get; init; }

    /// <summary>A rejection.</summary>
    /// <param name="key">The idempotency key.</param>
    /// <param name="reason">The reason code.</param>
    /// <param name="message">The explanation.</param>
    /// <param name="field">The field, for validation errors.</param>
    /// <returns>The result.</returns>
    public static UsageIngestResult Rejected(string key, string reason, string message, string? field = null) =>
        new() { IdempotencyKey = key, Status = UsageIngestStatus.Rejected, Reason = reason, Message = message, Field = field };
}
