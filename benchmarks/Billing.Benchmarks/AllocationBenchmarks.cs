using BenchmarkDotNet.Attributes;

namespace Billing.Benchmarks;

/// <summary>Splitting and weighted allocation of <see cref="Money"/> into 12 parts.</summary>
[MemoryDiagnoser]
public class AllocationBenchmarks
{
    private const int Parts = 12;

    private readonly Money[] _buffer = new Money[Parts];

    // Twelve unequal weights (a year of monthly usage, say) whose shares leave remainders to distribute.
    private readonly long[] _weights = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

    private Money _amount;

    [GlobalSetup]
    public void Setup() => _amount = new Money(1_000_003, Currency.USD);

    [Benchmark(Baseline = true)]
    public Money SplitInto12() // into a preallocated buffer
    {
        _amount.Split(_buffer);
        return _buffer[Parts - 1];
    }

    [Benchmark]
    public Money AllocateInto12() // weighted, into a preallocated buffer
    {
        _amount.Allocate(_weights, _buffer);
        return _buffer[Parts - 1];
    }

    [Benchmark]
    public Money[] AllocateArray12() => _amount.Allocate(_weights);
}
