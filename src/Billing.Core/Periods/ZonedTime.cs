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
    /// Both rules keep the mapping from local time to instants non-decreasing, so local boundaries at least
    /// one day apart never collapse onto each other or swap order (even across the 24-hour gap of
    /// Pacific/Apia on 30 December 2011).
    /// </remarks>
    public static DateTimeOffset ToInstant(DateTime local, TimeZoneInfo zone)
    {
        local = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        if (zone.IsAmbiguousTime(local))
        {
            var offsets = zone.GetAmbiguousTimeOffsets(local);
            var largest = offsets[0];
            foreach (var offset in offsets)
            {
                if (offset > largest)
                {
                    largest = offset;
                }
            }

            return Utc(local - largest);
        }

        if (zone.IsInvalidTime(local))
        {
            return GapTransition(local, zone);
        }

        return Utc(local - zone.GetUtcOffset(local));
    }

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
