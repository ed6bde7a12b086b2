using System.Collections.Concurrent;
using Billing.Catalog;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Testing.Usage;

/// <summary>
/// A usage source that returns recorded usage lines: record a line for a subscription and a period start, and the
/// renewal invoice that closes that period includes it.
/// </summary>
/// <remarks>Thread-safe. Metering proper (meters, counters, aggregation) replaces it with a real source.</remarks>
public sealed class InMemoryUsageCharges : IUsageChargeSource
{
    private readonly ConcurrentDictionary<(string Subscription, DateTimeOffset PeriodStart), ImmutableLines> _lines = new();

    /// <summary>Records a usage line for a subscription's period.</summary>
    /// <param name="subscriptionId">The subscription.</param>
    /// <param name="periodStart">The start of the period the usage belongs to.</param>
    /// <param name="description">The line's text (for example <c>API calls</c>).</param>
    /// <param name="quantity">The usage quantity.</param>
    /// <param name="amount">The priced amount.</param>
    /// <param name="meterKey">The meter, if any.</param>
    public void Record(string subscriptionId, DateTimeOffset periodStart, string description, long quantity, Money amount, string? meterKey = null)
    {
        var line = new InvoiceLine(InvoiceLineKind.Usage, description, amount) { Quantity = quantity, MeterKey = meterKey };
        _lines.AddOrUpdate((subscriptionId, periodStart.ToUniversalTime()), _ => new ImmutableLines([line]), (_, existing) => new ImmutableLines([.. existing.Lines, line]));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<InvoiceLine>> GetUsageLinesAsync(Subscription subscription, Plan plan, BillingPeriod period, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        var lines = _lines.TryGetValue((subscription.Id, period.Start), out var recorded)
            ? recorded.Lines.Select(l => l with { Period = period }).ToArray()
            : [];
        return ValueTask.FromResult<IReadOnlyList<InvoiceLine>>(lines);
    }

    private sealed record ImmutableLines(InvoiceLine[] Lines);
}
