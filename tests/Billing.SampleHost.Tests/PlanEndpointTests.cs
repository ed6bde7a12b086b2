using System.Net;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

public sealed class PlanEndpointTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    [Fact]
    public async Task Create_returns_the_plan_in_minor_units_with_a_location()
    {
        var client = host.Client();
        var response = (await client.Post("/v1/plans", new
        {
            name = "Team",
            description = "For teams",
            currency = "usd",
            price = new { model = "graduated", tiers = new object[] { new { upTo = 10, unitAmount = 500 }, new { unitAmount = 400, flatAmount = 100 } } },
            interval = new { unit = "month", count = 3 },
            trialDays = 14,
            metadata = new Dictionary<string, string> { ["tier"] = "b" },
            meteredPrices = new[] { new { meter = new { key = "api_calls" }, price = new { model = "per_unit", unitAmount = 2 } } },
            entitlements = new object[] { new { feature = "sso" }, new { feature = "api_calls_limit", kind = "metered_limit", limit = 1000, meterKey = "api_calls", enforcement = "hard" } },
        })).Ok(HttpStatusCode.Created);

        var plan = response.Data;
        var id = plan.GetProperty("id").GetString()!;
        Assert.StartsWith("plan_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/plans/{id}", response.Headers.Location?.ToString());
        Assert.Equal("plan", plan.GetProperty("object").GetString());
        Assert.Equal("USD", plan.GetProperty("currency").GetString());
        Assert.Equal("graduated", plan.GetProperty("price").GetProperty("model").GetString());
        Assert.Equal(500, plan.GetProperty("price").GetProperty("tiers")[0].GetProperty("unitAmount").GetInt64());
        Assert.Equal(100, plan.GetProperty("price").GetProperty("tiers")[1].GetProperty("flatAmount").GetInt64());
        Assert.Equal("month", plan.GetProperty("interval").GetProperty("unit").GetString());
        Assert.Equal(3, plan.GetProperty("interval").GetProperty("count").GetInt32());
        Assert.Equal(14, plan.GetProperty("trialDays").GetInt32());
        Assert.Equal("b", plan.GetProperty("metadata").GetProperty("tier").GetString());
        Assert.Equal("api_calls", plan.GetProperty("meteredPrices")[0].GetProperty("meter").GetProperty("key").GetString());
        Assert.Equal("metered_limit", plan.GetProperty("entitlements")[1].GetProperty("kind").GetString());
        Assert.Equal("hard", plan.GetProperty("entitlements")[1].GetProperty("enforcement").GetString());

        var read = (await client.Get($"/v1/plans/{id}")).Ok();
        Assert.Equal("Team", read.Data.GetProperty("name").GetString());
        Assert.Equal(response.Data.GetProperty("createdAt").GetString(), read.Data.GetProperty("createdAt").GetString());
    }

    [Theory]
    [InlineData("""{"currency":"USD","price":{"model":"flat","amount":100},"interval":{"unit":"month"}}""", "name")]
    [InlineData("""{"name":"A","currency":"ZZZ","price":{"model":"flat","amount":100},"interval":{"unit":"month"}}""", "currency")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":-1},"interval":{"unit":"month"}}""", "price.amount")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"bogus"},"interval":{"unit":"month"}}""", "price.model")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"fortnight"}}""", "interval.unit")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"month","count":0}}""", "interval.count")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"month"},"trialDays":731}""", "trialDays")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"volume","tiers":[{"upTo":5,"unitAmount":1}]},"interval":{"unit":"month"}}""", "price.tiers")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":"100"},"interval":{"unit":"month"}}""", "price.amount")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":99999999999999999999},"interval":{"unit":"month"}}""", "price.amount")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"month"},"unknown":1}""", "unknown")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"month"},"meteredPrices":[{"meter":{"key":"Bad Key"},"price":{"model":"per_unit","unitAmount":1}}]}""", "meteredPrices[0].meter.key")]
    [InlineData("""{"name":"A","currency":"USD","price":{"model":"flat","amount":1},"interval":{"unit":"month"},"entitlements":[{"feature":"x","kind":"metered_limit","limit":5,"meterKey":"nope"}]}""", "entitlements[0].meterKey")]
    [InlineData("""{"name":"A",""", "body")]
    public async Task Create_rejects_bad_input_naming_the_field(string body, string field)
    {
        var client = host.Client();
        var before = (await client.Get("/v1/plans?limit=100")).Ok().Data.GetArrayLength();
        (await client.Post("/v1/plans", body)).ValidationError(field);
        Assert.Equal(before, (await client.Get("/v1/plans?limit=100")).Ok().Data.GetArrayLength());
    }

    [Fact]
    public async Task Get_update_and_archive_of_an_unknown_plan_are_not_found()
    {
        var client = host.Client();
        (await client.Get("/v1/plans/plan_missing")).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Patch("/v1/plans/plan_missing", new { name = "X" })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/plans/plan_missing/archive")).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Update_changes_name_description_and_metadata_only()
    {
        var client = host.Client();
        var id = (await client.Post("/v1/plans", Api.FlatPlan("Old"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var updated = (await client.Patch($"/v1/plans/{id}", new { name = "New", description = "Better", metadata = new { k = "v" } })).Ok().Data;
        Assert.Equal("New", updated.GetProperty("name").GetString());
        Assert.Equal("Better", updated.GetProperty("description").GetString());
        Assert.Equal("v", updated.GetProperty("metadata").GetProperty("k").GetString());
        Assert.Equal(2000, updated.GetProperty("price").GetProperty("amount").GetInt64());

        (await client.Patch($"/v1/plans/{id}", new { price = new { model = "flat", amount = 1 } })).ValidationError("price");
        (await client.Patch($"/v1/plans/{id}", new { name = new string('x', 201) })).ValidationError("name");
        Assert.Equal("New", (await client.Get($"/v1/plans/{id}")).Ok().Data.GetProperty("name").GetString());
    }

    [Fact]
    public async Task Archive_once_then_conflict()
    {
        var client = host.Client();
        var id = (await client.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        Assert.True((await client.Post($"/v1/plans/{id}/archive")).Ok().Data.GetProperty("archived").GetBoolean());
        (await client.Post($"/v1/plans/{id}/archive")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
    }

    [Fact]
    public async Task List_pages_newest_first_with_a_cursor()
    {
        var client = host.Client();
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await client.Post("/v1/plans", Api.FlatPlan($"Page {i}"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!);
            host.Clock.Advance(TimeSpan.FromSeconds(1));
        }

        var all = (await client.Get("/v1/plans?limit=100")).Ok();
        Assert.False(all.Json.GetProperty("hasMore").GetBoolean());
        var listed = all.Data.EnumerateArray().Select(p => p.GetProperty("id").GetString()!).ToList();
        Assert.Equal(listed.Count, listed.Distinct().Count());
        Assert.Equal(ids.AsEnumerable().Reverse(), listed.Take(3));

        var first = (await client.Get("/v1/plans?limit=2")).Ok();
        Assert.True(first.Json.GetProperty("hasMore").GetBoolean());
        Assert.Equal(2, first.Data.GetArrayLength());
        var last = first.Data[1].GetProperty("id").GetString();
        var second = (await client.Get($"/v1/plans?limit=100&starting_after={last}")).Ok();
        Assert.False(second.Json.GetProperty("hasMore").GetBoolean());
        Assert.Equal(listed.Skip(2), second.Data.EnumerateArray().Select(p => p.GetProperty("id").GetString()!));
    }

    [Fact]
    public async Task List_filters_by_archived_and_the_cursor_may_be_a_plan_the_filter_leaves_out()
    {
        var client = host.Client();
        var kept = (await client.Post("/v1/plans", Api.FlatPlan("Kept"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        var gone = (await client.Post("/v1/plans", Api.FlatPlan("Gone"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        (await client.Post($"/v1/plans/{gone}/archive")).Ok();
        host.Clock.Advance(TimeSpan.FromSeconds(1));

        static List<(string Id, bool Archived)> Items(ApiResponse r) =>
            [.. r.Data.EnumerateArray().Select(p => (p.GetProperty("id").GetString()!, p.GetProperty("archived").GetBoolean()))];

        var archived = Items((await client.Get("/v1/plans?archived=true&limit=100")).Ok());
        Assert.Contains((gone, true), archived);
        Assert.All(archived, p => Assert.True(p.Archived));
        var active = Items((await client.Get("/v1/plans?archived=false&limit=100")).Ok());
        Assert.Contains((kept, false), active);
        Assert.DoesNotContain(active, p => p.Archived);

        // The archived plan is a valid cursor of the active list: the page starts right after its position.
        var after = Items((await client.Get($"/v1/plans?archived=false&limit=1&starting_after={gone}")).Ok());
        Assert.Equal([(kept, false)], after);
        (await client.Get("/v1/plans?archived=maybe")).ValidationError("archived");
        (await client.Get("/v1/plans?archived=true&archived=false")).ValidationError("archived");
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=101", "limit")]
    [InlineData("limit=abc", "limit")]
    [InlineData("starting_after=plan_nope", "starting_after")]
    public async Task List_rejects_bad_paging(string query, string field) =>
        (await host.Client().Get($"/v1/plans?{query}")).ValidationError(field);

    [Fact]
    public async Task Needs_a_key_and_the_write_scope_to_change()
    {
        var admin = host.Client();
        var id = (await admin.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var anonymous = host.Client(null);
        (await anonymous.Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Get($"/v1/plans/{id}")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Post("/v1/plans", Api.FlatPlan())).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        var reader = host.Client(await admin.CreateKey("billing:read"));
        (await reader.Get("/v1/plans")).Ok();
        (await reader.Get($"/v1/plans/{id}")).Ok();
        (await reader.Post("/v1/plans", Api.FlatPlan())).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Patch($"/v1/plans/{id}", new { name = "X" })).Problem(HttpStatusCode.Forbidden, "forbidden");
        (await reader.Post($"/v1/plans/{id}/archive")).Problem(HttpStatusCode.Forbidden, "forbidden");

        var writer = host.Client(await admin.CreateKey("billing:write"));
        (await writer.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created);
        (await writer.Get($"/v1/plans/{id}")).Ok();
    }
}
