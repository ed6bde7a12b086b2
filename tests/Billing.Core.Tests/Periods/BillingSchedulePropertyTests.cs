using Billing.Periods;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Periods;

public sealed class BillingSchedulePropertyTests
{
    private const int PeriodsChecked = 26;

    private static readonly int[] Counts = [1, 2, 3, 6, 12];

    private static readonly string[] OddZones =
        ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns", "Pacific/Apia", "Etc/UTC"];

    private static readonly double[] HoursBack = [0.5, 1, 2, 24];

    private static readonly TimeZoneInfo[] AllZones = [.. Zones.Ids.Select(Zones.Get)];

    public sealed record ScheduleCase(TimeZoneInfo Zone, BillingInterval Interval, DateTime StartLocal, bool Calendar)
    {
        public override string ToString() => $"{Zone.Id} {Interval} from {StartLocal:yyyy-MM-dd HH:mm:ss} local{(Calendar ? " (calendar)" : string.Empty)}";
    }

    private static Gen<ScheduleCase> Cases() =>
        from zone in Gen.Elements(AllZones)
        from unit in Gen.Elements(Enum.GetValues<BillingIntervalUnit>())
        from count in Gen.Elements(Counts)
        from anchorDay in Gen.Choose(1, 31)
        from year in Gen.Choose(1970, 2100)
        from monthPick in Gen.Choose(0, 11)
        from hour in Gen.Frequency((3, Gen.Choose(0, 23)), (1, Gen.Elements(0, 1, 2, 3)))
        from minute in Gen.Elements(0, 0, 15, 30, 45, 59)
        from second in Gen.Choose(0, 59)
        from calendar in Gen.Frequency((4, Gen.Constant(false)), (1, Gen.Constant(true)))
        let months = Enumerable.Range(1, 12).Where(m => DateTime.DaysInMonth(year, m) >= anchorDay).ToArray()
        let month = months[monthPick % months.Length]
        select new ScheduleCase(zone, new BillingInterval(unit, count), new DateTime(year, month, anchorDay, hour, minute, second), calendar);

    [Fact]
    public void Periods_are_contiguous_non_empty_and_the_anchor_never_drifts()
    {
        Props.ForAll(Cases(), CheckSchedule, 3_000);
    }

    [Fact]
    public void Every_anchor_day_interval_and_count_holds_in_zones_with_DST_and_odd_offsets()
    {
        // Exhaustive over anchor day × unit × count; zones and years rotate so every combination meets DST zones.
        var odd = OddZones.Select(Zones.Get).ToArray();
        var i = 0;
        for (var day = 1; day <= 31; day++)
        {
            foreach (var unit in Enum.GetValues<BillingIntervalUnit>())
            {
                foreach (var count in Counts)
                {
                    var zone = odd[i % odd.Length];
                    var year = 1970 + (i * 7 % 131);
                    var month = Enumerable.Range(1, 12).Where(m => DateTime.DaysInMonth(year, m) >= day).ElementAt(i % 7);
                    CheckSchedule(new ScheduleCase(zone, new BillingInterval(unit, count), new DateTime(year, month, day, 1 + (i % 3), 30, 0), i % 5 == 0));
                    i++;
                }
            }
        }

        Assert.Equal(31 * 4 * 5, i);
    }

    [Fact]
    public void Lookups_by_instant_agree_with_the_enumerated_periods()
    {
        Props.ForAll(
            from c in Cases()
            from index in Gen.Choose(0, PeriodsChecked - 2)
            from fraction in Gens.Long(0, 1_000_000)
            select (c, index, fraction),
            t =>
            {
                var schedule = Create(t.c);
                var periods = schedule.EnumeratePeriods().Take(PeriodsChecked).ToArray();
                var period = periods[t.index];
                var instant = period.Start + TimeSpan.FromTicks((period.End - period.Start).Ticks / 1_000_000 * t.fraction);
                instant = instant >= period.End ? period.End.AddTicks(-1) : instant;

                Assert.Equal(period, schedule.GetPeriodContaining(instant));
                Assert.Equal(period, schedule.GetPeriodContaining(period.Start));
                Assert.Equal(period, schedule.GetPeriodContaining(period.End.AddTicks(-1)));
                Assert.Equal(t.index, schedule.GetPeriodIndex(instant));
                Assert.Equal(periods[t.index + 1], schedule.GetPeriodContaining(period.End));
            },
            2_000);
    }

    private static BillingSchedule Create(ScheduleCase c)
    {
        var start = ResolveStart(c.StartLocal, c.Zone);
        return c.Calendar
            ? BillingSchedule.Calendar(start, c.Interval, c.Zone)
            : BillingSchedule.Anniversary(start, c.Interval, c.Zone);
    }

    private static void CheckSchedule(ScheduleCase c)
    {
        var schedule = Create(c);
        var periods = schedule.EnumeratePeriods().Take(PeriodsChecked).ToArray();

        Assert.Equal(schedule.Start, periods[0].Start);
        for (var i = 0; i < periods.Length; i++)
        {
            var period = periods[i];
            Assert.True(period.End > period.Start, $"period {i} {period} is empty");
            if (i + 1 < periods.Length)
            {
                Assert.Equal(period.End, periods[i + 1].Start);
                Assert.Equal(periods[i + 1], schedule.GetNextPeriod(period));
            }

            Assert.Equal(period, schedule.GetPeriod(i));
        }

        // No drift: boundary n is the anchor's local date-time moved by n intervals (day clamped to the month's end),
        // resolved on the zone's calendar.
        var firstBoundary = schedule.HasPartialFirstPeriod ? 0 : 1;
        for (var i = 0; i < periods.Length; i++)
        {
            var n = i + firstBoundary;
            AssertBoundary(periods[i].End, ExpectedLocal(schedule.AnchorLocal, c.Interval, n), c.Zone, $"{c}: end of period {i}");
        }

        if (c.Calendar)
        {
            Assert.Equal(ExpectedCalendarAnchor(ZonedLocal(schedule.Start, c.Zone), c.Interval.Unit), schedule.AnchorLocal);
        }
    }

    /// <summary>Independent of DateTime.AddMonths: month arithmetic by hand, day clamped to the month's length.</summary>
    private static DateTime ExpectedLocal(DateTime anchor, BillingInterval interval, int n)
    {
        switch (interval.Unit)
        {
            case BillingIntervalUnit.Day:
                return anchor + TimeSpan.FromDays((double)n * interval.Count);
            case BillingIntervalUnit.Week:
                return anchor + TimeSpan.FromDays(7.0 * n * interval.Count);
            default:
                var months = n * interval.Count * (interval.Unit == BillingIntervalUnit.Year ? 12 : 1);
                var index = (anchor.Year * 12) + anchor.Month - 1 + months;
                var year = index / 12;
                var month = (index % 12) + 1;
                var day = Math.Min(anchor.Day, DateTime.DaysInMonth(year, month));
                return new DateTime(year, month, day) + anchor.TimeOfDay;
        }
    }

    private static DateTime ExpectedCalendarAnchor(DateTime startLocal, BillingIntervalUnit unit)
    {
        var floor = unit switch
        {
            BillingIntervalUnit.Day => startLocal.Date,
            BillingIntervalUnit.Week => startLocal.Date.AddDays(-(((int)startLocal.DayOfWeek + 6) % 7)),
            BillingIntervalUnit.Month => new DateTime(startLocal.Year, startLocal.Month, 1),
            _ => new DateTime(startLocal.Year, 1, 1),
        };
        if (floor == startLocal)
        {
            return floor;
        }

        return unit switch
        {
            BillingIntervalUnit.Day => floor.AddDays(1),
            BillingIntervalUnit.Week => floor.AddDays(7),
            BillingIntervalUnit.Month => floor.AddMonths(1),
            _ => floor.AddYears(1),
        };
    }

    /// <summary>
    /// The boundary shows the expected local time; or, when that local time does not exist (a DST gap),
    /// the boundary is the transition: the zone shows a later time at it and an earlier time one tick before.
    /// When the local time exists twice, the boundary is the earlier instant.
    /// </summary>
    private static void AssertBoundary(DateTimeOffset boundary, DateTime expected, TimeZoneInfo zone, string what)
    {
        var shown = ZonedLocal(boundary, zone);
        if (shown == expected)
        {
            // Earliest: an hour (or more) earlier must not also show the same local time.
            foreach (var back in HoursBack)
            {
                Assert.NotEqual(expected, ZonedLocal(boundary - TimeSpan.FromHours(back), zone));
            }

            return;
        }

        var shownBefore = ZonedLocal(boundary.AddTicks(-1), zone);
        Assert.True(
            shown > expected && shownBefore < expected,
            $"{what}: expected local {expected:yyyy-MM-dd HH:mm:ss} (or the DST transition after it), got {boundary:O} = {shown:yyyy-MM-dd HH:mm:ss} local");
    }

    private static DateTime ZonedLocal(DateTimeOffset instant, TimeZoneInfo zone) =>
        DateTime.SpecifyKind(TimeZoneInfo.ConvertTimeFromUtc(instant.UtcDateTime, zone), DateTimeKind.Unspecified);

    /// <summary>Any instant that shows the requested local time (or the nearest after a gap) is a fine start.</summary>
    private static DateTimeOffset ResolveStart(DateTime local, TimeZoneInfo zone)
    {
        var guess = new DateTimeOffset(local.Ticks, TimeSpan.Zero) - zone.GetUtcOffset(new DateTime(local.Ticks, DateTimeKind.Utc));
        for (var i = 0; i < 4 && ZonedLocal(guess, zone) != local; i++)
        {
            guess = new DateTimeOffset(local.Ticks, TimeSpan.Zero) - zone.GetUtcOffset(guess.UtcDateTime);
        }

        return guess;
    }
}
