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
/// <para>
/// One line per metered price, in the plan's order, even when the aggregate is zero; quantity is the aggregate and
/// the amount is the price model's total for it (graduated, volume, package, per-unit: see the price classes). Each
/// line carries the price model's <see cref="InvoiceLine.Breakdown"/> (tier by tier; its total is exactly the line's
/// amount) and its <see cref="InvoiceLine.PlanId"/>, so the engine prices it again when the draft is finalized.
/// </para>
/// <para>
/// A period's usage closes <see cref="MeteringOptions.LateEventGrace"/> after the period ends (for plans with metered
/// prices): the metering service accepts no event for it afterwards, and the engine keeps the renewal invoice a
/// draft until then. Give this source the same options as <see cref="UsageMeteringService"/> (AddBilling does).
/// </para>
/// </remarks>
public sealed class MeteredUsageCharges : IUsageChargeSource
{
    private readonly IUsageEventStore _events;
    private readonly TimeSpan _grace;

    /// <summary>Creates the source with the default <see cref="MeteringOptions"/>.</summary>
    /// <param name="events">The durable usage events.</param>
    public MeteredUsageCharges(IUsageEventStore events)
        : this(events, new MeteringOptions())
    {
    }

    /// <summary>Creates the source.</summary>
    /// <param name="events">The durable usage events.</param>
    /// <param name="options">The metering settings (the late-event grace); validated here.</param>
    public MeteredUsageCharges(IUsageEventStore events, MeteringOptions options)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _events = events;
        _grace = options.LateEventGrace;
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
            lines.Add(Line(plan.Id, price, quantity, period));
        }

        return lines;
    }

    /// <inheritdoc />
    /// <remarks>The period's end plus <see cref="MeteringOptions.LateEventGrace"/> for a plan with metered prices; the end otherwise.</remarks>
    public DateTimeOffset UsageClosesAt(Plan plan, BillingPeriod period)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return plan.MeteredPrices.Count == 0 ? period.End : period.End + _grace;
    }

    /// <summary>The usage line of one metered price for an aggregate: amount, quantity and tier breakdown.</summary>
    internal static InvoiceLine Line(string planId, MeteredPrice price, long quantity, BillingPeriod period)
    {
        var breakdown = price.Price.Calculate(quantity);
        return new InvoiceLine(InvoiceLineKind.Usage, price.Description ?? price.Meter.Key, breakdown.Total)
        {
            Quantity = quantity,
            Period = period,
            MeterKey = price.Meter.Key,
            PlanId = planId,
            Breakdown = breakdown,
        };
    }
}
