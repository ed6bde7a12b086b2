using BenchmarkDotNet.Attributes;

namespace Billing.Benchmarks;

/// <summary>
/// Money add/compare/equality per operation: each invocation runs over 1,024 values (so the JIT cannot fold the
/// work away) and BenchmarkDotNet divides by <see cref="Count"/>. The baseline does the same over plain longs.
/// </summary>
[MemoryDiagnoser]
public class MoneyBenchmarks
{
    private const int Count = 1024;

    private readonly long[] _longs = new long[Count];
    private readonly Money[] _left = new Money[Count];
    private readonly Money[] _right = new Money[Count];

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        for (var i = 0; i < Count; i++)
        {
            _longs[i] = random.Next(-1_000_000, 1_000_000);
            _left[i] = new Money(random.Next(-1_000_000, 1_000_000), Currency.USD);
            _right[i] = new Money(random.Next(-1_000_000, 1_000_000), Currency.USD);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Count)]
    public long LongAdd()
    {
        long sum = 0;
        foreach (var value in _longs)
        {
            sum = checked(sum + value);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public Money MoneyAdd()
    {
        var sum = Money.Zero(Currency.USD);
        foreach (var value in _left)
        {
            sum += value;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public int MoneyLessThan()
    {
        var count = 0;
        for (var i = 0; i < Count; i++)
        {
            if (_left[i] < _right[i])
            {
                count++;
            }
        }

        return count;
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public int MoneyCompareTo()
    {
        var total = 0;
        for (var i = 0; i < Count; i++)
        {
            total += _left[i].CompareTo(_right[i]);
        }

        return total;
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public int MoneyEquals()
    {
        var count = 0;
        for (var i = 0; i < Count; i++)
        {
            if (_left[i] == _right[i])
            {
                count++;
            }
        }

        return count;
    }
}
