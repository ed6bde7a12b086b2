using System.Globalization;
using Billing.Catalog;
using Billing.Customers;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Engine;

/// <summary>
/// The final invoice of a subscription's last stretch on a plan, billing what no renewal will bill (its usage and the
/// pending lines): at an immediate cancellation (by hand or by dunning), at a cancellation at period end, and at an
/// immediate plan change.
/// </summary>
public sealed partial class BillingEngine
{
    /// <summary>
    /// The span of <paramref name="period"/> whose usage the subscription's current plan bills: from
    /// <see cref="Subscription.ScheduleStart"/> when an immediate plan change moved it inside the period (the usage
    /// before it was billed at the change), else the whole period.
    /// </summary>
    internal static BillingPeriod UsagePeriodOf(Subscription subscription, BillingPeriod period) =>
        subscription.ScheduleStart > period.Start && subscription.ScheduleStart < period.End ? new BillingPeriod(subscription.ScheduleStart, period.End) : period;

    /// <summary>
    /// Adds to the session the final invoice of the current plan's stretch, from the start of the current usage span to
    /// <paramref name="end"/> (a cancellation, by hand or by dunning, or an immediate plan change), made on the renewal's
    /// path (<see cref="NewSubscriptionDraft"/>) without a plan line: the subscription's pending lines (prorations that
    /// would have gone on the next renewal; left pending when <paramref name="billPending"/> is false), the span's usage
    /// priced like a renewal's usage lines, the coupon (a once coupon already used does not apply again; see
    /// <see cref="ConsumeFinalDiscount"/>) and the customer's tax. It is kept a draft until the span's usage closes (late
    /// events within the grace) plus <see cref="BillingOptions.DraftFinalizationDelay"/>, and its usage is priced again
    /// from the durable usage when it is finalized. Its key is the one a renewal at <paramref name="end"/> would have, and
    /// its <see cref="Invoice.Period"/> is the span, so the metering service resolves the span's late events to it and
    /// rejects them once it is finalized (when the span is empty, or a final invoice ending at the same instant exists
    /// already because the span did not move as no plan prices usage, it is keyed by the subscription's version).
    /// </summary>
    /// <returns>
    /// The invoice, and the subscription as billed by it (latest invoice, discount left, pending lines cleared) for the
    /// caller to change further and store. No invoice, and the subscription unchanged, when there is nothing to bill (no
    /// usage line and no pending line), or when the subscription was not in a billing state (trialing, incomplete, paused).
    /// An empty span (a cancellation at the instant of a change that started a new usage span) bills the pending lines
    /// only, on an invoice without <see cref="Invoice.Period"/>.
    /// </returns>
    private async Task<(Invoice? Invoice, Subscription Subscription)> AddFinalUsageInvoiceAsync(
        IBillingSession session, Customer customer, Subscription subscription, Plan plan, DateTimeOffset end, BillingReason reason, DateTimeOffset at, CancellationToken cancellationToken, bool billPending = true)
    {
        if (subscription.Status is not (SubscriptionStatus.Active or SubscriptionStatus.PastDue or SubscriptionStatus.Unpaid))
        {
            return (null, subscription);
        }

        var start = UsagePeriodOf(subscription, subscription.CurrentPeriod).Start;
        end = end < subscription.CurrentPeriod.End ? end : subscription.CurrentPeriod.End;
        var billed = billPending ? subscription : subscription with { PendingLines = [] };

        // An empty span (the stretch ends where it starts: a cancellation at the instant of a change) has no usage; its
        // pending lines still get a final invoice, with no usage period, so no late event resolves to it.
        BillingPeriod? period = end > start ? new BillingPeriod(start, end) : null;
        var usage = period is { } span ? await _usage.GetUsageLinesAsync(subscription, plan, span, cancellationToken).ConfigureAwait(false) : [];
        if (usage.Count == 0 && billed.PendingLines.Count == 0)
        {
            return (null, subscription);
        }

        var closesAt = period is { } p ? _usage.UsageClosesAt(plan, p) : at;
        var finalizeAt = (closesAt > at ? closesAt : at) + _options.DraftFinalizationDelay;
        var key = PeriodKey(subscription.Id, end);
        if (period is null || await session.Invoices.GetByDedupKeyAsync(key, cancellationToken).ConfigureAwait(false) is not null)
        {
            // Another final invoice ends at this instant (a second change, or a cancellation right after a change): this
            // one bills pending lines only, keyed by version.
            key = string.Create(CultureInfo.InvariantCulture, $"{subscription.Id}/final/v{subscription.Version}");
        }

        var (invoice, after) = NewSubscriptionDraft(customer, billed, key, reason, period, null, usage, at, finalizeAt);
        session.Invoices.Add(invoice);
        session.Outbox.Append(NewEvent("invoice.created", at, "invoice", invoice.Id, customer.Id, ("subscription", subscription.Id), ("total", invoice.Total.MinorUnits)));
        return (invoice, billPending ? after : after with { PendingLines = subscription.PendingLines });
    }
}
