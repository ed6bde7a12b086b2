using Billing.Pricing;
using Billing.Usage;

namespace Billing.Catalog;

/// <summary>A plan's usage-based price: a period's aggregate of one meter, priced with any price model.</summary>
/// <remarks>
/// Billed in arrears: the renewal invoice that closes a period gets one usage line per metered price, for the period
/// just ended, with the aggregate as quantity and the price model's breakdown. A zero aggregate still gets its line
/// (amount per the model, usually zero).
/// </remarks>
public sealed record MeteredPrice
{
    /// <summary>The meter.</summary>
    public required Meter Meter { get; init; }

    /// <summary>The price of the period's aggregate; its currency is the plan's.</summary>
    public required Price Price { get; init; }

    /// <summary>The text of the invoice line; null uses the meter key.</summary>
    public string? Description { get; init; }
}
