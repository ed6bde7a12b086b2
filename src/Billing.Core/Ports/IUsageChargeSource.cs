using Billing.Catalog;
using Billing.Invoices;
using Billing.Periods;
using Billing.Subscriptions;

namespace Billing.Ports;

/// <summary>
/// Supplies the usage lines of a subscription for a period that just ended. Metering fills it (per-period totals
/// priced with the metered prices); until then <see cref="NoUsageCharges"/> contributes nothing.
/// </summary>
/// <remarks>
/// The engine asks twice: when it creates the renewal draft, and again when it finalizes the draft (for the usage
/// lines that name their <see cref="InvoiceLine.PlanId"/>), so usage that arrives while the invoice is a draft is
/// billed. A renewal draft that bills usage is finalized no earlier than
/// <see cref="BillingOptions.DraftFinalizationDelay"/> after <see cref="UsageClosesAt"/>.
/// </remarks>
public interface IUsageChargeSource
{
    /// <summary>Returns the usage lines for a subscription's period (kind <see cref="InvoiceLineKind.Usage"/>).</summary>
    /// <param name="subscription">The subscription.</param>
    /// <param name="plan">The plan it was on during the period.</param>
    /// <param name="period">The period that ended.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The lines; empty when there is no usage.</returns>
    ValueTask<IReadOnlyList<InvoiceLine>> GetUsageLinesAsync(Subscription subscription, Plan plan, BillingPeriod period, CancellationToken cancellationToken = default);

    /// <summary>When the usage of a period on a plan can no longer change (no event for it is accepted after this).</summary>
    /// <param name="plan">The plan the subscription was on during the period.</param>
    /// <param name="period">The period.</param>
    /// <returns>The instant; by default the period's end.</returns>
    DateTimeOffset UsageClosesAt(Plan plan, BillingPeriod period) => period.End;
}

/// <summary>A usage source with no usage: the default until a metering adapter is registered.</summary>
public sealed class NoUsageCharges : IUsageChargeSource
{
    /// <inheritdoc />
    public ValueTask<IReadOnlyList<InvoiceLine>> GetUsageLinesAsync(Subscription subscription, Plan plan, BillingPeriod period, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IReadOnlyList<InvoiceLine>>([]);
}
