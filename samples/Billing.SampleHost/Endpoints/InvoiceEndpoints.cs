using Billing.Engine;
using Billing.Invoices;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Data;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

internal static class InvoiceEndpoints
{
    public static RouteGroupBuilder MapInvoices(this RouteGroupBuilder v1)
    {
        var invoices = v1.MapGroup("/invoices").WithTags("Invoices");

        invoices.MapGet("/", async (HttpRequest request, ResourceLister lister, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            var customer = SubscriptionMapping.Filter(errors, request, "customer");
            var subscription = SubscriptionMapping.Filter(errors, request, "subscription");
            var status = SubscriptionMapping.StatusFilter<InvoiceStatus>(errors, request);
            errors.ThrowIfAny();
            var (items, hasMore) = await lister.ListInvoicesAsync(Page.From(request), customer, subscription, status, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<InvoiceDto>([.. items.Select(InvoiceDto.From)], hasMore));
        }).RequireAuthorization(Scopes.Read).WithName("ListInvoices")
            .WithSummary("List invoices with their lines, newest first (filters: customer, subscription, status)");

        invoices.MapGet("/upcoming", async (HttpRequest request, BillingEngine engine, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            var subscription = SubscriptionMapping.Filter(errors, request, "subscription");
            errors.Check(subscription is not null || errors.Any, "subscription", "subscription is required: the subscription whose next invoice to preview.");
            errors.ThrowIfAny();
            var preview = await engine.PreviewUpcomingInvoiceAsync(subscription!, ct).ConfigureAwait(false);
            if (preview is null)
            {
                var current = await engine.GetSubscriptionAsync(subscription!, ct).ConfigureAwait(false);
                var state = current.CancelAtPeriodEnd ? "canceling at period end" : PlanMapping.Snake(current.Status.ToString());
                throw new InvalidStateTransitionException("subscription", state, "upcoming invoice", ["renew (an active or trialing subscription that is not set to cancel has an upcoming invoice)"]);
            }

            return TypedResults.Ok(new DataEnvelope<UpcomingInvoiceDto>(UpcomingInvoiceDto.From(subscription!, preview)));
        }).RequireAuthorization(Scopes.Read).WithName("PreviewUpcomingInvoice")
            .WithSummary("Preview a subscription's next renewal invoice (nothing is stored)");

        invoices.MapGet("/{id}", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<InvoiceDto>(InvoiceDto.From(await engine.GetInvoiceAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Read).WithName("GetInvoice").WithSummary("Get an invoice with its lines");

        invoices.MapGet("/{id}/payments", async (string id, BillingEngine engine, CancellationToken ct) =>
        {
            _ = await engine.GetInvoiceAsync(id, ct).ConfigureAwait(false);
            var payments = await engine.ListPaymentsAsync(id, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<PaymentDto>([.. payments.Select(PaymentDto.From)], false));
        }).RequireAuthorization(Scopes.Read).WithName("ListInvoicePayments").WithSummary("List an invoice's payment attempts, by attempt");

        invoices.MapPost("/{id}/finalize", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<InvoiceDto>(InvoiceDto.From(await engine.FinalizeInvoiceAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Write).WithName("FinalizeInvoice")
            .WithSummary("Finalize a draft now (numbers it, applies credit, charges what is due)");

        invoices.MapPost("/{id}/pay", async (string id, PayInvoiceRequest? body, BillingEngine engine, CancellationToken ct) =>
        {
            body?.Validate();
            return TypedResults.Ok(new DataEnvelope<InvoiceDto>(InvoiceDto.From(await engine.PayInvoiceAsync(id, body?.PaymentMethod, ct).ConfigureAwait(false))));
        }).RequireAuthorization(Scopes.Write).WithName("PayInvoice")
            .WithSummary("Attempt payment of an open or uncollectible invoice now (the answer shows the outcome)");

        invoices.MapPost("/{id}/void", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<InvoiceDto>(InvoiceDto.From(await engine.VoidInvoiceAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Write).WithName("VoidInvoice").WithSummary("Void an open or uncollectible invoice");

        invoices.MapPost("/{id}/mark_uncollectible", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<InvoiceDto>(InvoiceDto.From(await engine.MarkInvoiceUncollectibleAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Write).WithName("MarkInvoiceUncollectible").WithSummary("Mark an open invoice uncollectible");

        return v1;
    }
}
