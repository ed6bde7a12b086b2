namespace Billing.Tests;

public sealed class CurrencyTests
{
    [Theory]
    [InlineData("USD", 2)]
    [InlineData("EUR", 2)]
    [InlineData("GBP", 2)]
    [InlineData("JPY", 0)]
    [InlineData("KRW", 0)]
    [InlineData("VND", 0)]
    [InlineData("CLP", 0)]
    [InlineData("ISK", 0)]
    [InlineData("PYG", 0)]
    [InlineData("UGX", 0)]
    [InlineData("XAF", 0)]
    [InlineData("BHD", 3)]
    [InlineData("IQD", 3)]
    [InlineData("JOD", 3)]
    [InlineData("KWD", 3)]
    [InlineData("LYD", 3)]
    [InlineData("OMR", 3)]
    [InlineData("TND", 3)]
    [InlineData("CLF", 4)]
    [InlineData("UYW", 4)]
    public void Known_codes_have_their_ISO_4217_exponent(string code, int digits)
    {
        var currency = Currency.FromCode(code);

        Assert.Equal(code, currency.Code);
        Assert.Equal(digits, currency.MinorUnitDigits);
        Assert.Equal((long)Math.Pow(10, digits), currency.MinorUnitsPerMajorUnit);
    }

    [Theory]
    [InlineData("usd")]
    [InlineData("Usd")]
    public void Lookup_ignores_ASCII_case_and_returns_the_singleton(string code)
    {
        Assert.Same(Currency.USD, Currency.FromCode(code));
        Assert.Equal("USD", Currency.FromCode(code).Code);
    }

    [Theory]
    [InlineData("XYZ")]
    [InlineData("US")]
    [InlineData("USDX")]
    [InlineData("")]
    [InlineData("XAU")]
    [InlineData("HRK")]
    public void Unknown_codes_are_a_clear_error_naming_the_code(string code)
    {
        var error = Assert.Throws<UnknownCurrencyException>(() => Currency.FromCode(code));

        Assert.Equal(code, error.Code);
        Assert.Contains($"'{code}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("ISO 4217", error.Message, StringComparison.Ordinal);
        Assert.False(Currency.TryFromCode(code, out var none));
        Assert.Null(none);
    }

    [Fact]
    public void Null_code_is_rejected()
    {
        Assert.Throws<ArgumentNullException>(() => Currency.FromCode(null!));
        Assert.False(Currency.TryFromCode(null, out _));
    }

    [Fact]
    public void The_table_is_complete_sorted_and_well_formed()
    {
        var all = Currency.All;

        Assert.True(all.Count >= 150, $"only {all.Count} currencies");
        Assert.Equal(all.Select(c => c.Code).Order(StringComparer.Ordinal), all.Select(c => c.Code));
        Assert.Equal(all.Count, all.Select(c => c.Code).Distinct().Count());
        Assert.All(all, c =>
        {
            Assert.Matches("^[A-Z]{3}$", c.Code);
            Assert.InRange(c.MinorUnitDigits, 0, 4);
            Assert.Same(c, Currency.FromCode(c.Code));
            Assert.Equal(c.Code, c.ToString());
        });
    }

    [Fact]
    public void Equality_is_by_identity_of_the_singleton()
    {
        Assert.Equal(Currency.FromCode("EUR"), Currency.EUR);
        Assert.NotEqual(Currency.USD, Currency.EUR);
        Assert.Equal(Currency.USD.GetHashCode(), Currency.FromCode("usd").GetHashCode());
    }
}
