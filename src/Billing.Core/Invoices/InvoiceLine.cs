using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;

namespace Billing.Invoices;

/// <summary>One line of an invoice.</summary>
/// <remarks>Lines are immutable. An invoice's total is the exact sum of its lines' amounts, except inclusive tax
/// lines, which show tax already contained in the other lines (<see cref="IsInclusiveTax"/>).</remarks>
public sealed record InvoiceLine
{
    /// <summary>Creates a line.</summary>
    /// <param name="kind">What the line is for.</param>
    /// <param name="description">Text shown to the customer.</param>
    /// <param name="amount">The signed amount.</param>
    /// <exception cref="ArgumentException">The description is empty.</exception>
    public InvoiceLine(InvoiceLineKind kind, string description, Money amount)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        Kind = kind;
        Description = description;
        Amount = amount;
    }

    /// <summary>What the line is for.</summary>
    public InvoiceLineKind Kind { get; init; }

    /// <summary>Text shown to the customer.</summary>
    public string Description { get; init; }

    /// <summary>The signed amount (credits and discounts are negative).</summary>
    public Money Amount { get; init; }

    /// <summary>The quantity charged (seats, units); 1 when not meaningful.</summary>
    public long Quantity { get; init; } = 1;

    /// <summary>The period the line covers, when it covers one.</summary>
    public BillingPeriod? Period { get; init; }

    /// <summary>For proration lines: how the amount was computed.</summary>
    public ProrationFormula? Proration { get; init; }

    /// <summary>For usage lines: the meter the usage was read from.</summary>
    public string? MeterKey { get; init; }

    /// <summary>
    /// For usage lines: the plan whose metered price produced the line. A draft's usage lines that name their plan are
    /// priced again from the durable usage when the draft is finalized (see <see cref="Ports.IUsageChargeSource"/>).
    /// </summary>
    public string? PlanId { get; init; }

    /// <summary>
    /// For usage lines: how the price model turned <see cref="Quantity"/> into <see cref="Amount"/>, tier by tier
    /// (bounds, quantity in the tier, unit or flat amount, amount). Its total is exactly <see cref="Amount"/>.
    /// </summary>
    public PriceBreakdown? Breakdown { get; init; }

    /// <summary>For tax lines: the rate that produced it.</summary>
    public TaxRate? TaxRate { get; init; }

    /// <summary>For tax lines: whether the tax is included in the other lines (so not added to the total).</summary>
    public bool IsInclusiveTax => Kind == InvoiceLineKind.Tax && TaxRate is { Inclusive: true };
}
