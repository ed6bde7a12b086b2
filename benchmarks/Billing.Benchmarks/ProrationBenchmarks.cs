using BenchmarkDotNet.Attributes;
using Billing.Periods;
using Billing.Proration;

namespace Billing.Benchmarks;

/// <summary>Proration of a mid-period price change, and an exact split of an amount at an instant.</summary>
[MemoryDiagnoser]
public class ProrationBenchmarks
{
    private BillingPeriod _period;
    private DateTimeOffset _changeAt;
    private Money _oldAmount;
    private Money _newAmount;

    [GlobalSetup]
    public void Setup()
    {
        _period = new BillingPeriod(
            new DateTimeOffset(2024, 3, 1, 0, 0, 0, TimeSpan.Zero),
            new DateTimeOffset(2024, 4, 1, 0, 0, 0, TimeSpan.Zero));
        _changeAt = new DateTimeOffset(2024, 3, 17, 13, 27, 45, TimeSpan.Zero);
        _oldAmount = new Money(2_999, Currency.USD);
        _newAmount = new Money(4_999, Currency.USD);
    }

    [Benchmark(Baseline = true)]
    public Money Prorate() =>
        ProrationCalculator.Prorate(_period, _changeAt, _oldAmount, _newAmount).Net;

    [Benchmark]
    public (Money Before, Money After) Split() =>
        ProrationCalculator.Split(_newAmount, _period, _changeAt);
}
