using System.Buffers;

namespace Billing;

/// <summary>
/// The one allocation function: splits a whole number of minor units by non-negative integer weights with the
/// largest-remainder method, so the parts always sum exactly to the whole.
/// </summary>
/// <remarks>
/// Each part first gets the floor of its exact share <c>total × weight / Σweights</c>; the units left over
/// (fewer than the number of parts) go one each to the parts with the largest remainders, ties to the lower
/// index (stable). A negative total is allocated as its magnitude and every part negated, so negative amounts
/// mirror positive ones. A zero weight always gets zero.
/// </remarks>
internal static class Allocation
{
    private const int StackLimit = 64;

    public static void Allocate(long total, ReadOnlySpan<long> weights, Span<long> parts)
    {
        if (weights.IsEmpty)
        {
            throw new ArgumentException("At least one weight is required.", nameof(weights));
        }

        if (parts.Length != weights.Length)
        {
            throw new ArgumentException($"The destination has {parts.Length} slots but there are {weights.Length} weights.", nameof(parts));
        }

        ulong weightSum = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            var w = weights[i];
            if (w < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(weights), w, $"Weight {i} is negative; weights must be zero or positive.");
            }

            weightSum = checked(weightSum + (ulong)w);
        }

        if (weightSum == 0)
        {
            throw new ArgumentException("At least one weight must be positive.", nameof(weights));
        }

        var negative = total < 0;
        var magnitude = Rounding.Magnitude(total);

        long[]? rented = null;
        var remainders = weights.Length <= StackLimit
            ? stackalloc ulong[StackLimit].Slice(0, weights.Length)
            : Rent(weights.Length, out rented);
        try
        {
            ulong distributed = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                // share ≤ magnitude (weight ≤ weightSum), so it always fits.
                var (share, remainder) = Rounding.MultiplyDivRem(magnitude, (ulong)weights[i], weightSum);
                remainders[i] = remainder;
                distributed += share;
                parts[i] = unchecked((long)share);
            }

            // Fewer than weights.Length units are left; each goes to a distinct part.
            var leftOver = magnitude - distributed;
            if (leftOver <= 8 || remainders.Length <= StackLimit)
            {
                GiveLeftOverBySelection(remainders, parts, leftOver);
            }
            else
            {
                GiveLeftOverBySorting(remainders, parts, (int)leftOver);
            }

            for (var i = 0; i < parts.Length; i++)
            {
                parts[i] = Rounding.Signed(unchecked((ulong)parts[i]), negative);
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<long>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Splits into equal parts: the same result as <see cref="Allocate"/> with equal weights, computed directly.</summary>
    public static void AllocateEvenly(long total, Span<long> parts)
    {
        if (parts.IsEmpty)
        {
            throw new ArgumentException("At least one part is required.", nameof(parts));
        }

        var negative = total < 0;
        var magnitude = Rounding.Magnitude(total);
        var (share, leftOver) = Math.DivRem(magnitude, (ulong)parts.Length);
        for (var i = 0; i < parts.Length; i++)
        {
            // Equal remainders everywhere: the stable tie-break gives the extra units to the first parts.
            parts[i] = Rounding.Signed((ulong)i < leftOver ? share + 1 : share, negative);
        }
    }

    private static void GiveLeftOverBySelection(Span<ulong> remainders, Span<long> parts, ulong leftOver)
    {
        for (ulong k = 0; k < leftOver; k++)
        {
            var best = -1;
            ulong bestRemainder = 0;
            for (var i = 0; i < remainders.Length; i++)
            {
                // Strictly greater keeps the lowest index among equal remainders (stable tie-break).
                if (remainders[i] > bestRemainder)
                {
                    best = i;
                    bestRemainder = remainders[i];
                }
            }

            remainders[best] = 0;
            parts[best] = unchecked(parts[best] + 1);
        }
    }

    private static void GiveLeftOverBySorting(Span<ulong> remainders, Span<long> parts, int leftOver)
    {
        var keys = remainders.ToArray();
        var order = new int[keys.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        // Largest remainder first; equal remainders keep index order (stable tie-break).
        Array.Sort(order, (x, y) => keys[x] != keys[y] ? keys[y].CompareTo(keys[x]) : x.CompareTo(y));
        for (var k = 0; k < leftOver; k++)
        {
            parts[order[k]] = unchecked(parts[order[k]] + 1);
        }
    }

    private static Span<ulong> Rent(int length, out long[] rented)
    {
        rented = ArrayPool<long>.Shared.Rent(length);
        var span = System.Runtime.InteropServices.MemoryMarshal.Cast<long, ulong>(rented.AsSpan(0, length));
        span.Clear();
        return span;
    }
}
