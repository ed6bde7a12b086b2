using Billing.Periods;
using Billing.Pricing;

namespace Billing.Proration;

/// <summary>
/// Prorates a change of price or quantity inside a billing period, to the second, with one rounding per line and
/// the formula recorded on each line.
/// </summary>
/// <remarks>
/// <para>Instants are truncated to whole seconds (UTC). For a period <c>[start, end)</c> and a change at <c>t</c>,
/// the credit is <c>−round(old × (end − t) / (end − start))</c> and the debit
/// <c>round(new × (end − t) / (end − start))</c>, where <c>old</c> and <c>new</c> are the full-period amounts
/// (price × quantity). A change at the period start prorates to the full amounts; one at the period end to zero.
/// With an unchanged price and quantity the credit and debit cancel exactly, because rounding is symmetric.</para>
/// <para>A change of quantity alone gives a credit for the old quantity and a debit for the new one, so the net is
/// the prorated quantity difference (to within one minor unit of rounding).</para>
/// <para>To split one amount over two parts of a period with no rounding loss, use <see cref="Split"/>, which
/// goes through <see cref="Money.Allocate(ReadOnlySpan{long})"/>.</para>
/// </remarks>
public static class ProrationCalculator
{
    /// <summary>Prorates a change from one full-period amount to another at an instant inside the period.</summary>
    /// <param name="period">The current billing period.</param>
    /// <param name="changeAt">When the change takes effect; within <c>[period.Start, period.End]</c>.</param>
    /// <param name="oldAmount">The full-period amount of the old price and quantity.</param>
    /// <param name="newAmount">The full-period amount of the new price and quantity.</param>
    /// <param name="behavior">What to do with the proration.</param>
    /// <param name="rounding">The rounding applied once to each line; half-even by default.</param>
    /// <returns>The credit and debit lines (or none), without allocating.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="changeAt"/> is outside the period.</exception>
    /// <exception cref="CurrencyMismatchException">The two amounts have different currencies.</exception>
    public static ProrationResult Prorate(
        BillingPeriod period,
        DateTimeOffset changeAt,
        Money oldAmount,
        Money newAmount,
        ProrationBehavior behavior = ProrationBehavior.CreateProrations,
        RoundingMode rounding = RoundingMode.HalfEven)
    {
        if (!ReferenceEquals(oldAmount.Currency, newAmount.Currency))
        {
            throw new CurrencyMismatchException(oldAmount.Currency, newAmount.Currency);
        }

        var (remaining, total) = Seconds(period, changeAt);
        if (behavior == ProrationBehavior.None)
        {
            return new ProrationResult(behavior, null, null, Money.Zero(newAmount.Currency));
        }

        if (!Enum.IsDefined(behavior))
        {
            throw new ArgumentOutOfRangeException(nameof(behavior), behavior, "Unknown proration behaviour.");
        }

        var to = period.End;
        var credit = new ProrationLine(
            ProrationLineKind.Credit,
            -oldAmount.MultiplyFraction(remaining, total, rounding),
            changeAt,
            to,
            new ProrationFormula(oldAmount, remaining, total, rounding));
        var debit = new ProrationLine(
            ProrationLineKind.Debit,
            newAmount.MultiplyFraction(remaining, total, rounding),
            changeAt,
            to,
            new ProrationFormula(newAmount, remaining, total, rounding));
        return new ProrationResult(behavior, credit, debit, credit.Amount + debit.Amount);
    }

    /// <summary>Prorates a change of price and/or quantity, pricing both sides with their price models.</summary>
    /// <param name="period">The current billing period.</param>
    /// <param name="changeAt">When the change takes effect; within <c>[period.Start, period.End]</c>.</param>
    /// <param name="oldPrice">The old price.</param>
    /// <param name="oldQuantity">The old quantity.</param>
    /// <param name="newPrice">The new price (the same object for a quantity-only change).</param>
    /// <param name="newQuantity">The new quantity.</param>
    /// <param name="behavior">What to do with the proration.</param>
    /// <param name="rounding">The rounding applied once to each line.</param>
    /// <returns>The credit and debit lines (or none).</returns>
    /// <exception cref="ArgumentOutOfRangeException">The change is outside the period, or a quantity is negative.</exception>
    /// <exception cref="CurrencyMismatchException">The prices have different currencies.</exception>
    public static ProrationResult Prorate(
        BillingPeriod period,
        DateTimeOffset changeAt,
        Price oldPrice,
        long oldQuantity,
        Price newPrice,
        long newQuantity,
        ProrationBehavior behavior = ProrationBehavior.CreateProrations,
        RoundingMode rounding = RoundingMode.HalfEven)
    {
        ArgumentNullException.ThrowIfNull(oldPrice);
        ArgumentNullException.ThrowIfNull(newPrice);
        return Prorate(period, changeAt, oldPrice.CalculateTotal(oldQuantity), newPrice.CalculateTotal(newQuantity), behavior, rounding);
    }

    /// <summary>
    /// The part of a full-period amount that covers <c>[from, to)</c> inside the period:
    /// <c>round(amount × (to − from) / (end − start))</c> with the formula (for a cancellation credit, say).
    /// </summary>
    /// <param name="amount">The full-period amount.</param>
    /// <param name="period">The period the amount is for.</param>
    /// <param name="from">The start of the covered time, inside the period.</param>
    /// <param name="to">The end of the covered time, at or after <paramref name="from"/> and inside the period.</param>
    /// <param name="rounding">The rounding applied once.</param>
    /// <returns>The prorated amount and its formula.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The span is outside the period or reversed.</exception>
    public static (Money Amount, ProrationFormula Formula) ProrateSpan(Money amount, BillingPeriod period, DateTimeOffset from, DateTimeOffset to, RoundingMode rounding = RoundingMode.HalfEven)
    {
        var (fromRemaining, total) = Seconds(period, from);
        var (toRemaining, _) = Seconds(period, to);
        if (toRemaining > fromRemaining)
        {
            throw new ArgumentOutOfRangeException(nameof(to), to, "The end of the span is before its start.");
        }

        var seconds = fromRemaining - toRemaining;
        return (amount.MultiplyFraction(seconds, total, rounding), new ProrationFormula(amount, seconds, total, rounding));
    }

    /// <summary>
    /// Splits a full-period amount exactly into the part before <paramref name="at"/> and the part from it on,
    /// weighted by seconds, through the allocation function: the two parts always sum to <paramref name="amount"/>.
    /// </summary>
    /// <param name="amount">The full-period amount.</param>
    /// <param name="period">The period.</param>
    /// <param name="at">The split instant, inside <c>[period.Start, period.End]</c>.</param>
    /// <returns>The amount for <c>[start, at)</c> and the amount for <c>[at, end)</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="at"/> is outside the period.</exception>
    public static (Money Before, Money After) Split(Money amount, BillingPeriod period, DateTimeOffset at)
    {
        var (remaining, total) = Seconds(period, at);
        Span<long> weights = [total - remaining, remaining];
        Span<long> parts = stackalloc long[2];
        Allocation.Allocate(amount.MinorUnits, weights, parts);
        return (new Money(parts[0], amount.Currency), new Money(parts[1], amount.Currency));
    }

    private static (long Remaining, long Total) Seconds(BillingPeriod period, DateTimeOffset at)
    {
        if (at < period.Start || at > period.End)
        {
            throw new ArgumentOutOfRangeException(nameof(at), at, $"The instant is outside the period {period}.");
        }

        var start = WholeSeconds(period.Start);
        var end = WholeSeconds(period.End);
        var total = end - start;
        if (total <= 0)
        {
            throw new ArgumentException($"The period {period} is shorter than one second; nothing can be prorated.", nameof(period));
        }

        return (end - WholeSeconds(at), total);
    }

    private static long WholeSeconds(DateTimeOffset instant) => instant.UtcTicks / TimeSpan.TicksPerSecond;
}
