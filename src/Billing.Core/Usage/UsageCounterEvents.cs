namespace Billing.Usage;

/// <summary>Checks on counter events shared by every counter adapter.</summary>
public static class UsageCounterEvents
{
    /// <summary>The longest idempotency key.</summary>
    public const int MaxIdempotencyKeyLength = 255;

    /// <summary>Throws when an event cannot be counted: missing ids, a bad key, a negative quantity or window.</summary>
    /// <param name="usageEvent">The event.</param>
    /// <exception cref="ArgumentException">The event is malformed (a bug in the caller: the metering service validates first).</exception>
    public static void Validate(in UsageCounterEvent usageEvent)
    {
        if (string.IsNullOrEmpty(usageEvent.Counter.CustomerId) || string.IsNullOrEmpty(usageEvent.Counter.MeterKey))
        {
            throw new ArgumentException("A counter event needs a customer and a meter.", nameof(usageEvent));
        }

        if (string.IsNullOrEmpty(usageEvent.IdempotencyKey) || usageEvent.IdempotencyKey.Length > MaxIdempotencyKeyLength)
        {
            throw new ArgumentException($"The idempotency key must have 1 to {MaxIdempotencyKeyLength} characters.", nameof(usageEvent));
        }

        if (usageEvent.Quantity < 0 || usageEvent.DedupWindow < TimeSpan.Zero || usageEvent.HardLimit < 0)
        {
            throw new ArgumentException("Quantity, hard limit and dedup window must not be negative.", nameof(usageEvent));
        }

        if (usageEvent.Aggregation == MeterAggregation.UniqueCount && usageEvent.UniqueValue is null)
        {
            throw new ArgumentException("A unique-count event needs its unique value.", nameof(usageEvent));
        }
    }
}
