using BenchmarkDotNet.Attributes;
using Billing.Periods;

namespace Billing.Benchmarks;

/// <summary>
/// Next-period computation on a monthly anniversary schedule anchored on day 31 (so months clamp),
/// in a DST zone and in UTC.
/// </summary>
[MemoryDiagnoser]
public class PeriodBenchmarks
{
    private const long MidRangeIndex = 60;

    private BillingSchedule _newYork = null!;
    private BillingSchedule _utc = null!;
    private BillingPeriod _newYorkPeriod;
    private BillingPeriod _utcPeriod;
    private DateTimeOffset _instant;

    [GlobalSetup]
    public void Setup()
    {
        var newYorkZone = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        var utcZone = TimeZoneInfo.FindSystemTimeZoneById("Etc/UTC");

        // 31 Jan 2024, 09:30 local (EST, -05:00), and the same wall-clock time in UTC.
        _newYork = BillingSchedule.Anniversary(
            new DateTimeOffset(2024, 1, 31, 9, 30, 0, TimeSpan.FromHours(-5)), BillingInterval.Monthly, newYorkZone);
        _utc = BillingSchedule.Anniversary(
            new DateTimeOffset(2024, 1, 31, 9, 30, 0, TimeSpan.Zero), BillingInterval.Monthly, utcZone);

        // A period ending on 31 Mar 2024 (after the spring-forward change), so the next one clamps to 30 Apr.
        _newYorkPeriod = _newYork.GetPeriod(1);
        _utcPeriod = _utc.GetPeriod(1);

        // Well inside period MidRangeIndex.
        _instant = _newYork.GetPeriod(MidRangeIndex).Start.AddDays(10);
    }

    [Benchmark(Baseline = true)]
    public BillingPeriod GetNextPeriod_NewYork() => _newYork.GetNextPeriod(_newYorkPeriod);

    [Benchmark]
    public BillingPeriod GetNextPeriod_Utc() => _utc.GetNextPeriod(_utcPeriod);

    [Benchmark]
    public BillingPeriod GetPeriod_MidRange_NewYork() => _newYork.GetPeriod(MidRangeIndex);

    [Benchmark]
    public BillingPeriod GetPeriodContaining_NewYork() => _newYork.GetPeriodContaining(_instant);
}
