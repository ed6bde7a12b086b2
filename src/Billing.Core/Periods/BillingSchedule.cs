namespace Billing.Periods;

/// <summary>
/// The billing periods of a subscription: computed on the customer's local calendar from a billing anchor and an
/// interval, returned as UTC instants.
/// </summary>
/// <remarks>
/// <para><b>Boundaries.</b> Boundary <c>n</c> is the anchor's local date-time moved forward by <c>n</c> intervals,
/// always from the anchor itself (never from the previous boundary), so the sequence never drifts. Months clamp the
/// day to the month's end the way Stripe does: anchor day 31 gives 31 Jan → 28 Feb (29 in leap years) → 31 Mar →
/// 30 Apr; anchor 30 gives 28/29 Feb → 30 Mar; anchor 29 gives 28 Feb in common years. A yearly anchor of 29 Feb
/// gives 28 Feb in common years and 29 Feb again in leap years. The anchor's time of day is kept.</para>
/// <para><b>Periods.</b> The first period starts at <see cref="Start"/> and ends at the first boundary after it;
/// every later period runs from one boundary to the next. With the anchor at the start (anniversary billing)
/// every period is a whole interval; with a later anchor (calendar billing, or an explicit anchor) the first
/// period is shorter and is prorated by the caller. Period <c>n</c>'s end is always period <c>n+1</c>'s start.</para>
/// <para><b>Time zones and DST.</b> Local times convert to instants with the customer's IANA zone. A local
/// boundary that falls in a DST gap (for example 02:30 on a spring-forward day) resolves to the transition
/// instant, the first instant after the gap (03:00 local); one that falls in an overlap (01:30 on a fall-back
/// day) resolves to the earlier of its two instants. So a month has the same local boundaries in every year,
/// and its length in hours differs by the DST shift.</para>
/// </remarks>
public sealed class BillingSchedule
{
    private readonly DateTimeOffset _anchor;
    private readonly long _firstBoundaryIndex;

    private BillingSchedule(DateTimeOffset start, DateTime anchorLocal, DateTimeOffset anchor, BillingInterval interval, TimeZoneInfo timeZone)
    {
        if (interval.Count < 1)
        {
            throw new ArgumentException("default(BillingInterval) is not a valid interval.", nameof(interval));
        }

        Start = start.ToUniversalTime();
        AnchorLocal = anchorLocal;
        _anchor = anchor.ToUniversalTime();
        Interval = interval;
        TimeZone = timeZone;
        _firstBoundaryIndex = Locate(Start).Index + 1;
    }

    /// <summary>The instant the first period starts (UTC).</summary>
    public DateTimeOffset Start { get; }

    /// <summary>The billing anchor as a wall-clock date-time on the customer's calendar (kind Unspecified).</summary>
    public DateTime AnchorLocal { get; }

    /// <summary>The billing anchor as an instant (UTC): boundary 0 of the sequence.</summary>
    public DateTimeOffset Anchor => _anchor;

    /// <summary>The interval between boundaries.</summary>
    public BillingInterval Interval { get; }

    /// <summary>The customer's time zone; boundaries are computed on its calendar.</summary>
    public TimeZoneInfo TimeZone { get; }

    /// <summary>Whether the first period is shorter than an interval (the start is not on a boundary of the anchor's sequence).</summary>
    public bool HasPartialFirstPeriod => Boundary(_firstBoundaryIndex - 1) != Start;

    /// <summary>
    /// Anniversary billing: the anchor is the start itself, so every period is a whole interval
    /// (a subscription started 31 Jan renews 28/29 Feb, 31 Mar, 30 Apr...).
    /// </summary>
    /// <param name="start">When the subscription (or its paid phase) starts.</param>
    /// <param name="interval">The billing interval.</param>
    /// <param name="timeZone">The customer's time zone.</param>
    /// <returns>The schedule.</returns>
    public static BillingSchedule Anniversary(DateTimeOffset start, BillingInterval interval, TimeZoneInfo timeZone)
    {
        ArgumentNullException.ThrowIfNull(timeZone);
        return new BillingSchedule(start, ZonedTime.ToLocal(start, timeZone), start, interval, timeZone);
    }

    /// <summary>
    /// Calendar billing: periods align to the start of the next calendar unit on the customer's calendar —
    /// the 1st of the month at 00:00 for monthly intervals, 1 January for yearly ones, Monday 00:00 for weekly
    /// ones, midnight for daily ones. The first period runs from the start to that boundary and is partial
    /// (unless the start is exactly on one).
    /// </summary>
    /// <param name="start">When the subscription starts.</param>
    /// <param name="interval">The billing interval.</param>
    /// <param name="timeZone">The customer's time zone.</param>
    /// <returns>The schedule.</returns>
    /// <remarks>A count above 1 steps from that first boundary (quarterly from 1 May: 1 May, 1 Aug, 1 Nov...).</remarks>
    public static BillingSchedule Calendar(DateTimeOffset start, BillingInterval interval, TimeZoneInfo timeZone)
    {
        ArgumentNullException.ThrowIfNull(timeZone);
        var local = ZonedTime.ToLocal(start, timeZone);
        var anchorLocal = interval.Unit switch
        {
            BillingIntervalUnit.Day => local.Date,
            BillingIntervalUnit.Week => local.Date.AddDays(-(((int)local.DayOfWeek + 6) % 7)),
            BillingIntervalUnit.Month => new DateTime(local.Year, local.Month, 1),
            BillingIntervalUnit.Year => new DateTime(local.Year, 1, 1),
            _ => throw new ArgumentException("default(BillingInterval) is not a valid interval.", nameof(interval)),
        };
        if (anchorLocal != local)
        {
            // The unit's start is before `start`: the anchor is the next one.
            anchorLocal = interval.Unit switch
            {
                BillingIntervalUnit.Day => anchorLocal.AddDays(1),
                BillingIntervalUnit.Week => anchorLocal.AddDays(7),
                BillingIntervalUnit.Month => anchorLocal.AddMonths(1),
                _ => anchorLocal.AddYears(1),
            };
        }

        var anchor = anchorLocal == local ? start : ZonedTime.ToInstant(anchorLocal, timeZone);
        return new BillingSchedule(start, anchorLocal, anchor, interval, timeZone);
    }

    /// <summary>
    /// A schedule with an explicit billing anchor instant, like Stripe's <c>billing_cycle_anchor</c>. An anchor
    /// after the start gives a partial first period ending at the anchor; an anchor before the start keeps the
    /// anchor's cycle and starts the first period at <paramref name="start"/>.
    /// </summary>
    /// <param name="start">When the subscription starts.</param>
    /// <param name="anchor">The billing anchor.</param>
    /// <param name="interval">The billing interval.</param>
    /// <param name="timeZone">The customer's time zone; the anchor's day of month and time of day are read on it.</param>
    /// <returns>The schedule.</returns>
    public static BillingSchedule WithAnchor(DateTimeOffset start, DateTimeOffset anchor, BillingInterval interval, TimeZoneInfo timeZone)
    {
        ArgumentNullException.ThrowIfNull(timeZone);
        return new BillingSchedule(start, ZonedTime.ToLocal(anchor, timeZone), anchor, interval, timeZone);
    }

    /// <summary>
    /// Recreates a schedule from stored values: the start instant and the anchor as a local wall-clock
    /// date-time (<see cref="AnchorLocal"/>). Use it to rebuild a schedule exactly as it was.
    /// </summary>
    /// <param name="start">When the subscription started.</param>
    /// <param name="anchorLocal">The anchor on the customer's calendar (its <see cref="DateTime.Kind"/> is ignored).</param>
    /// <param name="interval">The billing interval.</param>
    /// <param name="timeZone">The customer's time zone.</param>
    /// <returns>The schedule.</returns>
    public static BillingSchedule FromLocalAnchor(DateTimeOffset start, DateTime anchorLocal, BillingInterval interval, TimeZoneInfo timeZone)
    {
        ArgumentNullException.ThrowIfNull(timeZone);
        anchorLocal = DateTime.SpecifyKind(anchorLocal, DateTimeKind.Unspecified);
        var startLocal = ZonedTime.ToLocal(start, timeZone);
        var anchor = anchorLocal == startLocal ? start : ZonedTime.ToInstant(anchorLocal, timeZone);
        return new BillingSchedule(start, anchorLocal, anchor, interval, timeZone);
    }

    /// <summary>Returns period <paramref name="index"/> (0 is the first period, starting at <see cref="Start"/>).</summary>
    /// <param name="index">The period number, zero or more.</param>
    /// <returns>The period.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is negative or beyond year 9999.</exception>
    public BillingPeriod GetPeriod(long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return new BillingPeriod(PeriodStart(index), Boundary(checked(_firstBoundaryIndex + index)));
    }

    /// <summary>Returns the period that contains <paramref name="instant"/>.</summary>
    /// <param name="instant">An instant at or after <see cref="Start"/>.</param>
    /// <returns>The period with <c>Start ≤ instant &lt; End</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="instant"/> is before <see cref="Start"/>.</exception>
    public BillingPeriod GetPeriodContaining(DateTimeOffset instant) => GetPeriod(GetPeriodIndex(instant));

    /// <summary>Returns the number of the period that contains <paramref name="instant"/>.</summary>
    /// <param name="instant">An instant at or after <see cref="Start"/>.</param>
    /// <returns>The period number (0 for the first period).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="instant"/> is before <see cref="Start"/>.</exception>
    public long GetPeriodIndex(DateTimeOffset instant)
    {
        if (instant < Start)
        {
            throw new ArgumentOutOfRangeException(nameof(instant), instant, $"The instant is before the schedule starts ({Start:O}).");
        }

        // n = the last boundary at or before the instant; the period index counts boundaries after the start.
        var n = Locate(instant).Index;
        return n < _firstBoundaryIndex ? 0 : n - _firstBoundaryIndex + 1;
    }

    /// <summary>Returns the period right after <paramref name="period"/>: it starts where <paramref name="period"/> ends.</summary>
    /// <param name="period">A period of this schedule.</param>
    /// <returns>The next period.</returns>
    /// <exception cref="ArgumentException"><paramref name="period"/> does not end on a boundary of this schedule.</exception>
    public BillingPeriod GetNextPeriod(BillingPeriod period)
    {
        var located = Locate(period.End);
        if (located.At != period.End || located.Index < _firstBoundaryIndex)
        {
            throw new ArgumentException($"The period {period} does not end on a boundary of this schedule.", nameof(period));
        }

        return new BillingPeriod(period.End, located.Next);
    }

    /// <summary>Enumerates the periods from the first one on (endless; take what you need).</summary>
    /// <returns>The periods in order; each starts where the previous one ended.</returns>
    public IEnumerable<BillingPeriod> EnumeratePeriods()
    {
        var start = Start;
        for (var n = _firstBoundaryIndex; ; n++)
        {
            var end = Boundary(n);
            yield return new BillingPeriod(start, end);
            start = end;
        }
    }

    /// <summary>Boundary <paramref name="n"/> of the anchor's sequence as an instant; boundary 0 is the anchor.</summary>
    internal DateTimeOffset Boundary(long n) =>
        n == 0 ? _anchor : ZonedTime.ToInstant(Interval.AddTo(AnchorLocal, n), TimeZone);

    private DateTimeOffset PeriodStart(long index) =>
        index == 0 ? Start : Boundary(checked(_firstBoundaryIndex + index - 1));

    /// <summary>
    /// Finds the largest n with Boundary(n) ≤ instant (negative when the instant is before the anchor), and
    /// returns it with Boundary(n) and Boundary(n + 1).
    /// </summary>
    private (long Index, DateTimeOffset At, DateTimeOffset Next) Locate(DateTimeOffset instant)
    {
        // Estimated on the UTC calendar (no zone lookup): at most one off, which the loops below correct.
        var n = Interval.EstimateIntervalsBetween(_anchor.UtcDateTime, instant.UtcDateTime);
        var at = Boundary(n);
        while (at > instant)
        {
            n--;
            at = Boundary(n);
        }

        var next = Boundary(checked(n + 1));
        while (next <= instant)
        {
            n++;
            at = next;
            next = Boundary(checked(n + 1));
        }

        return (n, at, next);
    }
}
