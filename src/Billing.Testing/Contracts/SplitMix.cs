namespace Billing.Testing.Contracts;

/// <summary>
/// A small seeded generator (SplitMix64) for the contract suites: the same seed gives the same sequence on every
/// machine (System.Random is banned as a hidden source of nondeterminism).
/// </summary>
internal sealed class SplitMix(ulong seed)
{
    private ulong _state = seed;

    public int Next(int maxExclusive) => Next(0, maxExclusive);

    public int Next(int minInclusive, int maxExclusive) =>
        unchecked(minInclusive + (int)(NextUInt64() % (ulong)(maxExclusive - minInclusive)));

    /// <summary>Any 64-bit value.</summary>
    public long NextInt64() => unchecked((long)NextUInt64());

    private ulong NextUInt64()
    {
        unchecked
        {
            var z = _state += 0x9E3779B97F4A7C15;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31);
        }
    }

    public void Shuffle<T>(T[] items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
