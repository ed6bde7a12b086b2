namespace Billing.Invoices;

/// <summary>A discount: a percentage off or a fixed amount off the invoice subtotal, for a duration.</summary>
/// <remarks>
/// The discount never exceeds the subtotal (an invoice is never made negative by a coupon), and applies only to a
/// positive subtotal. A percentage is in parts per million like tax rates (25 % = 250,000) and is rounded once.
/// </remarks>
public sealed record Coupon
{
    private Coupon(string id, long? percentOffPartsPerMillion, Money? amountOff, CouponDuration duration, int? durationInPeriods)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        if (!Enum.IsDefined(duration))
        {
            throw new ArgumentOutOfRangeException(nameof(duration), duration, "Unknown coupon duration.");
        }

        if ((duration == CouponDuration.Repeating) != (durationInPeriods is not null) || durationInPeriods is < 1)
        {
            throw new ArgumentException("A repeating coupon needs DurationInPeriods of 1 or more; other durations take none.", nameof(durationInPeriods));
        }

        Id = id;
        PercentOffPartsPerMillion = percentOffPartsPerMillion;
        AmountOff = amountOff;
        Duration = duration;
        DurationInPeriods = durationInPeriods;
    }

    /// <summary>The coupon's identifier (shown on the discount line).</summary>
    public string Id { get; }

    /// <summary>The percentage off in parts per million, or null for an amount-off coupon.</summary>
    public long? PercentOffPartsPerMillion { get; }

    /// <summary>The fixed amount off, or null for a percentage coupon.</summary>
    public Money? AmountOff { get; }

    /// <summary>For how many invoices the coupon applies.</summary>
    public CouponDuration Duration { get; }

    /// <summary>For <see cref="CouponDuration.Repeating"/>: how many billing periods.</summary>
    public int? DurationInPeriods { get; }

    /// <summary>A percentage-off coupon.</summary>
    /// <param name="id">The coupon's identifier.</param>
    /// <param name="partsPerMillion">The percentage in parts per million, 1 to 1,000,000 (100 %).</param>
    /// <param name="duration">For how many invoices.</param>
    /// <param name="durationInPeriods">For repeating coupons: how many periods.</param>
    /// <returns>The coupon.</returns>
    public static Coupon PercentOff(string id, long partsPerMillion, CouponDuration duration, int? durationInPeriods = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partsPerMillion, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(partsPerMillion, 1_000_000);
        return new Coupon(id, partsPerMillion, null, duration, durationInPeriods);
    }

    /// <summary>A fixed-amount-off coupon.</summary>
    /// <param name="id">The coupon's identifier.</param>
    /// <param name="amount">The amount off, positive.</param>
    /// <param name="duration">For how many invoices.</param>
    /// <param name="durationInPeriods">For repeating coupons: how many periods.</param>
    /// <returns>The coupon.</returns>
    public static Coupon AmountOffEach(string id, Money amount, CouponDuration duration, int? durationInPeriods = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(amount.MinorUnits, 1, nameof(amount));
        return new Coupon(id, null, amount, duration, durationInPeriods);
    }

    /// <summary>The discount on a subtotal: positive, at most the subtotal, zero for a subtotal of zero or less.</summary>
    /// <param name="subtotal">The invoice subtotal.</param>
    /// <param name="rounding">Rounding of a percentage discount.</param>
    /// <returns>The discount as a positive amount.</returns>
    /// <exception cref="CurrencyMismatchException">An amount-off coupon in another currency.</exception>
    public Money DiscountOn(Money subtotal, RoundingMode rounding)
    {
        if (!subtotal.IsPositive)
        {
            return Money.Zero(subtotal.Currency);
        }

        var discount = AmountOff is { } amount
            ? amount + Money.Zero(subtotal.Currency) // currency check
            : subtotal.MultiplyFraction(PercentOffPartsPerMillion!.Value, 1_000_000, rounding);
        return discount > subtotal ? subtotal : discount;
    }
}
