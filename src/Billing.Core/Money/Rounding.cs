namespace Billing;

/// <summary>
/// The one place where a fraction of minor units is rounded: <c>round(value × numerator / denominator)</c>
/// in exact integer arithmetic with an explicit <see cref="RoundingMode"/>.
/// </summary>
internal static class Rounding
{
    /// <summary>Computes <c>round(value × numerator / denominator)</c> exactly; throws on overflow of the result.</summary>
    public static long MultiplyDivide(long value, long numerator, long denominator, RoundingMode mode)
    {
        if (denominator == 0)
        {
            throw new DivideByZeroException("The denominator of a rounded division cannot be zero.");
        }

        var negative = (value < 0) ^ (numerator < 0) ^ (denominator < 0);
        var a = Magnitude(value);
        var b = Magnitude(numerator);
        var d = Magnitude(denominator);

        var (quotient, remainder) = MultiplyDivRem(a, b, d);
        quotient = RoundQuotient(quotient, remainder, d, mode);
        return Signed(quotient, negative);
    }

    /// <summary>
    /// <c>a × b / divisor</c> and its remainder, with the product in 128 bits: exact whenever the quotient fits in
    /// 64 bits; throws otherwise.
    /// </summary>
    internal static (ulong Quotient, ulong Remainder) MultiplyDivRem(ulong a, ulong b, ulong divisor)
    {
        var high = Math.BigMul(a, b, out var low);
        if (high == 0)
        {
            return Math.DivRem(low, divisor);
        }

        var product = new UInt128(high, low);
        var quotient = product / divisor;
        if (quotient > ulong.MaxValue)
        {
            throw new OverflowException("The rounded result does not fit in 64 bits.");
        }

        return ((ulong)quotient, (ulong)(product - (quotient * divisor)));
    }

    /// <summary>Rounds <c>quotient + remainder / divisor</c> (all magnitudes) to a whole number.</summary>
    internal static ulong RoundQuotient(ulong quotient, ulong remainder, ulong divisor, RoundingMode mode)
    {
        if (remainder == 0)
        {
            return quotient;
        }

        // Compare remainder with divisor - remainder instead of 2 × remainder with divisor: no overflow.
        var rest = divisor - remainder;
        var roundAway = mode switch
        {
            RoundingMode.HalfEven => remainder > rest || (remainder == rest && (quotient & 1) == 1),
            RoundingMode.HalfUp => remainder >= rest,
            RoundingMode.Up => true,
            RoundingMode.Down => false,
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown rounding mode."),
        };
        return roundAway ? checked(quotient + 1) : quotient;
    }

    internal static ulong Magnitude(long value) => value < 0 ? unchecked((ulong)(-(value + 1))) + 1 : (ulong)value;

    internal static long Signed(ulong magnitude, bool negative)
    {
        if (!negative)
        {
            return magnitude <= long.MaxValue ? (long)magnitude : throw new OverflowException("The result does not fit in a 64-bit amount.");
        }

        return magnitude <= (ulong)long.MaxValue + 1
            ? unchecked((long)(0UL - magnitude))
            : throw new OverflowException("The result does not fit in a 64-bit amount.");
    }
}
