using System.Net;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

public sealed class CustomerEndpointTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Fact]
    public async Task Create_and_get()
    {
        var client = host.Client();
        var response = (await client.Post("/v1/customers", new
        {
            name = "Ada Lovelace",
            email = "ada@example.com",
            currency = "EUR",
            timeZone = "Europe/Berlin",
            paymentMethod = "pm_card_visa",
            taxRates = new[] { new { name = "VAT", partsPerMillion = 190000 } },
            metadata = new { crm = "42" },
        })).Ok(HttpStatusCode.Created);
        var customer = response.Data;
        var id = customer.GetProperty("id").GetString()!;
        Assert.StartsWith("cus_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/customers/{id}", response.Headers.Location?.ToString());
        Assert.Equal("customer", customer.GetProperty("object").GetString());
        Assert.Equal("EUR", customer.GetProperty("currency").GetString());
        Assert.Equal("Europe/Berlin", customer.GetProperty("timeZone").GetString());
        Assert.Equal(0, customer.GetProperty("creditBalance").GetInt64());
        Assert.Equal(190000, customer.GetProperty("taxRates")[0].GetProperty("partsPerMillion").GetInt64());
        Assert.Equal("42", customer.GetProperty("metadata").GetProperty("crm").GetString());

        var read = (await client.Get($"/v1/customers/{id}")).Ok().Data;
        Assert.Equal("ada@example.com", read.GetProperty("email").GetString());
        Assert.Equal("pm_card_visa", read.GetProperty("paymentMethod").GetString());
    }

    [Theory]
    [InlineData("""{"email":"a@b.c","currency":"USD"}""", "name")]
    [InlineData("""{"name":"A","email":"not-an-email","currency":"USD"}""", "email")]
    [InlineData("""{"name":"A","email":"a@b.c"}""", "currency")]
    [InlineData("""{"name":"A","email":"a@b.c","currency":"US"}""", "currency")]
    [InlineData("""{"name":"A","email":"a@b.c","currency":"USD","timeZone":"Mars/Olympus"}""", "timeZone")]
    [InlineData("""{"name":"A","email":"a@b.c","currency":"USD","taxRates":[{"name":"VAT","partsPerMillion":2000000}]}""", "taxRates[0].partsPerMillion")]
    [InlineData("""{"name":"A","email":"a@b.c","currency":"USD","taxRates":[{"name":"A","partsPerMillion":1,"inclusive":true},{"name":"B","partsPerMillion":1}]}""", "taxRates")]
    [InlineData("""{"name":"A","email":"a@b.c","currency":"USD","testClockId":"clock_nope"}""", "testClockId")]
    [InlineData("""{"name":123,"email":"a@b.c","currency":"USD"}""", "name")]
    public async Task Create_rejects_bad_input_naming_the_field(string body, string field)
    {
        var client = host.Client();
        var before = (await client.Get("/v1/customers?limit=100")).Ok().Data.GetArrayLength();
        var response = await client.Post("/v1/customers", body);
        if (field == "testClockId")
        {
            // Test clocks are on in Development; an unknown clock is the engine's not-found.
            response.Problem(HttpStatusCode.NotFound, "not_found");
        }
        else
        {
            response.ValidationError(field);
        }

        Assert.Equal(before, (await client.Get("/v1/customers?limit=100")).Ok().Data.GetArrayLength());
    }

    [Fact]
    public async Task Unknown_customer_is_not_found_everywhere()
    {
        var client = host.Client();
        (await client.Get("/v1/customers/cus_missing")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Patch("/v1/customers/cus_missing", new { name = "X" })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/customers/cus_missing/credit_balance_adjustments", new { amount = 100, currency = "USD" })).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Update_changes_the_given_fields()
    {
        var client = host.Client();
        var id = (await client.Post("/v1/customers", Api.NewCustomer())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var updated = (await client.Patch($"/v1/customers/{id}", new { email = "new@example.com", timeZone = "America/New_York" })).Ok().Data;
        Assert.Equal("Ada", updated.GetProperty("name").GetString());
        Assert.Equal("new@example.com", updated.GetProperty("email").GetString());
        Assert.Equal("America/New_York", updated.GetProperty("timeZone").GetString());

        (await client.Patch($"/v1/customers/{id}", new { email = "nope" })).ValidationError("email");
        (await client.Patch($"/v1/customers/{id}", new { currency = "EUR" })).ValidationError("currency");
        Assert.Equal("new@example.com", (await client.Get($"/v1/customers/{id}")).Ok().Data.GetProperty("email").GetString());
    }

    [Fact]
    public async Task Credit_balance_adjustments_add_and_take_but_never_below_zero()
    {
        var client = host.Client();
        var id = (await client.Post("/v1/customers", Api.NewCustomer(currency: "JPY"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var path = $"/v1/customers/{id}/credit_balance_adjustments";
        Assert.Equal(5000, (await client.Post(path, new { amount = 5000, currency = "JPY" })).Ok().Data.GetProperty("creditBalance").GetInt64());
        Assert.Equal(3000, (await client.Post(path, new { amount = -2000, currency = "JPY" })).Ok().Data.GetProperty("creditBalance").GetInt64());

        (await client.Post(path, new { amount = -3001, currency = "JPY" })).ValidationError("amount");
        (await client.Post(path, new { amount = 100, currency = "USD" })).ValidationError("currency");
        (await client.Post(path, new { amount = 0, currency = "JPY" })).ValidationError("amount");
        (await client.Post(path, new { amount = 1.5, currency = "JPY" })).ValidationError("amount");
        Assert.Equal(3000, (await client.Get($"/v1/customers/{id}")).Ok().Data.GetProperty("creditBalance").GetInt64());
    }

    [Fact]
    public async Task List_pages_with_a_cursor()
    {
        var client = host.Client();
        for (var i = 0; i < 3; i++)
        {
            (await client.Post("/v1/customers", Api.NewCustomer($"C{i}"))).Ok(HttpStatusCode.Created);
            host.Clock.Advance(TimeSpan.FromSeconds(1));
        }

        var all = (await client.Get("/v1/customers?limit=100")).Ok().Data.EnumerateArray().Select(c => c.GetProperty("id").GetString()!).ToList();
        var pages = new List<string>();
        string? after = null;
        bool hasMore;
        do
        {
            var page = (await client.Get("/v1/customers?limit=1" + (after is null ? string.Empty : $"&starting_after={after}"))).Ok();
            hasMore = page.Json.GetProperty("hasMore").GetBoolean();
            Assert.Equal(1, page.Data.GetArrayLength());
            after = page.Data[0].GetProperty("id").GetString();
            pages.Add(after!);
        }
        while (hasMore);

        Assert.Equal(all, pages);
    }

    [Fact]
    public async Task List_filters_by_exact_email_and_rejects_a_cursor_that_names_no_customer()
    {
        var client = host.Client();
        var lower = (await client.Post("/v1/customers", Api.NewCustomer("Lower", "filter.me@example.com"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        (await client.Post("/v1/customers", Api.NewCustomer("Upper", "Filter.Me@example.com"))).Ok(HttpStatusCode.Created);
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        var again = (await client.Post("/v1/customers", Api.NewCustomer("Again", "filter.me@example.com"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;

        var page = (await client.Get("/v1/customers?email=filter.me@example.com&limit=1")).Ok();
        Assert.Equal([again], page.Data.EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
        Assert.True(page.Json.GetProperty("hasMore").GetBoolean());
        var next = (await client.Get($"/v1/customers?email=filter.me@example.com&limit=1&starting_after={again}")).Ok();
        Assert.Equal([lower], next.Data.EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
        Assert.False(next.Json.GetProperty("hasMore").GetBoolean());
        Assert.Empty((await client.Get("/v1/customers?email=nobody@example.com")).Ok().Data.EnumerateArray());

        (await client.Get("/v1/customers?email=")).ValidationError("email");
        (await client.Get("/v1/customers?starting_after=cus_nope")).ValidationError("starting_after");
        (await client.Get("/v1/customers?limit=101")).ValidationError("limit");
    }

    [Fact]
    public async Task Needs_a_key_and_the_right_scope()
    {
        var admin = host.Client();
        var id = (await admin.Post("/v1/customers", Api.NewCustomer())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var anonymous = host.Client(null);
        (await anonymous.Get("/v1/customers")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Post("/v1/customers", Api.NewCustomer())).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Patch($"/v1/customers/{id}", new { name = "X" })).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        var reader = host.Client(await admin.CreateKey("billing:read"));
        (await reader.Get($"/v1/customers/{id}")).Ok();
        (await reader.Post("/v1/customers", Api.NewCustomer())).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Patch($"/v1/customers/{id}", new { name = "X" })).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Post($"/v1/customers/{id}/credit_balance_adjustments", new { amount = 1, currency = "USD" })).Problem(HttpStatusCode.Forbidden, "forbidden");
    }
}
