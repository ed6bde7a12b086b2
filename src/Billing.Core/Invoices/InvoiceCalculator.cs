namespace Billing.Invoices;

/// <summary>
/// Computes an invoice from its item lines: the coupon's discount, tax rounded once per invoice and split across
/// rates through the allocation function, the total, and the use of the customer's credit balance.
/// </summary>
/// <remarks>
/// <para>Order: subtotal = Σ items; discount = coupon on a positive subtotal, at most the subtotal;
/// taxable = subtotal − discount; tax = round(taxable × Σ rates) for exclusive rates, or
/// taxable − round(taxable / (1 + Σ rates)) for inclusive ones, rounded once and then allocated across the rates
/// by their size so the tax lines add up exactly; total = taxable (+ exclusive tax).</para>
/// <para>Credit balance pays a positive total first; a negative total adds to the balance.</para>
/// <para>Rates must be all exclusive or all inclusive on one invoice.</para>
/// </remarks>
public static class InvoiceCalculator
{
    private const long Million = 1_000_000;

    /// <summary>Computes the lines and totals of an invoice.</summary>
    /// <param name="currency">The invoice currency; every amount must be in it.</param>
    /// <param name="items">The item lines (plan, usage, proration, adjustment), not discount or tax lines.</param>
    /// <param name="coupon">A coupon that applies to this invoice, or null.</param>
    /// <param name="taxRates">The customer's tax rates (may be empty).</param>
    /// <param name="creditBalance">The customer's credit balance before this invoice (zero or positive).</param>
    /// <param name="rounding">Rounding of percentage discounts and tax.</param>
    /// <returns>The computed invoice content.</returns>
    /// <exception cref="ArgumentException">A discount or tax line among the items, a negative credit balance, or mixed inclusive and exclusive rates.</exception>
    /// <exception cref="CurrencyMismatchException">An amount in another currency.</exception>
    public static InvoiceCalculation Calculate(
        Currency currency,
        IEnumerable<InvoiceLine> items,
        Coupon? coupon,
        IReadOnlyList<TaxRate> taxRates,
        Money creditBalance,
        RoundingMode rounding = RoundingMode.HalfEven)
    {
        ArgumentNullException.ThrowIfNull(currency);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(taxRates);
        var zero = Money.Zero(currency);
        if ((creditBalance + zero).IsNegative)
        {
            throw new ArgumentException("A credit balance cannot be negative.", nameof(creditBalance));
        }

        var lines = new List<InvoiceLine>();
        var subtotal = zero;
        foreach (var item in items)
        {
            if (item.Kind is InvoiceLineKind.Discount or InvoiceLineKind.Tax)
            {
                throw new ArgumentException($"Items cannot include {item.Kind} lines; the calculator adds them.", nameof(items));
            }

            subtotal += item.Amount;
            lines.Add(item);
        }

        var discount = coupon?.DiscountOn(subtotal, rounding) ?? zero;
        if (discount.IsPositive)
        {
            lines.Add(new InvoiceLine(InvoiceLineKind.Discount, $"Discount ({coupon!.Id})", -discount));
        }

        var taxable = subtotal - discount;
        var (tax, inclusive) = AddTaxLines(taxable, taxRates, rounding, lines);
        var total = inclusive ? taxable : taxable + tax;

        Money applied;
        Money due;
        Money balanceAfter;
        if (total.IsPositive)
        {
            applied = creditBalance < total ? creditBalance : total;
            due = total - applied;
            balanceAfter = creditBalance - applied;
        }
        else
        {
            applied = zero;
            due = zero;
            balanceAfter = creditBalance - total;
        }

        return new InvoiceCalculation(lines, subtotal, -discount, tax, inclusive, total, applied, due, balanceAfter);
    }

    private static (Money Tax, bool Inclusive) AddTaxLines(Money taxable, IReadOnlyList<TaxRate> rates, RoundingMode rounding, List<InvoiceLine> lines)
    {
        var zero = Money.Zero(taxable.Currency);
        if (rates.Count == 0)
        {
            return (zero, false);
        }

        var inclusive = rates[0].Inclusive;
        if (rates.Any(r => r.Inclusive != inclusive))
        {
            throw new ArgumentException("Tax rates on one invoice must be all inclusive or all exclusive.", nameof(rates));
        }

        long combined = 0;
        var weights = new long[rates.Count];
        for (var i = 0; i < rates.Count; i++)
        {
            weights[i] = rates[i].PartsPerMillion;
            combined += weights[i];
        }

        Money tax;
        if (combined == 0)
        {
            tax = zero;
        }
        else if (inclusive)
        {
            tax = taxable - taxable.MultiplyFraction(Million, Million + combined, rounding);
        }
        else
        {
            tax = taxable.MultiplyFraction(combined, Million, rounding);
        }

        var parts = combined == 0 ? [.. weights.Select(_ => zero)] : tax.Allocate(weights);
        for (var i = 0; i < rates.Count; i++)
        {
            lines.Add(new InvoiceLine(InvoiceLineKind.Tax, rates[i].ToString(), parts[i]) { TaxRate = rates[i] });
        }

        return (tax, inclusive);
    }
}
