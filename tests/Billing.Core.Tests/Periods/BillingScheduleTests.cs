using Billing.Periods;
using Billing.Tests.Support;

namespace Billing.Tests.Periods;

public sealed class BillingScheduleTests
{
    private static DateTimeOffset Utc(int y, int mo, int d, int h = 0, int mi = 0) => new(y, mo, d, h, mi, 0, TimeSpan.Zero);

    private static DateTimeOffset[] Ends(BillingSchedule schedule, int count) =>
        schedule.EnumeratePeriods().Take(count).Select(p => p.End).ToArray();

    [Fact]
    public void Anchor_day_31_clamps_to_month_end_and_goes_back_to_31()
    {
        var schedule = BillingSchedule.Anniversary(Utc(2024, 1, 31, 10), BillingInterval.Monthly, TimeZoneInfo.Utc);

        Assert.Equal(
            [
                Utc(2024, 2, 29, 10), Utc(2024, 3, 31, 10), Utc(2024, 4, 30, 10), Utc(2024, 5, 31, 10),
                Utc(2024, 6, 30, 10), Utc(2024, 7, 31, 10), Utc(2024, 8, 31, 10), Utc(2024, 9, 30, 10),
                Utc(2024, 10, 31, 10), Utc(2024, 11, 30, 10), Utc(2024, 12, 31, 10), Utc(2025, 1, 31, 10),
                Utc(2025, 2, 28, 10), Utc(2025, 3, 31, 10),
            ],
            Ends(schedule, 14));
        Assert.False(schedule.HasPartialFirstPeriod);
    }

    [Fact]
    public void Anchor_days_30_and_29_clamp_in_February_only()
    {
        Assert.Equal(
            [Utc(2023, 2, 28), Utc(2023, 3, 30), Utc(2023, 4, 30), Utc(2023, 5, 30)],
            Ends(BillingSchedule.Anniversary(Utc(2023, 1, 30), BillingInterval.Monthly, TimeZoneInfo.Utc), 4));
        Assert.Equal(
            [Utc(2024, 2, 29), Utc(2024, 3, 30)],
            Ends(BillingSchedule.Anniversary(Utc(2024, 1, 30), BillingInterval.Monthly, TimeZoneInfo.Utc), 2));
        Assert.Equal(
            [Utc(2023, 2, 28), Utc(2023, 3, 29)],
            Ends(BillingSchedule.Anniversary(Utc(2023, 1, 29), BillingInterval.Monthly, TimeZoneInfo.Utc), 2));
        Assert.Equal(
            [Utc(2024, 2, 29), Utc(2024, 3, 29)],
            Ends(BillingSchedule.Anniversary(Utc(2024, 1, 29), BillingInterval.Monthly, TimeZoneInfo.Utc), 2));
    }

    [Fact]
    public void Yearly_anchor_on_29_February_falls_on_28_February_in_common_years()
    {
        var schedule = BillingSchedule.Anniversary(Utc(2024, 2, 29), BillingInterval.Yearly, TimeZoneInfo.Utc);

        Assert.Equal(
            [Utc(2025, 2, 28), Utc(2026, 2, 28), Utc(2027, 2, 28), Utc(2028, 2, 29), Utc(2029, 2, 28)],
            Ends(schedule, 5));
    }

    [Fact]
    public void Quarterly_from_31_August_clamps_November_and_returns_to_31()
    {
        Assert.Equal(
            [Utc(2024, 11, 30), Utc(2025, 2, 28), Utc(2025, 5, 31), Utc(2025, 8, 31)],
            Ends(BillingSchedule.Anniversary(Utc(2024, 8, 31), BillingInterval.Quarterly, TimeZoneInfo.Utc), 4));
    }

    [Fact]
    public void A_boundary_in_a_DST_gap_resolves_to_the_transition_instant()
    {
        var newYork = Zones.Get("America/New_York");
        // 02:30 EST on 10 Feb 2024; 10 Mar 2024 02:30 does not exist (clocks jump 02:00 EST → 03:00 EDT at 07:00Z).
        var schedule = BillingSchedule.Anniversary(Utc(2024, 2, 10, 7, 30), BillingInterval.Monthly, newYork);

        var periods = schedule.EnumeratePeriods().Take(2).ToArray();

        Assert.Equal(new BillingPeriod(Utc(2024, 2, 10, 7, 30), Utc(2024, 3, 10, 7)), periods[0]);
        Assert.Equal(new BillingPeriod(Utc(2024, 3, 10, 7), Utc(2024, 4, 10, 6, 30)), periods[1]); // 02:30 EDT
    }

    [Fact]
    public void A_boundary_in_a_DST_overlap_resolves_to_the_earlier_instant()
    {
        var newYork = Zones.Get("America/New_York");
        // 01:30 EDT on 3 Oct 2024; 3 Nov 2024 01:30 happens twice (EDT 05:30Z, then EST 06:30Z).
        var schedule = BillingSchedule.Anniversary(Utc(2024, 10, 3, 5, 30), BillingInterval.Monthly, newYork);

        Assert.Equal([Utc(2024, 11, 3, 5, 30), Utc(2024, 12, 3, 6, 30)], Ends(schedule, 2));
    }

    [Fact]
    public void Thirty_minute_DST_of_Lord_Howe_is_handled()
    {
        var lordHowe = Zones.Get("Australia/Lord_Howe");
        // 02:15 (+10:30) on 6 Sep 2024; on 6 Oct 2024 clocks go 02:00 → 02:30 (+11) at 15:30Z on 5 Oct.
        var schedule = BillingSchedule.Anniversary(Utc(2024, 9, 5, 15, 45), BillingInterval.Monthly, lordHowe);

        Assert.Equal([Utc(2024, 10, 5, 15, 30), Utc(2024, 11, 5, 15, 15)], Ends(schedule, 2));
    }

    [Fact]
    public void The_skipped_day_of_Samoa_does_not_collapse_daily_periods()
    {
        var apia = Zones.Get("Pacific/Apia");
        // Samoa skipped 30 Dec 2011: 29 Dec 23:59:59 (-10) was followed by 31 Dec 00:00 (+14), at 10:00Z on 30 Dec.
        var schedule = BillingSchedule.Anniversary(Utc(2011, 12, 28, 22), BillingInterval.Daily, apia);

        var periods = schedule.EnumeratePeriods().Take(4).ToArray();

        Assert.Equal(
            [Utc(2011, 12, 29, 22), Utc(2011, 12, 30, 10), Utc(2011, 12, 30, 22), Utc(2011, 12, 31, 22)],
            periods.Select(p => p.End));
        Assert.All(periods, p => Assert.True(p.Duration > TimeSpan.Zero));
    }

    [Fact]
    public void Periods_follow_the_customers_calendar_not_UTC()
    {
        var tokyo = Zones.Get("Asia/Tokyo");
        // 2024-01-31T20:00Z is 1 Feb 05:00 in Tokyo: the anchor day is the 1st, not the 31st.
        var schedule = BillingSchedule.Anniversary(Utc(2024, 1, 31, 20), BillingInterval.Monthly, tokyo);

        Assert.Equal([Utc(2024, 2, 29, 20), Utc(2024, 3, 31, 20), Utc(2024, 4, 30, 20)], Ends(schedule, 3));
        Assert.Equal(new DateTime(2024, 2, 1, 5, 0, 0), schedule.AnchorLocal);
    }

    [Fact]
    public void Calendar_billing_starts_with_a_partial_period_to_the_first_of_next_month()
    {
        var berlin = Zones.Get("Europe/Berlin");
        var schedule = BillingSchedule.Calendar(Utc(2024, 1, 15, 11), BillingInterval.Monthly, berlin);

        Assert.True(schedule.HasPartialFirstPeriod);
        Assert.Equal(new DateTime(2024, 2, 1), schedule.AnchorLocal);
        Assert.Equal(
            [
                new BillingPeriod(Utc(2024, 1, 15, 11), Utc(2024, 1, 31, 23)),  // to 1 Feb 00:00 CET
                new BillingPeriod(Utc(2024, 1, 31, 23), Utc(2024, 2, 29, 23)),  // to 1 Mar 00:00 CET
                new BillingPeriod(Utc(2024, 2, 29, 23), Utc(2024, 3, 31, 22)),  // to 1 Apr 00:00 CEST
            ],
            schedule.EnumeratePeriods().Take(3));
    }

    [Fact]
    public void Calendar_billing_on_a_boundary_has_no_partial_period()
    {
        var berlin = Zones.Get("Europe/Berlin");
        var schedule = BillingSchedule.Calendar(Utc(2024, 1, 31, 23), BillingInterval.Monthly, berlin);

        Assert.False(schedule.HasPartialFirstPeriod);
        Assert.Equal(new BillingPeriod(Utc(2024, 1, 31, 23), Utc(2024, 2, 29, 23)), schedule.GetPeriod(0));
    }

    [Fact]
    public void Calendar_billing_aligns_weeks_to_Monday_days_to_midnight_and_years_to_January()
    {
        var wednesday = Utc(2024, 1, 17, 15);

        Assert.Equal(Utc(2024, 1, 22), BillingSchedule.Calendar(wednesday, BillingInterval.Weekly, TimeZoneInfo.Utc).GetPeriod(0).End);
        Assert.Equal(Utc(2024, 1, 29), BillingSchedule.Calendar(wednesday, BillingInterval.Weekly, TimeZoneInfo.Utc).GetPeriod(1).End);
        Assert.Equal(Utc(2024, 1, 18), BillingSchedule.Calendar(wednesday, BillingInterval.Daily, TimeZoneInfo.Utc).GetPeriod(0).End);
        Assert.Equal(Utc(2025, 1, 1), BillingSchedule.Calendar(wednesday, BillingInterval.Yearly, TimeZoneInfo.Utc).GetPeriod(0).End);
    }

    [Fact]
    public void An_explicit_anchor_after_the_start_gives_a_short_first_period()
    {
        var schedule = BillingSchedule.WithAnchor(Utc(2024, 1, 10), Utc(2024, 1, 25), BillingInterval.Monthly, TimeZoneInfo.Utc);

        Assert.Equal([new BillingPeriod(Utc(2024, 1, 10), Utc(2024, 1, 25)), new BillingPeriod(Utc(2024, 1, 25), Utc(2024, 2, 25))], schedule.EnumeratePeriods().Take(2));
    }

    [Fact]
    public void An_anchor_before_the_start_keeps_its_cycle()
    {
        var schedule = BillingSchedule.WithAnchor(Utc(2024, 3, 15), Utc(2024, 1, 31), BillingInterval.Monthly, TimeZoneInfo.Utc);

        Assert.True(schedule.HasPartialFirstPeriod);
        Assert.Equal([new BillingPeriod(Utc(2024, 3, 15), Utc(2024, 3, 31)), new BillingPeriod(Utc(2024, 3, 31), Utc(2024, 4, 30))], schedule.EnumeratePeriods().Take(2));
    }

    [Fact]
    public void A_schedule_rebuilt_from_its_stored_local_anchor_is_identical()
    {
        var berlin = Zones.Get("Europe/Berlin");
        var original = BillingSchedule.Calendar(Utc(2024, 1, 15, 11), BillingInterval.Monthly, berlin);

        var rebuilt = BillingSchedule.FromLocalAnchor(original.Start, original.AnchorLocal, original.Interval, berlin);

        Assert.Equal(original.EnumeratePeriods().Take(24), rebuilt.EnumeratePeriods().Take(24));
        Assert.Equal(original.Anchor, rebuilt.Anchor);
    }

    [Fact]
    public void Looks_up_periods_by_instant_and_by_index()
    {
        var schedule = BillingSchedule.Anniversary(Utc(2024, 1, 31), BillingInterval.Monthly, TimeZoneInfo.Utc);

        Assert.Equal(0, schedule.GetPeriodIndex(Utc(2024, 1, 31)));
        Assert.Equal(0, schedule.GetPeriodIndex(Utc(2024, 2, 28, 23, 59)));
        Assert.Equal(1, schedule.GetPeriodIndex(Utc(2024, 2, 29)));       // a boundary belongs to the period it starts
        Assert.Equal(new BillingPeriod(Utc(2025, 1, 31), Utc(2025, 2, 28)), schedule.GetPeriodContaining(Utc(2025, 2, 10)));
        Assert.Equal(new BillingPeriod(Utc(2025, 1, 31), Utc(2025, 2, 28)), schedule.GetPeriod(12));
        Assert.Equal(schedule.GetPeriod(13), schedule.GetNextPeriod(schedule.GetPeriod(12)));
    }

    [Fact]
    public void Bad_lookups_are_clear_errors()
    {
        var schedule = BillingSchedule.Anniversary(Utc(2024, 1, 31), BillingInterval.Monthly, TimeZoneInfo.Utc);

        Assert.Throws<ArgumentOutOfRangeException>(() => schedule.GetPeriodContaining(Utc(2024, 1, 30)));
        Assert.Throws<ArgumentOutOfRangeException>(() => schedule.GetPeriod(-1));
        var foreign = Assert.Throws<ArgumentException>(() => schedule.GetNextPeriod(new BillingPeriod(Utc(2024, 1, 31), Utc(2024, 2, 15))));
        Assert.Contains("does not end on a boundary", foreign.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new BillingPeriod(Utc(2024, 1, 2), Utc(2024, 1, 1)));
    }

    [Fact]
    public void Every_test_zone_is_installed()
    {
        Assert.True(Zones.Ids.Length >= 50);
        Assert.All(Zones.Ids, id => Assert.NotNull(Zones.Get(id)));
    }
}
