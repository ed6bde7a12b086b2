using System.Globalization;

namespace Billing.Invoices;

/// <summary>A tax rate in parts per million (19 % = 190,000; 8.875 % = 88,750), exclusive or inclusive.</summary>
/// <param name="Name">The rate's name on the invoice (for example <c>VAT</c>).</param>
/// <param name="PartsPerMillion">The rate, 0 to 1,000,000 (0 % to 100 %).</param>
/// <param name="Inclusive">Whether prices already include the tax (as in most of Europe for consumers).</param>
public sealed record TaxRate(string Name, long PartsPerMillion, bool Inclusive = false)
{
    /// <summary>The rate's name on the invoice.</summary>
    public string Name { get; init; } = !string.IsNullOrWhiteSpace(Name) ? Name : throw new ArgumentException("A tax rate needs a name.", nameof(Name));

    /// <summary>The rate in parts per million.</summary>
    public long PartsPerMillion { get; init; } = PartsPerMillion is >= 0 and <= 1_000_000
        ? PartsPerMillion
        : throw new ArgumentOutOfRangeException(nameof(PartsPerMillion), PartsPerMillion, "A tax rate is 0 to 1,000,000 parts per million (0 % to 100 %).");

    /// <summary>Creates a rate from a percentage with at most four decimals (8.875 → 88,750 ppm).</summary>
    /// <param name="name">The rate's name.</param>
    /// <param name="percent">The percentage, 0 to 100.</param>
    /// <param name="inclusive">Whether prices include the tax.</param>
    /// <returns>The rate.</returns>
    /// <exception cref="ArgumentException">More than four decimals, or out of range.</exception>
    public static TaxRate Percent(string name, decimal percent, bool inclusive = false)
    {
        var ppm = percent * 10_000m;
        if (ppm != decimal.Truncate(ppm))
        {
            throw new ArgumentException($"{percent.ToString(CultureInfo.InvariantCulture)} % has more than four decimals.", nameof(percent));
        }

        return new TaxRate(name, decimal.ToInt64(ppm), inclusive);
    }

    /// <summary>Formats as <c>VAT 19% (inclusive)</c>.</summary>
    /// <returns>The text form.</returns>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Name} {PartsPerMillion / 10_000m}%{(Inclusive ? " (inclusive)" : string.Empty)}");
}
