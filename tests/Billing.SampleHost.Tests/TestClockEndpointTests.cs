using System.Net;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Hosting;

namespace Billing.SampleHost.Tests;

public sealed class TestClockEndpointTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    private static readonly DateTimeOffset Start = new(2027, 3, 1, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_trial_usage_and_two_renewals_run_on_a_test_clock()
    {
        var client = host.Client();
        var created = (await client.Post("/v1/test_clocks", new { frozenTime = Start, name = "journey" })).Ok(HttpStatusCode.Created);
        var clock = created.Data;
        var clockId = clock.GetProperty("id").GetString()!;
        Assert.StartsWith("clock_", clockId, StringComparison.Ordinal);
        Assert.Equal($"/v1/test_clocks/{clockId}", created.Headers.Location?.ToString());
        Assert.Equal("test_clock", clock.GetProperty("object").GetString());
        Assert.Equal(Start, clock.GetProperty("frozenTime").GetDateTimeOffset());

        var plan = (await client.Post("/v1/plans", new
        {
            name = "Clocked",
            currency = "USD",
            price = new { model = "flat", amount = 2000 },
            interval = new { unit = "month" },
            trialDays = 7,
            meteredPrices = new[] { new { meter = new { key = "api_calls" }, price = new { model = "per_unit", unitAmount = 3 } } },
        })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod = "pm_card_visa", testClockId = clockId }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        Assert.Equal([customer], (await client.Get($"/v1/test_clocks/{clockId}/customers")).Ok().Data.EnumerateArray().Select(c => c.GetProperty("id").GetString()));

        var sub = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
        var subId = sub.GetProperty("id").GetString();
        Assert.Equal("trialing", sub.GetProperty("status").GetString());
        Assert.Equal(Start.AddDays(7), sub.GetProperty("trialEnd").GetDateTimeOffset());
        Assert.Equal(clockId, sub.GetProperty("testClockId").GetString());

        // Past the trial (and the draft's hour): the first period is invoiced and paid.
        var advanced = (await client.Post($"/v1/test_clocks/{clockId}/advance", new { frozenTime = Start.AddDays(8) })).Ok().Data;
        Assert.Equal(Start.AddDays(8), advanced.GetProperty("frozenTime").GetDateTimeOffset());
        Assert.Equal("active", (await client.Get($"/v1/subscriptions/{subId}")).Ok().Data.GetProperty("status").GetString());

        // Usage without a timestamp is stamped with the clock's time.
        var usage = (await client.Post("/v1/usage", new { customerId = customer, meter = "api_calls", quantity = 10, idempotencyKey = "clock-1" })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal(Start.AddDays(7), usage.GetProperty("periodStart").GetDateTimeOffset());

        // Two renewals; a draft billing usage waits for late events (24 hours) and the draft hour before it is finalized.
        (await client.Post($"/v1/test_clocks/{clockId}/advance", new { frozenTime = Start.AddDays(7).AddMonths(2).AddDays(2) })).Ok();
        var invoices = (await client.Get($"/v1/invoices?subscription={subId}")).Ok().Data;
        Assert.Equal(3, invoices.GetArrayLength());
        Assert.All(invoices.EnumerateArray(), i => Assert.Equal("paid", i.GetProperty("status").GetString()));
        var withUsage = invoices[1];
        var line = withUsage.GetProperty("lines").EnumerateArray().Single(l => l.GetProperty("kind").GetString() == "usage");
        Assert.Equal(10, line.GetProperty("quantity").GetInt64());
        Assert.Equal(30, line.GetProperty("amount").GetInt64());
        Assert.Equal(2030, withUsage.GetProperty("total").GetInt64());
        Assert.Equal(Start.AddDays(7).AddMonths(2).AddDays(2), (await client.Get($"/v1/test_clocks/{clockId}")).Ok().Data.GetProperty("frozenTime").GetDateTimeOffset());
    }

    [Fact]
    public async Task Bad_input_not_found_and_scopes()
    {
        var client = host.Client();
        (await client.Post("/v1/test_clocks", new { name = "no time" })).ValidationError("frozenTime");
        (await client.Post("/v1/test_clocks", """{"frozenTime":"tomorrow"}""")).ValidationError("frozenTime");
        var id = (await client.Post("/v1/test_clocks", new { frozenTime = Start })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        (await client.Post($"/v1/test_clocks/{id}/advance", new { frozenTime = Start.AddDays(-1) })).ValidationError("frozenTime");
        (await client.Post($"/v1/test_clocks/{id}/advance", new { frozenTime = Start.AddYears(3) })).ValidationError("frozenTime");
        (await client.Post($"/v1/test_clocks/{id}/advance", new { })).ValidationError("frozenTime");
        Assert.Equal(Start, (await client.Get($"/v1/test_clocks/{id}")).Ok().Data.GetProperty("frozenTime").GetDateTimeOffset());

        (await client.Get("/v1/test_clocks/clock_missing")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Get("/v1/test_clocks/clock_missing/customers")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/test_clocks/clock_missing/advance", new { frozenTime = Start })).Problem(HttpStatusCode.NotFound, "not_found");

        (await host.Client(null).Get($"/v1/test_clocks/{id}")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        var reader = host.Client(await client.CreateKey("billing:read"));
        (await reader.Get($"/v1/test_clocks/{id}")).Ok();
        (await reader.Post("/v1/test_clocks", new { frozenTime = Start })).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Post($"/v1/test_clocks/{id}/advance", new { frozenTime = Start.AddDays(1) })).Problem(HttpStatusCode.Forbidden, "forbidden");
    }
}

/// <summary>A host with test clocks turned off (as in Production by default).</summary>
public sealed class NoTestClocksHostFactory : SampleHostFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:TestClocks:Enabled", "false");
    }
}

public sealed class DisabledTestClockTests(NoTestClocksHostFactory host) : IClassFixture<NoTestClocksHostFactory>
{
    [Fact]
    public async Task Test_clocks_are_not_found_when_disabled()
    {
        var client = host.Client();
        (await client.Post("/v1/test_clocks", new { frozenTime = DateTimeOffset.UnixEpoch })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Get("/v1/test_clocks/clock_x")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/customers", new { name = "A", email = "a@b.c", currency = "USD", testClockId = "clock_x" })).ValidationError("testClockId");
    }
}
