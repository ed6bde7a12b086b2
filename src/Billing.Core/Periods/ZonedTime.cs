namespace Billing.Periods;

/// <summary>Conversions between instants and a time zone's local calendar, with deterministic DST handling.</summary>
internal static class ZonedTime
{
    /// <summary>The local wall-clock date-time of an instant in a zone (kind Unspecified).</summary>
    public static DateTime ToLocal(DateTimeOffset instant, TimeZoneInfo zone) =>
        DateTime.SpecifyKind(TimeZoneInfo.ConvertTimeFromUtc(instant.UtcDateTime, zone), DateTimeKind.Unspecified);

    /// <summary>
    /// The instant at which a zone's clocks show <paramref name="local"/>. A time skipped by a forward transition
    /// (a DST gap) resolves to the transition instant, the first instant after the gap; a time shown twice (an
    /// overlap) resolves to the earlier of its two instants.
    /// </summary>
    /// <remarks>
    /// <para>Both rules keep the mapping from local time to instants non-decreasing, so local boundaries at least
    /// one day apart never collapse onto each other or swap order (even across the 24-hour gap of
    /// Pacific/Apia on 30 December 2011).</para>
    /// <para>Only instant → local conversions are used: .NET's local → instant queries
    /// (<see cref="TimeZoneInfo.IsInvalidTime"/>, <see cref="TimeZoneInfo.GetUtcOffset(DateTime)"/> on a local
    /// time) misreport transitions that change the base offset, such as Samoa's in 2011. The offsets in force a
    /// day before and a day after are the only candidates (no zone has changed its offset twice within two days
    /// since 1970); each candidate instant is kept when the zone really shows <paramref name="local"/> then.</para>
    /// </remarks>
    public static DateTimeOffset ToInstant(DateTime local, TimeZoneInfo zone)
    {
        var ticks = local.Ticks;
        var before = OffsetAt(ticks - TimeSpan.TicksPerDay, zone);
        var after = OffsetAt(ticks + TimeSpan.TicksPerDay, zone);
        var early = ticks - before.Ticks; // the instant if the earlier offset applies
        var earlyShows = OffsetAt(early, zone) == before;
        if (before == after && earlyShows)
        {
            return new DateTimeOffset(early, TimeSpan.Zero);
        }

        var late = ticks - after.Ticks; // the instant if the later offset applies
        var lateShows = OffsetAt(late, zone) == after;
        return (earlyShows, lateShows) switch
        {
            (true, true) => new DateTimeOffset(Math.Min(early, late), TimeSpan.Zero), // overlap: the earlier instant
            (true, false) => new DateTimeOffset(early, TimeSpan.Zero),
            (false, true) => new DateTimeOffset(late, TimeSpan.Zero),
            _ => GapTransition(local, zone),                                            // gap: the transition instant
        };
    }

    private static TimeSpan OffsetAt(long utcTicks, TimeZoneInfo zone) =>
        zone.GetUtcOffset(new DateTime(Math.Clamp(utcTicks, DateTime.MinValue.Ticks, DateTime.MaxValue.Ticks), DateTimeKind.Utc));

    private static DateTimeOffset GapTransition(DateTime local, TimeZoneInfo zone)
    {
        // Every instant before the transition shows a local time before `local`; every instant from the
        // transition on shows one after it. Binary search, to the tick, for the first instant of the second kind.
        var low = local.Ticks - TimeSpan.TicksPerDay * 2;   // shows a local time before `local`
        var high = local.Ticks + TimeSpan.TicksPerDay * 2;  // shows a local time after `local`
        while (high - low > 1)
        {
            var mid = low + ((high - low) / 2);
            var shown = TimeZoneInfo.ConvertTimeFromUtc(new DateTime(mid, DateTimeKind.Utc), zone);
            if (shown.Ticks >= local.Ticks)
            {
                high = mid;
            }
            else
            {
                low = mid;
            }
        }

        return new DateTimeOffset(high, TimeSpan.Zero);
    }

    private static DateTimeOffset Utc(DateTime utc) => new(utc.Ticks, TimeSpan.Zero);
}
