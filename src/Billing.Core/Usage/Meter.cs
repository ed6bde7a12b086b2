namespace Billing.Usage;

/// <summary>A meter: what usage events are counted under a key, and how a period's events become one number.</summary>
/// <remarks>
/// Keys are 1–64 characters of lower-case letters, digits, <c>_</c>, <c>-</c> and <c>.</c>. A unique-count meter
/// names the event property whose distinct values it counts; an event without that property is rejected.
/// </remarks>
public sealed record Meter
{
    /// <summary>The longest meter key.</summary>
    public const int MaxKeyLength = 64;

    /// <summary>The meter key events refer to (for example <c>api_calls</c>).</summary>
    public required string Key { get; init; }

    /// <summary>How the period's events aggregate.</summary>
    public MeterAggregation Aggregation { get; init; } = MeterAggregation.Sum;

    /// <summary>The event property counted by <see cref="MeterAggregation.UniqueCount"/>; null otherwise.</summary>
    public string? UniqueProperty { get; init; }

    /// <summary>Throws when the meter is malformed.</summary>
    /// <param name="field">The field name to report (for example <c>metered_prices[0].meter</c>).</param>
    /// <exception cref="BillingValidationException">The key, aggregation or unique property is invalid.</exception>
    public void Validate(string field = "meter")
    {
        if (!IsValidKey(Key))
        {
            throw new BillingValidationException($"{field}.key", $"A meter key has 1 to {MaxKeyLength} characters: a-z, 0-9, '_', '-', '.'.");
        }

        if (!Enum.IsDefined(Aggregation))
        {
            throw new BillingValidationException($"{field}.aggregation", "Unknown aggregation.");
        }

        if ((Aggregation == MeterAggregation.UniqueCount) != !string.IsNullOrEmpty(UniqueProperty))
        {
            throw new BillingValidationException($"{field}.unique_property", "A unique-count meter names its property; other meters name none.");
        }
    }

    /// <summary>Whether <paramref name="key"/> is a valid meter key.</summary>
    /// <param name="key">The key.</param>
    /// <returns>True when valid.</returns>
    public static bool IsValidKey(string? key)
    {
        if (string.IsNullOrEmpty(key) || key.Length > MaxKeyLength)
        {
            return false;
        }

        foreach (var c in key)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-' or '.'))
            {
                return false;
            }
        }

        return true;
    }
}
