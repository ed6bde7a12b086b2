using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Billing;

public readonly partial struct Money : ISpanFormattable
{
    /// <summary>
    /// Creates an amount from a decimal number of major units (12.34 USD), which must be exact in the currency.
    /// </summary>
    /// <param name="amount">The amount in major units.</param>
    /// <param name="currency">The currency.</param>
    /// <returns>The amount in minor units.</returns>
    /// <remarks>
    /// Nothing is rounded: 12.345 USD is an error because USD has two digits. To round, call
    /// <see cref="FromMajorUnits(decimal, Currency, MidpointRounding)"/> with an explicit mode. Trailing zeros
    /// are fine (12.340 USD is 1234 minor units).
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="amount"/> has more decimal places than the currency allows.</exception>
    /// <exception cref="OverflowException">The amount does not fit in 64-bit minor units.</exception>
    public static Money FromMajorUnits(decimal amount, Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        var scaled = amount * currency.MinorUnitsPerMajorUnit;
        if (scaled != decimal.Truncate(scaled))
        {
            throw new ArgumentException(
                $"{amount.ToString(CultureInfo.InvariantCulture)} has more decimal places than {currency.Code} allows ({currency.MinorUnitDigits}); pass a MidpointRounding to round it.",
                nameof(amount));
        }

        return new Money(decimal.ToInt64(scaled), currency, trusted: true);
    }

    /// <summary>
    /// Creates an amount from a decimal number of major units, rounding to the currency's minor unit with the
    /// given mode.
    /// </summary>
    /// <param name="amount">The amount in major units.</param>
    /// <param name="currency">The currency.</param>
    /// <param name="rounding">How to round digits beyond the minor unit (for example <see cref="MidpointRounding.ToEven"/>).</param>
    /// <returns>The rounded amount.</returns>
    /// <remarks>This is an edge conversion (input from people or other systems); inside the domain amounts stay in minor units.</remarks>
    /// <exception cref="OverflowException">The amount does not fit in 64-bit minor units.</exception>
    public static Money FromMajorUnits(decimal amount, Currency currency, MidpointRounding rounding)
    {
        ArgumentNullException.ThrowIfNull(currency);
        var rounded = decimal.Round(amount, currency.MinorUnitDigits, rounding);
        return new Money(decimal.ToInt64(rounded * currency.MinorUnitsPerMajorUnit), currency, trusted: true);
    }

    /// <summary>Returns the amount in major units as an exact decimal (1234 USD minor units → 12.34).</summary>
    /// <returns>The exact decimal value; every 64-bit amount is representable.</returns>
    public decimal ToMajorUnits()
    {
        var currency = RequireCurrency();
        return (decimal)_minorUnits / currency.MinorUnitsPerMajorUnit;
    }

    /// <summary>Formats the amount culture-invariantly as major units and code: <c>-12.50 USD</c>, <c>1000 JPY</c>, <c>1.234 KWD</c>.</summary>
    /// <returns>The text form; <see cref="Parse"/> reads it back.</returns>
    public override string ToString()
    {
        if (_currency is null)
        {
            return "(no currency)";
        }

        Span<char> buffer = stackalloc char[48];
        TryFormat(buffer, out var written, default, null);
        return new string(buffer[..written]);
    }

    /// <summary>Formats the amount culture-invariantly; the format and provider are ignored.</summary>
    /// <param name="format">Ignored.</param>
    /// <param name="formatProvider">Ignored: the text is always culture-invariant.</param>
    /// <returns>The same text as <see cref="ToString()"/>.</returns>
    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    /// <summary>Formats the amount culture-invariantly into a span, without allocating.</summary>
    /// <param name="destination">The buffer.</param>
    /// <param name="charsWritten">How many characters were written.</param>
    /// <param name="format">Ignored.</param>
    /// <param name="provider">Ignored: the text is always culture-invariant.</param>
    /// <returns><see langword="false"/> when the buffer is too small.</returns>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        var currency = RequireCurrency();
        charsWritten = 0;
        var magnitude = Rounding.Magnitude(_minorUnits);
        var factor = (ulong)currency.MinorUnitsPerMajorUnit;
        var (major, minor) = Math.DivRem(magnitude, factor);
        var pos = 0;
        if (_minorUnits < 0)
        {
            if (destination.Length < 1)
            {
                return false;
            }

            destination[pos++] = '-';
        }

        if (!major.TryFormat(destination[pos..], out var n, default, CultureInfo.InvariantCulture))
        {
            return false;
        }

        pos += n;
        if (currency.MinorUnitDigits > 0)
        {
            if (destination.Length - pos < 1 + currency.MinorUnitDigits)
            {
                return false;
            }

            destination[pos++] = '.';
            for (var i = currency.MinorUnitDigits - 1; i >= 0; i--)
            {
                destination[pos + i] = (char)('0' + (int)(minor % 10));
                minor /= 10;
            }

            pos += currency.MinorUnitDigits;
        }

        if (destination.Length - pos < 4)
        {
            return false;
        }

        destination[pos++] = ' ';
        currency.Code.AsSpan().CopyTo(destination[pos..]);
        charsWritten = pos + 3;
        return true;
    }

    /// <summary>Parses the invariant text form written by <see cref="ToString()"/>: <c>12.34 USD</c>, <c>-5 JPY</c>, <c>12.5 EUR</c>.</summary>
    /// <param name="text">An optional minus sign, digits, an optional <c>.</c> with at most as many digits as the
    /// currency allows, one space, and an ISO 4217 code.</param>
    /// <returns>The amount.</returns>
    /// <remarks>No culture is consulted: the decimal separator is always <c>.</c> and there are no group separators.</remarks>
    /// <exception cref="FormatException">The text is not in that form, has too many decimals, names an unknown currency or overflows.</exception>
    public static Money Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var result, out var error) ? result : throw new FormatException(error);
    }

    /// <summary>Parses the invariant text form without throwing.</summary>
    /// <param name="text">The text, as for <see cref="Parse"/>.</param>
    /// <param name="result">The amount when parsing succeeded.</param>
    /// <returns><see langword="true"/> when <paramref name="text"/> is a valid amount.</returns>
    public static bool TryParse([NotNullWhen(true)] string? text, out Money result) => TryParse(text, out result, out _);

    private static bool TryParse(string? text, out Money result, out string error)
    {
        result = default;
        if (text is null)
        {
            error = "The text is null.";
            return false;
        }

        var space = text.IndexOf(' ', StringComparison.Ordinal);
        if (space < 0 || !Currency.TryFromCode(text[(space + 1)..], out var currency))
        {
            error = $"'{Shorten(text)}' is not an amount followed by one space and an ISO 4217 currency code (for example '12.34 USD').";
            return false;
        }

        var number = text.AsSpan(0, space);
        var negative = number.StartsWith("-");
        if (negative)
        {
            number = number[1..];
        }

        var dot = number.IndexOf('.');
        var wholeDigits = dot < 0 ? number : number[..dot];
        var fraction = dot < 0 ? [] : number[(dot + 1)..];
        if (wholeDigits.IsEmpty || !IsDigits(wholeDigits) || !IsDigits(fraction) || (dot >= 0 && fraction.IsEmpty))
        {
            error = $"'{Shorten(text)}' is not a plain decimal amount (digits, optionally '-' first and one '.').";
            return false;
        }

        if (fraction.Length > currency.MinorUnitDigits)
        {
            error = $"'{Shorten(text)}' has {fraction.Length} decimal places but {currency.Code} allows {currency.MinorUnitDigits}.";
            return false;
        }

        ulong magnitude = 0;
        foreach (var c in wholeDigits)
        {
            if (!TryAppendDigit(ref magnitude, c))
            {
                error = $"'{Shorten(text)}' is too large for a 64-bit amount.";
                return false;
            }
        }

        for (var i = 0; i < currency.MinorUnitDigits; i++)
        {
            if (!TryAppendDigit(ref magnitude, i < fraction.Length ? fraction[i] : '0'))
            {
                error = $"'{Shorten(text)}' is too large for a 64-bit amount.";
                return false;
            }
        }

        if (magnitude > (negative ? (ulong)long.MaxValue + 1 : long.MaxValue))
        {
            error = $"'{Shorten(text)}' is too large for a 64-bit amount.";
            return false;
        }

        result = new Money(Rounding.Signed(magnitude, negative), currency, trusted: true);
        error = string.Empty;
        return true;
    }

    private static bool TryAppendDigit(ref ulong value, char digit)
    {
        var d = (ulong)(digit - '0');
        if (value > (ulong.MaxValue - d) / 10)
        {
            return false;
        }

        value = (value * 10) + d;
        return true;
    }

    private static bool IsDigits(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return true;
    }

    private static string Shorten(string text) => text.Length <= 64 ? text : string.Concat(text.AsSpan(0, 61), "...");
}
