using System.Globalization;

namespace Billing.Tests;


public sealed class MoneyTests
{
    private static Money Usd(long minor) => new(minor, Currency.USD);

    [Fact]
    public void Adds_subtracts_negates_and_multiplies_in_minor_units()
    {
        Assert.Equal(Usd(1500), Usd(1000) + Usd(500));
        Assert.Equal(Usd(500), Usd(1000) - Usd(500));
        Assert.Equal(Usd(-1000), -Usd(1000));
        Assert.Equal(Usd(3000), Usd(1000) * 3);
        Assert.Equal(Usd(3000), 3 * Usd(1000));
        Assert.Equal(Usd(1500), Usd(1000).Add(Usd(500)));
        Assert.Equal(Usd(500), Usd(1000).Subtract(Usd(500)));
        Assert.Equal(Usd(-7), Usd(7).Negate());
        Assert.Equal(Usd(7), Usd(-7).Abs());
        Assert.Equal(Usd(21), Usd(7).Multiply(3));
    }

    [Fact]
    public void Overflow_throws_and_never_wraps()
    {
        Assert.Throws<OverflowException>(() => Usd(long.MaxValue) + Usd(1));
        Assert.Throws<OverflowException>(() => Usd(long.MinValue) - Usd(1));
        Assert.Throws<OverflowException>(() => -Usd(long.MinValue));
        Assert.Throws<OverflowException>(() => Usd(long.MinValue).Abs());
        Assert.Throws<OverflowException>(() => Usd(long.MaxValue / 2 + 1) * 2);
        Assert.Throws<OverflowException>(() => Usd(long.MaxValue).MultiplyFraction(3, 2));
    }

    [Fact]
    public void Mixing_currencies_throws_an_exception_naming_both_codes()
    {
        var eur = new Money(100, Currency.EUR);

        var error = Assert.Throws<CurrencyMismatchException>(() => Usd(100) + eur);
        Assert.Contains("USD", error.Message, StringComparison.Ordinal);
        Assert.Contains("EUR", error.Message, StringComparison.Ordinal);
        Assert.Same(Currency.USD, error.Expected);
        Assert.Same(Currency.EUR, error.Actual);
        Assert.Throws<CurrencyMismatchException>(() => Usd(100) - eur);
        Assert.Throws<CurrencyMismatchException>(() => Usd(100) < eur);
        Assert.Throws<CurrencyMismatchException>(() => Usd(100).CompareTo(eur));
    }

    [Fact]
    public void Equality_never_throws_and_different_currencies_are_not_equal()
    {
        Assert.True(Usd(100) == new Money(100, Currency.FromCode("usd")));
        Assert.False(Usd(100) == new Money(100, Currency.EUR));
        Assert.True(Usd(100) != new Money(100, Currency.EUR));
        Assert.False(Usd(100).Equals((object)"100 USD"));
        Assert.Equal(Usd(5).GetHashCode(), Usd(5).GetHashCode());
    }

    [Fact]
    public void Compares_within_a_currency()
    {
        Assert.True(Usd(1) < Usd(2));
        Assert.True(Usd(2) > Usd(1));
        Assert.True(Usd(2) >= Usd(2));
        Assert.True(Usd(-5) <= Usd(2));
        Assert.Equal(new[] { Usd(-3), Usd(0), Usd(7) }, new[] { Usd(7), Usd(-3), Usd(0) }.Order());
    }

    [Fact]
    public void Default_money_has_no_currency_and_every_operation_says_so()
    {
        var none = default(Money);

        Assert.Throws<InvalidOperationException>(() => none.Currency);
        Assert.Throws<InvalidOperationException>(() => none + Usd(1));
        Assert.Throws<InvalidOperationException>(() => none + none);
        Assert.Throws<InvalidOperationException>(() => -none);
        Assert.Throws<InvalidOperationException>(() => none.Split(2));
        Assert.Equal("(no currency)", none.ToString());
    }

    [Fact]
    public void Null_currency_is_rejected()
    {
        Assert.Throws<ArgumentNullException>(() => new Money(1, null!));
    }

    [Theory]
    [InlineData("12.34", "USD", 1234)]
    [InlineData("12.340", "USD", 1234)]
    [InlineData("-0.01", "USD", -1)]
    [InlineData("1000", "JPY", 1000)]
    [InlineData("1.234", "KWD", 1234)]
    [InlineData("0.0001", "CLF", 1)]
    public void Exact_decimal_major_units_convert_without_rounding(string amount, string code, long minor)
    {
        var money = Money.FromMajorUnits(decimal.Parse(amount, CultureInfo.InvariantCulture), Currency.FromCode(code));

        Assert.Equal(minor, money.MinorUnits);
        Assert.Equal(decimal.Parse(amount, CultureInfo.InvariantCulture), money.ToMajorUnits());
    }

    [Theory]
    [InlineData("12.345", "USD")]
    [InlineData("1.5", "JPY")]
    [InlineData("0.0005", "KWD")]
    public void Too_precise_decimals_are_an_error_unless_rounding_is_asked_for(string amount, string code)
    {
        var value = decimal.Parse(amount, CultureInfo.InvariantCulture);
        var currency = Currency.FromCode(code);

        var error = Assert.Throws<ArgumentException>(() => Money.FromMajorUnits(value, currency));
        Assert.Contains(code, error.Message, StringComparison.Ordinal);
        Assert.Contains("MidpointRounding", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("12.345", MidpointRounding.ToEven, 1234)]
    [InlineData("12.355", MidpointRounding.ToEven, 1236)]
    [InlineData("12.345", MidpointRounding.AwayFromZero, 1235)]
    [InlineData("-12.345", MidpointRounding.AwayFromZero, -1235)]
    [InlineData("12.349", MidpointRounding.ToZero, 1234)]
    [InlineData("12.341", MidpointRounding.ToPositiveInfinity, 1235)]
    public void Rounding_conversion_uses_the_explicit_midpoint_mode(string amount, MidpointRounding mode, long minor)
    {
        var money = Money.FromMajorUnits(decimal.Parse(amount, CultureInfo.InvariantCulture), Currency.USD, mode);

        Assert.Equal(minor, money.MinorUnits);
    }

    [Fact]
    public void Decimal_conversion_overflow_throws()
    {
        Assert.Throws<OverflowException>(() => Money.FromMajorUnits(100_000_000_000_000_000m, Currency.USD));
        Assert.Equal(long.MinValue / 100m, new Money(long.MinValue, Currency.USD).ToMajorUnits());
    }

    [Theory]
    [InlineData(1234, "USD", "12.34 USD")]
    [InlineData(-1250, "USD", "-12.50 USD")]
    [InlineData(5, "USD", "0.05 USD")]
    [InlineData(-5, "USD", "-0.05 USD")]
    [InlineData(1000, "JPY", "1000 JPY")]
    [InlineData(1234, "KWD", "1.234 KWD")]
    [InlineData(long.MinValue, "USD", "-92233720368547758.08 USD")]
    [InlineData(long.MaxValue, "JPY", "9223372036854775807 JPY")]
    public void Formats_culture_invariantly(long minor, string code, string text)
    {
        var money = new Money(minor, Currency.FromCode(code));
        var previous = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
            Assert.Equal(text, money.ToString());
            Assert.Equal(text, money.ToString(null, CultureInfo.GetCultureInfo("fr-FR")));
            Assert.Equal(text, $"{money}");
            Assert.Equal(money, Money.Parse(text));
        }
        finally
        {
            CultureInfo.CurrentCulture = previous;
        }
    }

    [Theory]
    [InlineData("12.5 EUR", 1250)]
    [InlineData("12 EUR", 1200)]
    [InlineData("-0 EUR", 0)]
    [InlineData("12.34 eur", 1234)]
    public void Parses_the_invariant_form(string text, long minor)
    {
        Assert.Equal(new Money(minor, Currency.EUR), Money.Parse(text));
    }

    [Theory]
    [InlineData("12,34 USD")]
    [InlineData("12.345 USD")]
    [InlineData("1.5 JPY")]
    [InlineData("12.34")]
    [InlineData("12.34 XYZ")]
    [InlineData("12.34  USD")]
    [InlineData(" 12.34 USD")]
    [InlineData("+12.34 USD")]
    [InlineData("12. USD")]
    [InlineData(".5 USD")]
    [InlineData("1,000.00 USD")]
    [InlineData("92233720368547758.08 USD")]
    [InlineData("99999999999999999999 JPY")]
    [InlineData("")]
    public void Rejects_anything_else_with_a_format_error(string text)
    {
        Assert.False(Money.TryParse(text, out _));
        var error = Assert.Throws<FormatException>(() => Money.Parse(text));
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void MultiplyFraction_rounds_once_with_the_given_mode()
    {
        // 12.5 % of 19.99 = 249.875 cents
        Assert.Equal(Usd(250), Usd(1999).MultiplyFraction(125, 1000));
        Assert.Equal(Usd(250), Usd(1999).MultiplyFraction(125, 1000, RoundingMode.HalfUp));
        Assert.Equal(Usd(250), Usd(1999).MultiplyFraction(125, 1000, RoundingMode.Up));
        Assert.Equal(Usd(249), Usd(1999).MultiplyFraction(125, 1000, RoundingMode.Down));
        // exact halves: 2.5 → 2 (even) or 3 (half up); 3.5 → 4 either way
        Assert.Equal(Usd(2), Usd(5).MultiplyFraction(1, 2, RoundingMode.HalfEven));
        Assert.Equal(Usd(3), Usd(5).MultiplyFraction(1, 2, RoundingMode.HalfUp));
        Assert.Equal(Usd(4), Usd(7).MultiplyFraction(1, 2, RoundingMode.HalfEven));
        Assert.Equal(Usd(-3), Usd(-5).MultiplyFraction(1, 2, RoundingMode.HalfUp));
        Assert.Equal(Usd(-2), Usd(-5).MultiplyFraction(1, 2, RoundingMode.HalfEven));
        // the 128-bit product does not overflow
        Assert.Equal(Usd(long.MaxValue), Usd(long.MaxValue).MultiplyFraction(long.MaxValue, long.MaxValue));
        Assert.Throws<DivideByZeroException>(() => Usd(1).MultiplyFraction(1, 0));
    }

    [Fact]
    public void Split_into_equal_parts_gives_the_extra_units_to_the_first_parts()
    {
        Assert.Equal([Usd(334), Usd(333), Usd(333)], Usd(1000).Split(3));
        Assert.Equal([Usd(-334), Usd(-333), Usd(-333)], Usd(-1000).Split(3));
        Assert.Equal([Usd(0), Usd(0)], Usd(0).Split(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Usd(1).Split(0));
    }

    [Fact]
    public void Allocate_by_weights_uses_largest_remainders()
    {
        // 100 by 1:1:1 → 33.33.. each; one unit left goes to index 0 (ties → lowest index)
        Assert.Equal([Usd(34), Usd(33), Usd(33)], Usd(100).Allocate([1, 1, 1]));
        // 5 cents by 30:70 → 1.5 and 3.5: equal remainders, the lower index gets the unit
        Assert.Equal([Usd(2), Usd(3)], Usd(5).Allocate([30, 70]));
        // 1000 by 1:2:0:7 → 100, 200, 0, 700 exactly
        Assert.Equal([Usd(100), Usd(200), Usd(0), Usd(700)], Usd(1000).Allocate([1, 2, 0, 7]));
        // 10 by 3:3:3 → remainders 1,1,1 of 9; one unit left, to index 0
        Assert.Equal([Usd(4), Usd(3), Usd(3)], Usd(10).Allocate([3, 3, 3]));
        // largest remainder wins over a lower index: 10 by 1:4 → 2 and 8 exactly; 7 by 1:4 → 1.4, 5.6 → 1, 6
        Assert.Equal([Usd(1), Usd(6)], Usd(7).Allocate([1, 4]));
    }

    [Fact]
    public void Allocate_rejects_bad_weights()
    {
        Assert.Throws<ArgumentException>(() => Usd(10).Allocate([]));
        Assert.Throws<ArgumentException>(() => Usd(10).Allocate([0, 0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Usd(10).Allocate([1, -1]));
        Assert.Throws<OverflowException>(() => Usd(10).Allocate([long.MaxValue, long.MaxValue, 2]));
        Assert.Throws<ArgumentException>(() => Usd(10).Allocate([1, 2], new Money[3]));
    }

    [Fact]
    public void Allocate_handles_many_parts_and_large_left_overs()
    {
        var weights = Enumerable.Repeat(1L, 1000).ToArray();
        var parts = Usd(999_999).Allocate(weights);

        Assert.Equal(999_999, parts.Sum(p => p.MinorUnits));
        Assert.All(parts.Take(999), p => Assert.Equal(1000, p.MinorUnits));
        Assert.Equal(999, parts[999].MinorUnits);
    }
}
