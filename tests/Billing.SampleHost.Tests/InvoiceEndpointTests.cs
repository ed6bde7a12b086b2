using System.Net;
using System.Text.Json;
using Billing.Engine;
using Billing.SampleHost.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.SampleHost.Tests;

public sealed class InvoiceEndpointTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    /// <summary>A customer (with the payment method) subscribed now to a 20.00 USD monthly plan; returns the
    /// subscription.</summary>
    private static async Task<JsonElement> Subscribe(HttpClient client, string paymentMethod = "pm_card_visa")
    {
        var plan = (await client.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        return (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
    }

    /// <summary>The billing run (the host has no background worker yet): renewals become draft invoices.</summary>
    private Task<BillingRunResult> RunBilling() => host.Services.GetRequiredService<BillingEngine>().AdvanceAsync(host.Clock.GetUtcNow());

    [Fact]
    public async Task The_first_invoice_is_paid_with_its_lines_and_totals()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var invoice = (await client.Get($"/v1/invoices/{sub.GetProperty("latestInvoiceId").GetString()}")).Ok().Data;
        Assert.Equal("invoice", invoice.GetProperty("object").GetString());
        Assert.Equal("paid", invoice.GetProperty("status").GetString());
        Assert.Equal("subscription_create", invoice.GetProperty("billingReason").GetString());
        Assert.Equal(sub.GetProperty("id").GetString(), invoice.GetProperty("subscriptionId").GetString());
        Assert.StartsWith("INV", invoice.GetProperty("number").GetString(), StringComparison.Ordinal);
        Assert.Equal("USD", invoice.GetProperty("currency").GetString());
        var line = invoice.GetProperty("lines")[0];
        Assert.Equal("plan", line.GetProperty("kind").GetString());
        Assert.Equal(2000, line.GetProperty("amount").GetInt64());
        Assert.Equal(1, line.GetProperty("quantity").GetInt64());
        Assert.Equal(sub.GetProperty("currentPeriod").GetProperty("end").GetDateTimeOffset(), line.GetProperty("period").GetProperty("end").GetDateTimeOffset());
        Assert.Equal(2000, invoice.GetProperty("total").GetInt64());
        Assert.Equal(2000, invoice.GetProperty("amountPaid").GetInt64());
        Assert.Equal(1, invoice.GetProperty("paymentAttempts").GetInt32());
    }

    [Fact]
    public async Task A_renewal_draft_is_finalized_and_paid_and_finalizing_again_is_409()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var id = sub.GetProperty("id").GetString();
        host.Clock.Advance(sub.GetProperty("currentPeriod").GetProperty("end").GetDateTimeOffset() - host.Clock.GetUtcNow());
        await RunBilling();

        var list = (await client.Get($"/v1/invoices?subscription={id}")).Ok().Data;
        Assert.Equal(2, list.GetArrayLength());
        var draft = list[0];
        Assert.Equal("draft", draft.GetProperty("status").GetString());
        Assert.Equal("subscription_cycle", draft.GetProperty("billingReason").GetString());
        var draftId = draft.GetProperty("id").GetString();
        Assert.Equal([draftId], (await client.Get($"/v1/invoices?subscription={id}&status=draft")).Ok().Data.EnumerateArray().Select(i => i.GetProperty("id").GetString()));

        (await client.Post($"/v1/invoices/{draftId}/pay")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"/v1/invoices/{draftId}/void")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        var finalized = (await client.Post($"/v1/invoices/{draftId}/finalize")).Ok().Data;
        Assert.Equal("paid", finalized.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(finalized.GetProperty("number").GetString()));
        Assert.Equal(host.Clock.GetUtcNow(), finalized.GetProperty("finalizedAt").GetDateTimeOffset());
        (await client.Post($"/v1/invoices/{draftId}/finalize")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"/v1/invoices/{draftId}/mark_uncollectible")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
    }

    [Fact]
    public async Task An_open_invoice_can_be_voided_once()
    {
        var client = host.Client();
        var sub = await Subscribe(client, "pm_card_chargeDeclined");
        Assert.Equal("incomplete", sub.GetProperty("status").GetString());
        var invoiceId = sub.GetProperty("latestInvoiceId").GetString();
        var open = (await client.Get($"/v1/invoices/{invoiceId}")).Ok().Data;
        Assert.Equal("open", open.GetProperty("status").GetString());
        Assert.Equal(2000, open.GetProperty("amountDue").GetInt64());

        var voided = (await client.Post($"/v1/invoices/{invoiceId}/void")).Ok().Data;
        Assert.Equal("void", voided.GetProperty("status").GetString());
        (await client.Post($"/v1/invoices/{invoiceId}/void")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"/v1/invoices/{invoiceId}/pay")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
    }

    [Fact]
    public async Task Pay_retries_with_another_method_and_uncollectible_invoices_can_still_be_paid()
    {
        var client = host.Client();
        var sub = await Subscribe(client, "pm_card_chargeDeclined");
        var invoiceId = sub.GetProperty("latestInvoiceId").GetString();
        var path = $"/v1/invoices/{invoiceId}";

        var failed = (await client.Post($"{path}/pay")).Ok().Data;
        Assert.Equal("open", failed.GetProperty("status").GetString());
        Assert.Equal(2, failed.GetProperty("paymentAttempts").GetInt32());
        (await client.Post($"{path}/pay", new { paymentMethod = "pm bad" })).ValidationError("paymentMethod");

        Assert.Equal("uncollectible", (await client.Post($"{path}/mark_uncollectible")).Ok().Data.GetProperty("status").GetString());
        (await client.Post($"{path}/mark_uncollectible")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        var paid = (await client.Post($"{path}/pay", new { paymentMethod = "pm_card_visa" })).Ok().Data;
        Assert.Equal("paid", paid.GetProperty("status").GetString());
        Assert.Equal(2000, paid.GetProperty("amountPaid").GetInt64());
        Assert.Equal("active", (await client.Get($"/v1/subscriptions/{sub.GetProperty("id").GetString()}")).Ok().Data.GetProperty("status").GetString());

        var payments = (await client.Get($"{path}/payments")).Ok().Data;
        Assert.Equal([1, 2, 3], payments.EnumerateArray().Select(p => p.GetProperty("attempt").GetInt32()));
        Assert.Equal(["declined", "declined", "succeeded"], payments.EnumerateArray().Select(p => p.GetProperty("outcome").GetString()));
        Assert.Equal("pm_card_visa", payments[2].GetProperty("paymentMethod").GetString());
        Assert.Equal(2000, payments[2].GetProperty("amount").GetInt64());
        (await client.Get("/v1/invoices/in_missing/payments")).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Upcoming_previews_the_next_renewal_and_a_canceled_subscription_has_none()
    {
        var client = host.Client();
        var sub = await Subscribe(client);
        var id = sub.GetProperty("id").GetString();
        (await client.Post($"/v1/subscriptions/{id}/change", new { quantity = 3, atPeriodEnd = true })).Ok();

        var upcoming = (await client.Get($"/v1/invoices/upcoming?subscription={id}")).Ok().Data;
        Assert.Equal("upcoming_invoice", upcoming.GetProperty("object").GetString());
        // The pending change applies at renewal: quantity 3 (a flat price does not depend on the quantity).
        var line = upcoming.GetProperty("lines")[0];
        Assert.Equal(3, line.GetProperty("quantity").GetInt64());
        Assert.Equal(sub.GetProperty("currentPeriod").GetProperty("end").GetDateTimeOffset(), line.GetProperty("period").GetProperty("start").GetDateTimeOffset());
        Assert.Equal(2000, upcoming.GetProperty("total").GetInt64());
        Assert.Equal(2000, upcoming.GetProperty("amountDue").GetInt64());

        (await client.Get("/v1/invoices/upcoming")).ValidationError("subscription");
        (await client.Get("/v1/invoices/upcoming?subscription=sub_missing")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post($"/v1/subscriptions/{id}/cancel")).Ok();
        (await client.Get($"/v1/invoices/upcoming?subscription={id}")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
    }

    [Fact]
    public async Task List_filters_by_customer_and_status_and_rejects_a_bad_status()
    {
        var client = host.Client();
        var paid = await Subscribe(client);
        var open = await Subscribe(client, "pm_card_chargeDeclined");
        var customer = open.GetProperty("customerId").GetString();
        var mine = (await client.Get($"/v1/invoices?customer={customer}")).Ok().Data;
        Assert.Equal([open.GetProperty("latestInvoiceId").GetString()], mine.EnumerateArray().Select(i => i.GetProperty("id").GetString()));
        var paidOnes = (await client.Get("/v1/invoices?status=paid&limit=100")).Ok().Data.EnumerateArray().Select(i => i.GetProperty("id").GetString()).ToList();
        Assert.Contains(paid.GetProperty("latestInvoiceId").GetString(), paidOnes);
        Assert.DoesNotContain(open.GetProperty("latestInvoiceId").GetString(), paidOnes);
        (await client.Get("/v1/invoices?status=settled")).ValidationError("status");
        (await client.Get("/v1/invoices?customer=")).ValidationError("customer");
    }

    [Fact]
    public async Task Unknown_invoice_is_not_found_everywhere()
    {
        var client = host.Client();
        (await client.Get("/v1/invoices/in_missing")).Problem(HttpStatusCode.NotFound, "not_found");
        foreach (var action in new[] { "finalize", "pay", "void", "mark_uncollectible" })
        {
            (await client.Post($"/v1/invoices/in_missing/{action}")).Problem(HttpStatusCode.NotFound, "not_found");
        }
    }

    [Fact]
    public async Task Needs_a_key_and_the_right_scope()
    {
        var admin = host.Client();
        var sub = await Subscribe(admin, "pm_card_chargeDeclined");
        var invoiceId = sub.GetProperty("latestInvoiceId").GetString();
        var anonymous = host.Client(null);
        (await anonymous.Get("/v1/invoices")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Get($"/v1/invoices/{invoiceId}")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Post($"/v1/invoices/{invoiceId}/void")).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        var reader = host.Client(await admin.CreateKey("billing:read"));
        (await reader.Get($"/v1/invoices/{invoiceId}")).Ok();
        (await reader.Get($"/v1/invoices/upcoming?subscription={sub.GetProperty("id").GetString()}")).Ok();
        foreach (var action in new[] { "finalize", "pay", "void", "mark_uncollectible" })
        {
            (await reader.Post($"/v1/invoices/{invoiceId}/{action}")).Problem(HttpStatusCode.Forbidden, "forbidden");
        }

        Assert.Equal("open", (await admin.Get($"/v1/invoices/{invoiceId}")).Ok().Data.GetProperty("status").GetString());
    }
}
