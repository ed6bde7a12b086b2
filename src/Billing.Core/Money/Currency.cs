using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace Billing;

/// <summary>
/// An ISO 4217 currency: its three-letter alphabetic code and the number of digits of its minor unit
/// (its exponent: 2 for USD and EUR, 0 for JPY and KRW, 3 for KWD and BHD, 4 for CLF and UYW).
/// </summary>
/// <remarks>
/// <para>Every currency is a singleton: two <see cref="Currency"/> references for the same code are the
/// same object, so equality is a reference comparison. Obtain one with <see cref="FromCode"/> or
/// <see cref="TryFromCode"/>, or one of the well-known static properties such as <see cref="USD"/>.</para>
/// <para>The table holds every currency in current ISO 4217 use that has a minor unit, plus the funds codes
/// that payment providers accept (for example CLF, COU, UYI), and the recently withdrawn ANG and BGN so that
/// existing ledgers still load. Precious-metal and testing codes (XAU, XTS, XXX...) have no minor unit and are
/// not currencies for billing purposes.</para>
/// </remarks>
public sealed partial class Currency : IEquatable<Currency>
{
    private static readonly FrozenDictionary<string, Currency> ByCode = CreateTable()
        .ToFrozenDictionary(c => c.Code, StringComparer.OrdinalIgnoreCase);

    private static readonly Currency[] Sorted = [.. ByCode.Values.OrderBy(c => c.Code, StringComparer.Ordinal)];

    private Currency(string code, int minorUnitDigits)
    {
        Code = code;
        MinorUnitDigits = minorUnitDigits;
        MinorUnitsPerMajorUnit = Pow10(minorUnitDigits);
    }

    /// <summary>The ISO 4217 alphabetic code, upper case (for example <c>USD</c>).</summary>
    public string Code { get; }

    /// <summary>
    /// The number of decimal digits of the minor unit (the ISO 4217 exponent): 2 for USD, 0 for JPY, 3 for KWD.
    /// </summary>
    public int MinorUnitDigits { get; }

    /// <summary>How many minor units make one major unit: 10 to the power <see cref="MinorUnitDigits"/>.</summary>
    public long MinorUnitsPerMajorUnit { get; }

    /// <summary>Every currency this library knows, ordered by code.</summary>
    public static IReadOnlyList<Currency> All => Sorted;

    /// <summary>United States dollar (2 digits).</summary>
    public static Currency USD { get; } = FromCode("USD");

    /// <summary>Euro (2 digits).</summary>
    public static Currency EUR { get; } = FromCode("EUR");

    /// <summary>Pound sterling (2 digits).</summary>
    public static Currency GBP { get; } = FromCode("GBP");

    /// <summary>Japanese yen (0 digits).</summary>
    public static Currency JPY { get; } = FromCode("JPY");

    /// <summary>Kuwaiti dinar (3 digits).</summary>
    public static Currency KWD { get; } = FromCode("KWD");

    /// <summary>Returns the currency with the given ISO 4217 alphabetic code.</summary>
    /// <param name="code">A three-letter code; ASCII case is ignored (<c>usd</c> and <c>USD</c> are the same).</param>
    /// <returns>The singleton <see cref="Currency"/> for that code.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="code"/> is null.</exception>
    /// <exception cref="UnknownCurrencyException">The code is not a known ISO 4217 currency.</exception>
    public static Currency FromCode(string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        return TryFromCode(code, out var currency) ? currency : throw new UnknownCurrencyException(code);
    }

    /// <summary>Looks up a currency by its ISO 4217 alphabetic code without throwing.</summary>
    /// <param name="code">A three-letter code; ASCII case is ignored.</param>
    /// <param name="currency">The currency when found; otherwise null.</param>
    /// <returns><see langword="true"/> when <paramref name="code"/> is a known currency.</returns>
    public static bool TryFromCode([NotNullWhen(true)] string? code, [NotNullWhen(true)] out Currency? currency)
    {
        if (code is { Length: 3 })
        {
            return ByCode.TryGetValue(code, out currency);
        }

        currency = null;
        return false;
    }

    /// <inheritdoc />
    public bool Equals(Currency? other) => ReferenceEquals(this, other);

    /// <inheritdoc />
    public override bool Equals(object? obj) => ReferenceEquals(this, obj);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Code);

    /// <summary>Returns the ISO 4217 code.</summary>
    /// <returns>The code, for example <c>USD</c>.</returns>
    public override string ToString() => Code;

    private static long Pow10(int digits)
    {
        long result = 1;
        for (var i = 0; i < digits; i++)
        {
            result *= 10;
        }

        return result;
    }
}
