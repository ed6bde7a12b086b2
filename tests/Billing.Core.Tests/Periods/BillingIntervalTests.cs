using Billing.Periods;

namespace Billing.Tests.Periods;

public sealed class BillingIntervalTests
{
    [Fact]
    public void Factories_set_unit_and_count()
    {
        Assert.Equal(new BillingInterval(BillingIntervalUnit.Month, 1), BillingInterval.Monthly);
        Assert.Equal(new BillingInterval(BillingIntervalUnit.Month, 3), BillingInterval.Quarterly);
        Assert.Equal(new BillingInterval(BillingIntervalUnit.Year, 1), BillingInterval.Yearly);
        Assert.Equal(new BillingInterval(BillingIntervalUnit.Week, 2), BillingInterval.Weeks(2));
        Assert.Equal(new BillingInterval(BillingIntervalUnit.Day, 30), BillingInterval.Days(30));
        Assert.Equal("1 month", BillingInterval.Monthly.ToString());
        Assert.Equal("6 months", BillingInterval.Months(6).ToString());
        Assert.Equal("2 years", BillingInterval.Years(2).ToString());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(BillingInterval.MaxCount + 1)]
    public void Count_must_be_at_least_one_and_bounded(int count)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BillingInterval(BillingIntervalUnit.Month, count));
    }

    [Fact]
    public void Unknown_unit_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BillingInterval((BillingIntervalUnit)42, 1));
    }

    [Fact]
    public void Default_interval_is_rejected_by_schedules()
    {
        var start = new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Throws<ArgumentException>(() => BillingSchedule.Anniversary(start, default, TimeZoneInfo.Utc));
    }
}
