namespace Billing.Usage;

/// <summary>One usage event as a client reports it.</summary>
public sealed record UsageEventInput
{
    /// <summary>The longest property key or value.</summary>
    public const int MaxPropertyLength = 500;

    /// <summary>The most properties on one event.</summary>
    public const int MaxProperties = 50;

    /// <summary>The customer (<c>cus_…</c>); required unless <see cref="SubscriptionId"/> is given.</summary>
    public string? CustomerId { get; init; }

    /// <summary>The subscription to bill; null picks the customer's live subscription whose plan prices the meter.</summary>
    public string? SubscriptionId { get; init; }

    /// <summary>The meter key.</summary>
    public required string MeterKey { get; init; }

    /// <summary>The quantity (≥ 0; ignored by count meters).</summary>
    public long Quantity { get; init; } = 1;

    /// <summary>When the usage happened (UTC); at most <see cref="MeteringOptions.FutureTolerance"/> ahead.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The idempotency key (1–255 characters), unique per customer.</summary>
    public required string IdempotencyKey { get; init; }

    /// <summary>Free-form properties (a unique-count meter reads its property here).</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }
}
