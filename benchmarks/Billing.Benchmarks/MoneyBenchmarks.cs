using BenchmarkDotNet.Attributes;

namespace Billing.Benchmarks;

/// <summary>Core <see cref="Money"/> arithmetic and comparison against a raw <see cref="long"/> baseline.</summary>
[MemoryDiagnoser]
public class MoneyBenchmarks
{
    // Instance fields (not constants) so the JIT cannot constant-fold the operations away.
    private long _rawA;
    private long _rawB;
    private Money _a;
    private Money _b;
    private Money _aCopy;

    [GlobalSetup]
    public void Setup()
    {
        _rawA = 12_345;
        _rawB = 67_890;
        _a = new Money(_rawA, Currency.USD);
        _b = new Money(_rawB, Currency.USD);

        // Equal value built separately: equality has to check both the amount and the currency.
        _aCopy = new Money(_rawA, Currency.USD);
    }

    [Benchmark(Baseline = true)]
    public long LongAdd() => _rawA + _rawB;

    [Benchmark]
    public Money MoneyAdd() => _a + _b;

    [Benchmark]
    public bool MoneyLessThan() => _a < _b;

    [Benchmark]
    public int MoneyCompareTo() => _a.CompareTo(_b);

    [Benchmark]
    public bool MoneyEquals() => _a == _aCopy;
}
