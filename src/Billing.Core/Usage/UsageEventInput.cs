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

    /// <summary>The idempotency key (1–255 characters, no NUL), unique per customer.</summary>
    /// <remarks>NUL (U+0000) is refused: PostgreSQL's text cannot hold it, so such an event could never be stored durably.</remarks>
    public required string IdempotencyKey { get; init; }

    /// <summary>Free-form properties (a unique-count meter reads its property here).</summary>
    /// <remarks>At most <see cref="MaxProperties"/>; see <see cref="IsValidProperty"/> for each key and value.</remarks>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    /// <summary>
    /// Whether a property is acceptable: a key of 1 to <see cref="MaxPropertyLength"/> characters and a non-null value of
    /// at most <see cref="MaxPropertyLength"/>, neither holding NUL (U+0000), which PostgreSQL's text and jsonb cannot store.
    /// </summary>
    /// <param name="key">The property's key.</param>
    /// <param name="value">The property's value.</param>
    /// <returns>True when both are acceptable.</returns>
    public static bool IsValidProperty(string key, string? value) =>
        key is { Length: >= 1 and <= MaxPropertyLength } && value is not null && value.Length <= MaxPropertyLength
        && !key.Contains('\0', StringComparison.Ordinal) && !value.Contains('\0', StringComparison.Ordinal);

    /// <summary>Whether an idempotency key is acceptable: 1 to 255 characters, none of them NUL (U+0000).</summary>
    /// <param name="key">The key.</param>
    /// <returns>True when it is.</returns>
    public static bool IsValidIdempotencyKey(string? key) =>
        key is { Length: >= 1 and <= UsageCounterEvents.MaxIdempotencyKeyLength } && !key.Contains('\0', StringComparison.Ordinal);
}
