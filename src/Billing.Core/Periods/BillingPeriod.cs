namespace Billing.Periods;

/// <summary>A half-open span of time <c>[Start, End)</c> between two UTC instants.</summary>
/// <remarks>
/// Consecutive periods of a <see cref="BillingSchedule"/> share their boundary: one period's
/// <see cref="End"/> is exactly the next period's <see cref="Start"/>, so no instant belongs to two periods
/// and none falls between them.
/// </remarks>
public readonly record struct BillingPeriod
{
    /// <summary>Creates a period.</summary>
    /// <param name="start">The first instant of the period (inclusive).</param>
    /// <param name="end">The instant the period ends (exclusive); after <paramref name="start"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="end"/> is not after <paramref name="start"/>.</exception>
    public BillingPeriod(DateTimeOffset start, DateTimeOffset end)
    {
        if (end <= start)
        {
            throw new ArgumentException($"A billing period must end after it starts ({start:O} to {end:O}).", nameof(end));
        }

        Start = start.ToUniversalTime();
        End = end.ToUniversalTime();
    }

    /// <summary>The first instant of the period (inclusive), in UTC.</summary>
    public DateTimeOffset Start { get; }

    /// <summary>The end of the period (exclusive), in UTC.</summary>
    public DateTimeOffset End { get; }

    /// <summary>The elapsed time from <see cref="Start"/> to <see cref="End"/> (DST days make months differ by an hour).</summary>
    public TimeSpan Duration => End - Start;

    /// <summary>Whether an instant is in <c>[Start, End)</c>.</summary>
    /// <param name="instant">The instant.</param>
    /// <returns><see langword="true"/> when the instant is in the period.</returns>
    public bool Contains(DateTimeOffset instant) => instant >= Start && instant < End;

    /// <summary>Formats as <c>[start, end)</c> in ISO 8601.</summary>
    /// <returns>The text form.</returns>
    public override string ToString() => $"[{Start:O}, {End:O})";
}
