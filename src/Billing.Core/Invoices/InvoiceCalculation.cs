namespace Billing.Invoices;

/// <summary>The computed content of an invoice: every line and the totals, all exact.</summary>
/// <remarks>
/// <c>Total = Subtotal + Discount + ExclusiveTax</c> = the sum of every line except inclusive tax lines.
/// <c>AmountDue = Total − CreditApplied</c>, never negative. A negative total (credits exceed charges) is added to
/// the customer's credit balance and nothing is due.
/// </remarks>
public sealed class InvoiceCalculation
{
    internal InvoiceCalculation(
        IReadOnlyList<InvoiceLine> lines, Money subtotal, Money discount, Money tax, bool taxInclusive,
        Money total, Money creditApplied, Money amountDue, Money creditBalanceAfter)
    {
        Lines = lines;
        Subtotal = subtotal;
        Discount = discount;
        Tax = tax;
        TaxIsInclusive = taxInclusive;
        Total = total;
        CreditApplied = creditApplied;
        AmountDue = amountDue;
        CreditBalanceAfter = creditBalanceAfter;
    }

    /// <summary>The item lines, then the discount line (if any), then one tax line per rate.</summary>
    public IReadOnlyList<InvoiceLine> Lines { get; }

    /// <summary>The sum of the item lines (before discount and tax).</summary>
    public Money Subtotal { get; }

    /// <summary>The discount, zero or negative.</summary>
    public Money Discount { get; }

    /// <summary>The tax: added to the total when exclusive, contained in it when inclusive.</summary>
    public Money Tax { get; }

    /// <summary>Whether <see cref="Tax"/> is contained in the item amounts rather than added.</summary>
    public bool TaxIsInclusive { get; }

    /// <summary>The invoice total.</summary>
    public Money Total { get; }

    /// <summary>Customer credit balance used to pay part or all of the total (zero or positive).</summary>
    public Money CreditApplied { get; }

    /// <summary>What remains to be charged: <c>Total − CreditApplied</c>, zero or positive.</summary>
    public Money AmountDue { get; }

    /// <summary>The customer's credit balance after this invoice.</summary>
    public Money CreditBalanceAfter { get; }
}
