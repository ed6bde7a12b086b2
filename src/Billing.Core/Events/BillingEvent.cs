namespace Billing.Events;

/// <summary>
/// A state change, appended to the outbox in the same unit of work as the change itself
/// (<c>subscription.created</c>, <c>invoice.finalized</c>, <c>payment.failed</c>, <c>dunning.retry_scheduled</c>, …).
/// </summary>
/// <remarks>Events carry ids and a few facts, not full snapshots: consumers re-read the object's current state
/// rather than trusting event order.</remarks>
public sealed record BillingEvent
{
    /// <summary>The event's unique id (<c>evt_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The event type, for example <c>invoice.paid</c>.</summary>
    public required string Type { get; init; }

    /// <summary>When the change happened (on the clock of the object's customer, which may be a test clock).</summary>
    public required DateTimeOffset OccurredAt { get; init; }

    /// <summary>The kind of object that changed: <c>customer</c>, <c>subscription</c>, <c>invoice</c> or <c>payment</c>.</summary>
    public required string ObjectType { get; init; }

    /// <summary>The id of the object that changed.</summary>
    public required string ObjectId { get; init; }

    /// <summary>The customer the object belongs to.</summary>
    public string? CustomerId { get; init; }

    /// <summary>A few facts about the change (status, amount, next attempt…), as invariant strings.</summary>
    public IReadOnlyDictionary<string, string> Data { get; init; } = Empty.Metadata;
}
