using System.Numerics;
using Billing.Tests.Support;
using FsCheck.Fluent;

namespace Billing.Tests;


public sealed class MoneyPropertyTests
{
    private static readonly FsCheck.Gen<long[]> Weights =
        from count in Gen.Choose(1, 24)
        from weights in Gen.ArrayOf(Gen.Frequency(
            (1, Gen.Constant(0L)),
            (6, Gens.Long(1, 1_000)),
            (2, Gens.Long(1, long.MaxValue / 64))), count)
        where weights.Any(w => w > 0)
        select weights;

    [Fact]
    public void Addition_is_exact_or_throws_never_wraps()
    {
        Props.ForAll(
            from a in Gens.AnyLong()
            from b in Gens.AnyLong()
            select (a, b),
            t =>
            {
                var exact = (BigInteger)t.a + t.b;
                var fits = exact >= long.MinValue && exact <= long.MaxValue;
                var usd = Currency.USD;
                if (fits)
                {
                    Assert.Equal((long)exact, (new Money(t.a, usd) + new Money(t.b, usd)).MinorUnits);
                    Assert.Equal(new Money(t.a, usd), new Money((long)exact, usd) - new Money(t.b, usd));
                }
                else
                {
                    Assert.Throws<OverflowException>(() => new Money(t.a, usd) + new Money(t.b, usd));
                }
            },
            Props.Many);
    }

    [Fact]
    public void Multiplication_is_exact_or_throws_never_wraps()
    {
        Props.ForAll(
            from a in Gens.AnyLong()
            from q in Gens.AnyLong()
            select (a, q),
            t =>
            {
                var exact = (BigInteger)t.a * t.q;
                var money = new Money(t.a, Currency.EUR);
                if (exact >= long.MinValue && exact <= long.MaxValue)
                {
                    Assert.Equal((long)exact, (money * t.q).MinorUnits);
                }
                else
                {
                    Assert.Throws<OverflowException>(() => money * t.q);
                }
            },
            Props.Many);
    }

    [Fact]
    public void Comparison_agrees_with_the_minor_units()
    {
        Props.ForAll(
            from a in Gens.AnyLong()
            from b in Gens.AnyLong()
            select (a, b),
            t =>
            {
                var x = new Money(t.a, Currency.JPY);
                var y = new Money(t.b, Currency.JPY);
                Assert.Equal(Math.Sign(t.a.CompareTo(t.b)), Math.Sign(x.CompareTo(y)));
                Assert.Equal(t.a < t.b, x < y);
                Assert.Equal(t.a == t.b, x == y);
            },
            Props.Many);
    }

    [Fact]
    public void MultiplyFraction_matches_exact_rational_rounding()
    {
        Props.ForAll(
            from value in Gens.AnyLong()
            from numerator in Gen.Frequency((3, Gens.Long(0, 10_000)), (1, Gens.AnyLong()))
            from denominator in Gen.Frequency((3, Gens.Long(1, 10_000)), (1, Gens.AnyLong()))
            where denominator != 0
            from mode in Gens.Rounding()
            select (value, numerator, denominator, mode),
            t =>
            {
                var expected = ReferenceRound((BigInteger)t.value * t.numerator, t.denominator, t.mode);
                var money = new Money(t.value, Currency.USD);
                if (expected >= long.MinValue && expected <= long.MaxValue)
                {
                    Assert.Equal((long)expected, money.MultiplyFraction(t.numerator, t.denominator, t.mode).MinorUnits);
                }
                else
                {
                    Assert.Throws<OverflowException>(() => money.MultiplyFraction(t.numerator, t.denominator, t.mode));
                }
            },
            Props.Many);
    }

    [Fact]
    public void Rounding_is_symmetric_around_zero()
    {
        Props.ForAll(
            from value in Gens.Long(-long.MaxValue, long.MaxValue)
            from numerator in Gens.Long(0, 100_000)
            from denominator in Gens.Long(1, 100_000)
            from mode in Gens.Rounding()
            select (value, numerator, denominator, mode),
            t =>
            {
                var money = new Money(t.value, Currency.USD);
                try
                {
                    var positive = money.MultiplyFraction(t.numerator, t.denominator, t.mode);
                    Assert.Equal(-positive, (-money).MultiplyFraction(t.numerator, t.denominator, t.mode));
                }
                catch (OverflowException)
                {
                    Assert.Throws<OverflowException>(() => (-money).MultiplyFraction(t.numerator, t.denominator, t.mode));
                }
            },
            Props.Many);
    }

    [Fact]
    public void Allocated_parts_sum_exactly_and_each_is_within_one_unit_of_its_share()
    {
        Props.ForAll(
            from total in Gens.AnyLong()
            from weights in Weights
            select (total, weights),
            t =>
            {
                var parts = new Money(t.total, Currency.USD).Allocate(t.weights);

                Assert.Equal(t.weights.Length, parts.Length);
                Assert.Equal((BigInteger)t.total, parts.Aggregate(BigInteger.Zero, (sum, p) => sum + p.MinorUnits));
                var weightSum = t.weights.Aggregate(BigInteger.Zero, (sum, w) => sum + w);
                for (var i = 0; i < parts.Length; i++)
                {
                    // |part - total × w / W| < 1  ⇔  |part × W - total × w| < W
                    var error = BigInteger.Abs((parts[i].MinorUnits * weightSum) - ((BigInteger)t.total * t.weights[i]));
                    Assert.True(error < weightSum, $"part {i} = {parts[i]} is a unit or more away from its share");
                    if (t.weights[i] == 0)
                    {
                        Assert.Equal(0, parts[i].MinorUnits);
                    }
                }
            },
            Props.Many);
    }

    [Fact]
    public void Allocating_a_negative_amount_mirrors_the_positive_one()
    {
        Props.ForAll(
            from total in Gens.Long(-long.MaxValue, long.MaxValue)
            from weights in Weights
            select (total, weights),
            t =>
            {
                var positive = new Money(t.total, Currency.KWD).Allocate(t.weights);
                var negative = new Money(-t.total, Currency.KWD).Allocate(t.weights);

                Assert.Equal(positive.Select(p => -p), negative);
            },
            Props.Many);
    }

    [Fact]
    public void Allocation_is_the_largest_remainder_method_with_a_stable_tie_break()
    {
        Props.ForAll(
            from total in Gens.Long(0, long.MaxValue)
            from weights in Weights
            select (total, weights),
            t => Assert.Equal(ReferenceAllocate(t.total, t.weights), new Money(t.total, Currency.USD).Allocate(t.weights).Select(p => p.MinorUnits)),
            Props.Many);
    }

    [Fact]
    public void Split_is_allocation_with_equal_weights()
    {
        Props.ForAll(
            from total in Gens.AnyLong()
            from count in Gen.Choose(1, 100)
            select (total, count),
            t =>
            {
                var money = new Money(t.total, Currency.USD);
                var split = money.Split(t.count);
                Assert.Equal(money.Allocate(Enumerable.Repeat(1L, t.count).ToArray()), split);
                Assert.True(split.Max(p => p.MinorUnits) - split.Min(p => p.MinorUnits) <= 1);
            },
            Props.Many);
    }

    [Fact]
    public void Formatting_and_parsing_round_trip_in_every_currency()
    {
        Props.ForAll(Gens.AnyMoney(), money => Assert.Equal(money, Money.Parse(money.ToString())), Props.Many);
    }

    [Fact]
    public void Decimal_major_units_round_trip_in_every_currency()
    {
        Props.ForAll(Gens.AnyMoney(), money =>
        {
            Assert.Equal(money, Money.FromMajorUnits(money.ToMajorUnits(), money.Currency));
            Assert.Equal(money, Money.FromMajorUnits(money.ToMajorUnits(), money.Currency, MidpointRounding.ToEven));
        },
        Props.Many);
    }

    private static BigInteger ReferenceRound(BigInteger dividend, BigInteger divisor, RoundingMode mode)
    {
        var sign = dividend.Sign * divisor.Sign;
        var a = BigInteger.Abs(dividend);
        var d = BigInteger.Abs(divisor);
        var q = BigInteger.DivRem(a, d, out var r);
        var twice = 2 * r;
        var up = mode switch
        {
            RoundingMode.Down => false,
            RoundingMode.Up => r > 0,
            RoundingMode.HalfUp => twice >= d && r > 0,
            RoundingMode.HalfEven => twice > d || (twice == d && !q.IsEven),
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        };
        return sign < 0 ? -(q + (up ? 1 : 0)) : q + (up ? 1 : 0);
    }

    private static long[] ReferenceAllocate(long total, long[] weights)
    {
        var sum = weights.Aggregate(BigInteger.Zero, (s, w) => s + w);
        var shares = weights.Select(w => BigInteger.DivRem((BigInteger)total * w, sum)).ToArray();
        var parts = shares.Select(s => (long)s.Quotient).ToArray();
        var left = (long)(total - shares.Aggregate(BigInteger.Zero, (s, x) => s + x.Quotient));
        var order = Enumerable.Range(0, weights.Length)
            .OrderByDescending(i => shares[i].Remainder)
            .ThenBy(i => i)
            .Take((int)left);
        foreach (var i in order)
        {
            parts[i]++;
        }

        return parts;
    }
}
