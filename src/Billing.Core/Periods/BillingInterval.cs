namespace Billing.Periods;

/// <summary>How often a subscription bills: a calendar unit times a count (every 3 months, every 2 weeks).</summary>
/// <remarks><c>default(BillingInterval)</c> is not valid (count 0); create intervals with the constructor or the factories.</remarks>
public readonly record struct BillingInterval
{
    /// <summary>The largest count accepted: 1,000 units (about 83 years of months).</summary>
    public const int MaxCount = 1000;

    /// <summary>Creates an interval.</summary>
    /// <param name="unit">The calendar unit.</param>
    /// <param name="count">How many units, from 1 to <see cref="MaxCount"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">The unit is unknown or the count is out of range.</exception>
    public BillingInterval(BillingIntervalUnit unit, int count)
    {
        if (!Enum.IsDefined(unit))
        {
            throw new ArgumentOutOfRangeException(nameof(unit), unit, "Unknown interval unit.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxCount);
        Unit = unit;
        Count = count;
    }

    /// <summary>The calendar unit.</summary>
    public BillingIntervalUnit Unit { get; }

    /// <summary>How many units make one interval (at least 1).</summary>
    public int Count { get; }

    /// <summary>Every day.</summary>
    public static BillingInterval Daily => new(BillingIntervalUnit.Day, 1);

    /// <summary>Every week.</summary>
    public static BillingInterval Weekly => new(BillingIntervalUnit.Week, 1);

    /// <summary>Every month.</summary>
    public static BillingInterval Monthly => new(BillingIntervalUnit.Month, 1);

    /// <summary>Every three months.</summary>
    public static BillingInterval Quarterly => new(BillingIntervalUnit.Month, 3);

    /// <summary>Every year.</summary>
    public static BillingInterval Yearly => new(BillingIntervalUnit.Year, 1);

    /// <summary>Every <paramref name="count"/> days.</summary>
    /// <param name="count">Days, at least 1.</param>
    /// <returns>The interval.</returns>
    public static BillingInterval Days(int count) => new(BillingIntervalUnit.Day, count);

    /// <summary>Every <paramref name="count"/> weeks.</summary>
    /// <param name="count">Weeks, at least 1.</param>
    /// <returns>The interval.</returns>
    public static BillingInterval Weeks(int count) => new(BillingIntervalUnit.Week, count);

    /// <summary>Every <paramref name="count"/> months.</summary>
    /// <param name="count">Months, at least 1.</param>
    /// <returns>The interval.</returns>
    public static BillingInterval Months(int count) => new(BillingIntervalUnit.Month, count);

    /// <summary>Every <paramref name="count"/> years.</summary>
    /// <param name="count">Years, at least 1.</param>
    /// <returns>The interval.</returns>
    public static BillingInterval Years(int count) => new(BillingIntervalUnit.Year, count);

    /// <summary>Formats as <c>1 month</c>, <c>3 months</c>, <c>2 weeks</c>.</summary>
    /// <returns>The text form.</returns>
    public override string ToString()
    {
        var unit = Unit.ToString().ToLowerInvariant();
        return Count == 1 ? $"1 {unit}" : $"{Count} {unit}s";
    }

    /// <summary>Moves a local date-time forward by <paramref name="intervals"/> whole intervals, clamping the day to the month's end.</summary>
    internal DateTime AddTo(DateTime local, long intervals)
    {
        var units = checked(intervals * Count);
        return Unit switch
        {
            BillingIntervalUnit.Day => local.AddDays(units),
            BillingIntervalUnit.Week => local.AddDays(checked(units * 7)),
            BillingIntervalUnit.Month => local.AddMonths(checked((int)units)),
            BillingIntervalUnit.Year => local.AddMonths(checked((int)(units * 12))),
            _ => throw new InvalidOperationException("default(BillingInterval) is not a valid interval."),
        };
    }

    /// <summary>
    /// A lower estimate of how many whole intervals separate two local date-times (exact or one too many/few);
    /// callers correct it by comparing boundaries.
    /// </summary>
    internal long EstimateIntervalsBetween(DateTime fromLocal, DateTime toLocal)
    {
        switch (Unit)
        {
            case BillingIntervalUnit.Day:
            case BillingIntervalUnit.Week:
                var days = (toLocal.Date - fromLocal.Date).Days;
                var step = Unit == BillingIntervalUnit.Week ? 7L * Count : Count;
                return FloorDivide(days, step);
            case BillingIntervalUnit.Month:
            case BillingIntervalUnit.Year:
                var months = ((toLocal.Year - fromLocal.Year) * 12L) + toLocal.Month - fromLocal.Month;
                var monthStep = Unit == BillingIntervalUnit.Year ? 12L * Count : Count;
                return FloorDivide(months, monthStep);
            default:
                throw new InvalidOperationException("default(BillingInterval) is not a valid interval.");
        }
    }

    private static long FloorDivide(long value, long divisor) =>
        value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor);
}
