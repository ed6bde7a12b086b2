using System.Net;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

public sealed class SubscriptionEndpointTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    private static async Task<(string Plan, string Customer)> PlanAndCustomer(HttpClient client, int trialDays = 0, string paymentMethod = "pm_card_visa", long amount = 3000)
    {
        var plan = (await client.Post("/v1/plans", new { name = "Pro", currency = "USD", price = new { model = "flat", amount }, interval = new { unit = "month" }, trialDays }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        return (plan, customer);
    }

    private static async Task<string> Active(HttpClient client)
    {
        var (plan, customer) = await PlanAndCustomer(client);
        var sub = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal("active", sub.GetProperty("status").GetString());
        return sub.GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task Create_with_a_trial_is_trialing_until_the_trial_ends()
    {
        var client = host.Client();
        var (plan, customer) = await PlanAndCustomer(client, trialDays: 14);
        var response = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, quantity = 3, paymentMethod = "pm_card_mastercard" })).Ok(HttpStatusCode.Created);
        var sub = response.Data;
        var id = sub.GetProperty("id").GetString()!;
        Assert.StartsWith("sub_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/subscriptions/{id}", response.Headers.Location?.ToString());
        Assert.Equal("subscription", sub.GetProperty("object").GetString());
        Assert.Equal("trialing", sub.GetProperty("status").GetString());
        Assert.Equal(3, sub.GetProperty("quantity").GetInt64());
        Assert.Equal("pm_card_mastercard", sub.GetProperty("paymentMethod").GetString());
        Assert.Equal(host.Clock.GetUtcNow().AddDays(14), sub.GetProperty("trialEnd").GetDateTimeOffset());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, sub.GetProperty("latestInvoiceId").ValueKind);

        var read = (await client.Get($"/v1/subscriptions/{id}")).Ok().Data;
        Assert.Equal(customer, read.GetProperty("customerId").GetString());
        Assert.Equal(plan, read.GetProperty("planId").GetString());

        // trialDays 0 overrides the plan's trial: charged at once.
        var now = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, trialDays = 0 })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal("active", now.GetProperty("status").GetString());
        Assert.StartsWith("in_", now.GetProperty("latestInvoiceId").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_without_a_trial_charges_the_first_invoice_and_a_declined_card_leaves_it_incomplete()
    {
        var client = host.Client();
        var (plan, customer) = await PlanAndCustomer(client);
        var sub = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal("active", sub.GetProperty("status").GetString());
        Assert.StartsWith("in_", sub.GetProperty("latestInvoiceId").GetString(), StringComparison.Ordinal);

        var declined = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, paymentMethod = "pm_card_chargeDeclined" })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal("incomplete", declined.GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("""{"planId":"plan_x"}""", "customerId")]
    [InlineData("""{"customerId":"cus_x"}""", "planId")]
    [InlineData("""{"customerId":"cus_x","planId":"plan_x","quantity":0}""", "quantity")]
    [InlineData("""{"customerId":"cus_x","planId":"plan_x","quantity":1000000001}""", "quantity")]
    [InlineData("""{"customerId":"cus_x","planId":"plan_x","trialDays":731}""", "trialDays")]
    [InlineData("""{"customerId":"cus_x","planId":"plan_x","paymentMethod":"pm card"}""", "paymentMethod")]
    [InlineData("""{"customerId":"cus_x","planId":"plan_x","quantity":"2"}""", "quantity")]
    [InlineData("""{"customerId":"cus_x","planId":"plan_x","extra":1}""", "extra")]
    public async Task Create_rejects_bad_input_naming_the_field(string body, string field)
    {
        var client = host.Client();
        var before = (await client.Get("/v1/subscriptions?limit=100")).Ok().Data.GetArrayLength();
        (await client.Post("/v1/subscriptions", body)).ValidationError(field);
        Assert.Equal(before, (await client.Get("/v1/subscriptions?limit=100")).Ok().Data.GetArrayLength());
    }

    [Fact]
    public async Task A_coupon_discounts_the_first_invoices()
    {
        var client = host.Client();
        var (plan, customer) = await PlanAndCustomer(client, amount: 3000);
        var sub = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "WELCOME", percentOff = 250000, duration = "repeating", durationInPeriods = 3 } }))
            .Ok(HttpStatusCode.Created).Data;
        var discount = sub.GetProperty("discount");
        Assert.Equal("WELCOME", discount.GetProperty("couponId").GetString());
        Assert.Equal("repeating", discount.GetProperty("duration").GetString());
        Assert.Equal(2, discount.GetProperty("periodsRemaining").GetInt32());
        var invoice = (await client.Get($"/v1/invoices/{sub.GetProperty("latestInvoiceId").GetString()}")).Ok().Data;
        Assert.Equal(-750, invoice.GetProperty("discount").GetInt64()); // discounts are negative amounts, like their lines
        Assert.Equal(2250, invoice.GetProperty("total").GetInt64());

        var flat = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "TENOFF", amountOff = 1000, currency = "USD", duration = "forever" } })).Ok(HttpStatusCode.Created).Data;
        Assert.Equal(2000, (await client.Get($"/v1/invoices/{flat.GetProperty("latestInvoiceId").GetString()}")).Ok().Data.GetProperty("total").GetInt64());

        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "X", percentOff = 10, amountOff = 10, currency = "USD" } })).ValidationError("coupon.percentOff");
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "X", percentOff = 2_000_000 } })).ValidationError("coupon.percentOff");
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "X", amountOff = 10 } })).ValidationError("coupon.currency");
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "X", percentOff = 10, duration = "repeating" } })).ValidationError("coupon.durationInPeriods");
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "X", percentOff = 10, duration = "sometimes" } })).ValidationError("coupon.duration");
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, coupon = new { id = "X", amountOff = 10, currency = "EUR" } })).ValidationError("coupon");
    }

    [Fact]
    public async Task Create_refuses_an_archived_plan_or_another_currency_naming_planId()
    {
        var client = host.Client();
        var (plan, customer) = await PlanAndCustomer(client);
        var euro = (await client.Post("/v1/plans", Api.FlatPlan(currency: "EUR"))).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = euro })).ValidationError("planId");
        (await client.Post($"/v1/plans/{plan}/archive")).Ok();
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).ValidationError("planId");
        (await client.Post("/v1/subscriptions", new { customerId = "cus_missing", planId = plan })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post("/v1/subscriptions", new { customerId = customer, planId = "plan_missing" })).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Unknown_subscription_is_not_found_everywhere()
    {
        var client = host.Client();
        const string path = "/v1/subscriptions/sub_missing";
        (await client.Get(path)).Problem(HttpStatusCode.NotFound, "not_found");
        foreach (var action in new[] { "cancel", "reactivate", "pause", "resume" })
        {
            (await client.Post($"{path}/{action}")).Problem(HttpStatusCode.NotFound, "not_found");
        }

        (await client.Post($"{path}/change", new { quantity = 2 })).Problem(HttpStatusCode.NotFound, "not_found");
        (await client.Post($"{path}/change_preview", new { quantity = 2 })).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Cancel_at_period_end_reactivate_pause_resume_cancel_and_wrong_states_are_409()
    {
        var client = host.Client();
        var id = await Active(client);
        var path = $"/v1/subscriptions/{id}";

        (await client.Post($"{path}/reactivate")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"{path}/resume")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");

        var scheduled = (await client.Post($"{path}/cancel", new { atPeriodEnd = true })).Ok().Data;
        Assert.True(scheduled.GetProperty("cancelAtPeriodEnd").GetBoolean());
        Assert.Equal("active", scheduled.GetProperty("status").GetString());
        var undone = (await client.Post($"{path}/reactivate")).Ok().Data;
        Assert.False(undone.GetProperty("cancelAtPeriodEnd").GetBoolean());

        Assert.Equal("paused", (await client.Post($"{path}/pause")).Ok().Data.GetProperty("status").GetString());
        (await client.Post($"{path}/pause")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"{path}/change", new { quantity = 2 })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        host.Clock.Advance(TimeSpan.FromDays(3));
        var resumed = (await client.Post($"{path}/resume")).Ok().Data;
        Assert.Equal("active", resumed.GetProperty("status").GetString());
        Assert.Equal(host.Clock.GetUtcNow(), resumed.GetProperty("currentPeriod").GetProperty("start").GetDateTimeOffset());

        var canceled = (await client.Post($"{path}/cancel")).Ok().Data;
        Assert.Equal("canceled", canceled.GetProperty("status").GetString());
        Assert.Equal(host.Clock.GetUtcNow(), canceled.GetProperty("canceledAt").GetDateTimeOffset());
        (await client.Post($"{path}/cancel")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"{path}/pause")).Problem(HttpStatusCode.Conflict, "invalid_state_transition");
        (await client.Post($"{path}/cancel", new { atPeriodEnd = true })).Problem(HttpStatusCode.Conflict, "invalid_state_transition");

        // A canceled subscription restarts with a new period, charged at once. (Not in the same instant as the
        // resume above: the engine would start a second period invoice at the same period start, which the store's
        // unique (subscription, period start) refuses as a 409 conflict.)
        host.Clock.Advance(TimeSpan.FromHours(1));
        var restarted = (await client.Post($"{path}/reactivate")).Ok().Data;
        Assert.Equal("active", restarted.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Cancel_now_with_proration_credits_the_unused_time()
    {
        var client = host.Client();
        var (plan, customer) = await PlanAndCustomer(client, amount: 3000);
        var id = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        (await client.Post($"/v1/subscriptions/{id}/cancel", new { atPeriodEnd = true, prorate = true })).ValidationError("prorate");
        host.Clock.Advance(TimeSpan.FromDays(10));
        (await client.Post($"/v1/subscriptions/{id}/cancel", new { prorate = true })).Ok();
        var credit = (await client.Get($"/v1/customers/{customer}")).Ok().Data.GetProperty("creditBalance").GetInt64();
        Assert.InRange(credit, 1, 2999);
    }

    [Fact]
    public async Task Change_preview_then_apply_with_the_same_proration_date_and_at_period_end()
    {
        var client = host.Client();
        var id = await Active(client);
        var path = $"/v1/subscriptions/{id}";
        host.Clock.Advance(TimeSpan.FromDays(7));
        var at = host.Clock.GetUtcNow();

        var preview = (await client.Post($"{path}/change_preview", new { quantity = 2, prorationDate = at })).Ok().Data;
        Assert.Equal("proration_preview", preview.GetProperty("object").GetString());
        Assert.Equal("create_prorations", preview.GetProperty("prorationBehavior").GetString());
        var credit = preview.GetProperty("credit");
        var debit = preview.GetProperty("debit");
        Assert.True(credit.GetProperty("amount").GetInt64() < 0);
        Assert.True(debit.GetProperty("amount").GetInt64() > 0);
        Assert.Equal(credit.GetProperty("amount").GetInt64() + debit.GetProperty("amount").GetInt64(), preview.GetProperty("net").GetInt64());
        Assert.Equal(3000, credit.GetProperty("formula").GetProperty("fullAmount").GetInt64());
        Assert.Equal(at, credit.GetProperty("from").GetDateTimeOffset());
        Assert.Equal(1, (await client.Get(path)).Ok().Data.GetProperty("quantity").GetInt64());

        var changed = (await client.Post($"{path}/change", new { quantity = 2, prorationDate = at })).Ok().Data;
        Assert.Equal(2, changed.GetProperty("quantity").GetInt64());

        var later = (await client.Post($"{path}/change", new { quantity = 5, atPeriodEnd = true })).Ok().Data;
        Assert.Equal(2, later.GetProperty("quantity").GetInt64());
        Assert.Equal(5, later.GetProperty("pendingChange").GetProperty("quantity").GetInt64());

        (await client.Post($"{path}/change", new { })).ValidationError("planId");
        (await client.Post($"{path}/change", new { quantity = 0 })).ValidationError("quantity");
        (await client.Post($"{path}/change", new { quantity = 3, prorationBehavior = "sometimes" })).ValidationError("prorationBehavior");
        (await client.Post($"{path}/change_preview", new { quantity = 3, atPeriodEnd = true })).ValidationError("atPeriodEnd");
        (await client.Post($"{path}/change_preview", new { quantity = 3, prorationDate = at.AddYears(1) })).ValidationError("prorationDate");
        (await client.Post($"{path}/change", new { planId = "plan_missing" })).Problem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task List_filters_by_customer_and_status()
    {
        var client = host.Client();
        var (plan, customer) = await PlanAndCustomer(client, trialDays: 5);
        var trialing = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        var active = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan, trialDays = 0 })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();

        var mine = (await client.Get($"/v1/subscriptions?customer={customer}")).Ok();
        Assert.Equal([active, trialing], mine.Data.EnumerateArray().Select(s => s.GetProperty("id").GetString()));
        Assert.False(mine.Json.GetProperty("hasMore").GetBoolean());
        var onlyTrialing = (await client.Get($"/v1/subscriptions?customer={customer}&status=trialing")).Ok().Data;
        Assert.Equal([trialing], onlyTrialing.EnumerateArray().Select(s => s.GetProperty("id").GetString()));
        var page = (await client.Get($"/v1/subscriptions?customer={customer}&limit=1")).Ok();
        Assert.True(page.Json.GetProperty("hasMore").GetBoolean());
        var next = (await client.Get($"/v1/subscriptions?customer={customer}&limit=1&starting_after={active}")).Ok();
        Assert.Equal(trialing, next.Data[0].GetProperty("id").GetString());
        Assert.False(next.Json.GetProperty("hasMore").GetBoolean());

        (await client.Get("/v1/subscriptions?status=sleeping")).ValidationError("status");
        (await client.Get("/v1/subscriptions?limit=0")).ValidationError("limit");
    }

    [Fact]
    public async Task Needs_a_key_and_the_right_scope()
    {
        var admin = host.Client();
        var id = await Active(admin);
        var anonymous = host.Client(null);
        (await anonymous.Get("/v1/subscriptions")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Get($"/v1/subscriptions/{id}")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await anonymous.Post($"/v1/subscriptions/{id}/cancel")).Problem(HttpStatusCode.Unauthorized, "authentication_required");

        var reader = host.Client(await admin.CreateKey("billing:read"));
        (await reader.Get($"/v1/subscriptions/{id}")).Ok();
        (await reader.Post($"/v1/subscriptions/{id}/change_preview", new { quantity = 2 })).Ok();
        (await reader.Post("/v1/subscriptions", new { customerId = "cus_x", planId = "plan_x" })).Problem(HttpStatusCode.Forbidden, "forbidden");
        foreach (var action in new[] { "cancel", "reactivate", "pause", "resume" })
        {
            (await reader.Post($"/v1/subscriptions/{id}/{action}")).Problem(HttpStatusCode.Forbidden, "forbidden");
        }

        (await reader.Post($"/v1/subscriptions/{id}/change", new { quantity = 2 })).Problem(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal("active", (await admin.Get($"/v1/subscriptions/{id}")).Ok().Data.GetProperty("status").GetString());
    }
}
