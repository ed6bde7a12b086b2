using Billing.Catalog;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Usage;

/// <summary>
/// The usage lines of a renewal, priced from the durable aggregate of each metered price's meter for the period
/// just ended (never from the fast counters).
/// </summary>
/// <remarks>
/// One line per metered price, in the plan's order, even when the aggregate is zero; quantity is the aggregate and
/// the amount is the price model's total for it (graduated, volume, package, per-unit: see the price classes).
/// </remarks>
public sealed class MeteredUsageCharges : IUsageChargeSource
{
    private readonly IUsageEventStore _events;

    /// <summary>Creates the source.</summary>
    /// <param name="events">The durable usage events.</param>
    public MeteredUsageCharges(IUsageEventStore events)
    {
        ArgumentNullException.ThrowIfNull(events);
        _events = events;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<InvoiceLine>> GetUsageLinesAsync(Subscription subscription, Plan plan, BillingPeriod period, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.MeteredPrices.Count == 0)
        {
            return [];
        }

        var lines = new List<InvoiceLine>(plan.MeteredPrices.Count);
        foreach (var price in plan.MeteredPrices)
        {
            var counter = new UsageCounterKey(subscription.CustomerId, price.Meter.Key, period.Start);
            var quantity = await _events.AggregateAsync(counter, price.Meter.Aggregation, cancellationToken).ConfigureAwait(false);
            lines.Add(new InvoiceLine(InvoiceLineKind.Usage, price.Description ?? price.Meter.Key, price.Price.CalculateTotal(quantity))
            {
                Quantity = quantity,
                Period = period,
                MeterKey = price.Meter.Key,
            });
        }

        return lines;
    }
}
