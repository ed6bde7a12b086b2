using Billing.Engine;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Composition;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

internal static class CustomerEndpoints
{
    public static RouteGroupBuilder MapCustomers(this RouteGroupBuilder v1)
    {
        var customers = v1.MapGroup("/customers").WithTags("Customers");

        customers.MapPost("/", async (CreateCustomerRequest body, BillingEngine engine, HostFeatures features, CancellationToken ct) =>
        {
            var customer = await engine.CreateCustomerAsync(body.ToNewCustomer(features.TestClocksEnabled), ct).ConfigureAwait(false);
            return TypedResults.Created($"/v1/customers/{customer.Id}", new DataEnvelope<CustomerDto>(CustomerDto.From(customer)));
        }).RequireAuthorization(Scopes.Write).WithName("CreateCustomer").WithSummary("Create a customer");

        customers.MapGet("/", async (HttpRequest request, BillingEngine engine, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            var email = CustomerMapping.EmailFilter(errors, request);
            errors.ThrowIfAny();
            var page = await engine.ListCustomersAsync(Page.From(request).ToRequest(), email, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<CustomerDto>([.. page.Items.Select(CustomerDto.From)], page.HasMore));
        }).RequireAuthorization(Scopes.Read).WithName("ListCustomers").WithSummary("List customers, newest first (filter: email, exact and case-sensitive)");

        customers.MapGet("/{id}", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<CustomerDto>(CustomerDto.From(await engine.GetCustomerAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Read).WithName("GetCustomer").WithSummary("Get a customer");

        customers.MapPatch("/{id}", async (string id, UpdateCustomerRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            var rates = body.Validate();
            var customer = await engine.UpdateCustomerAsync(id, body.Name, body.Email, body.TimeZone, body.PaymentMethod, rates, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<CustomerDto>(CustomerDto.From(customer)));
        }).RequireAuthorization(Scopes.Write).WithName("UpdateCustomer").WithSummary("Update a customer");

        customers.MapPost("/{id}/credit_balance_adjustments", async (string id, CreditBalanceAdjustmentRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            var amount = body.Validate();
            var customer = await engine.GetCustomerAsync(id, ct).ConfigureAwait(false);
            if (!ReferenceEquals(customer.Currency, amount.Currency))
            {
                throw RequestValidationException.For("currency", $"The adjustment must be in the customer's currency ({customer.Currency.Code}).");
            }

            customer = await engine.AdjustCreditBalanceAsync(id, amount, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<CustomerDto>(CustomerDto.From(customer)));
        }).RequireAuthorization(Scopes.Write).WithName("AdjustCreditBalance").WithSummary("Add to (or take from) a customer's credit balance");

        return v1;
    }
}
