using System.Globalization;

namespace Billing.Proration;

/// <summary>
/// How a proration line's amount was computed, so support can explain it:
/// <c>amount = round(FullAmount × NumeratorSeconds / DenominatorSeconds, Rounding)</c>, negated for a credit.
/// </summary>
/// <param name="FullAmount">The full-period amount that was prorated (price × quantity for the whole period).</param>
/// <param name="NumeratorSeconds">The seconds charged or credited (from the change to the end of the period).</param>
/// <param name="DenominatorSeconds">The seconds of the whole period.</param>
/// <param name="Rounding">The rounding applied once to the line.</param>
public readonly record struct ProrationFormula(Money FullAmount, long NumeratorSeconds, long DenominatorSeconds, RoundingMode Rounding)
{
    /// <summary>Formats the formula, for example <c>round(30.00 USD × 1728000 / 2592000, HalfEven)</c>.</summary>
    /// <returns>The text form.</returns>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"round({FullAmount} × {NumeratorSeconds} / {DenominatorSeconds}, {Rounding})");
}
