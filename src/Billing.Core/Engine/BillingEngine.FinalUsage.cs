using Billing.Catalog;
using Billing.Customers;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Engine;

/// <summary>
/// The usage of a subscription's last stretch on a plan, billed when no renewal will bill it: at an immediate
/// cancellation, at a cancellation at period end, and at an immediate plan change.
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
    /// Adds to the session the draft invoice billing the usage of the current plan from the start of the current usage
    /// span to <paramref name="end"/> (a cancellation or a plan change), priced like a renewal's usage lines: kept a
    /// draft until the span's usage closes (late events within the grace) plus
    /// <see cref="BillingOptions.DraftFinalizationDelay"/>, and priced again from the durable usage when finalized. Its
    /// key is the one a renewal at <paramref name="end"/> would have, so the metering service rejects events for the
    /// span once it is finalized. Returns null when there is nothing to bill (no usage lines, an empty span, or a
    /// subscription that was not in a billing state: trialing, incomplete, paused).
    /// </summary>
    private async Task<Invoice?> AddFinalUsageInvoiceAsync(IBillingSession session, Customer customer, Subscription subscription, Plan plan, DateTimeOffset end, BillingReason reason, DateTimeOffset at, CancellationToken cancellationToken)
    {
        if (subscription.Status is not (SubscriptionStatus.Active or SubscriptionStatus.PastDue or SubscriptionStatus.Unpaid))
        {
            return null;
        }

        var start = UsagePeriodOf(subscription, subscription.CurrentPeriod).Start;
        end = end < subscription.CurrentPeriod.End ? end : subscription.CurrentPeriod.End;
        if (end <= start)
        {
            return null;
        }

        var period = new BillingPeriod(start, end);
        var usage = await _usage.GetUsageLinesAsync(subscription, plan, period, cancellationToken).ConfigureAwait(false);
        if (usage.Count == 0)
        {
            return null;
        }

        var closesAt = _usage.UsageClosesAt(plan, period);
        var finalizeAt = (closesAt > at ? closesAt : at) + _options.DraftFinalizationDelay;
        var invoice = NewDraft(customer, subscription, PeriodKey(subscription.Id, end), reason, period, usage, null, at, finalizeAt);
        session.Invoices.Add(invoice);
        session.Outbox.Append(NewEvent("invoice.created", at, "invoice", invoice.Id, customer.Id, ("subscription", subscription.Id), ("total", invoice.Total.MinorUnits)));
        return invoice;
    }
}
