using Billing.Engine;
using Billing.Ports;

namespace Billing.Tests.Engine;

public sealed class ListTests
{
    [Fact]
    public async Task Plans_and_customers_page_newest_first_with_filters()
    {
        var h = new EngineHarness();
        var plans = new List<string>();
        var customers = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            plans.Add((await h.MonthlyPlanAsync(1000 + i, $"Plan {i}")).Id);
            customers.Add((await h.Engine.CreateCustomerAsync(new NewCustomer($"C{i}", i % 2 == 0 ? "even@example.com" : "odd@example.com", Currency.USD))).Id);
            h.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await h.Engine.ArchivePlanAsync(plans[1]);

        var first = await h.Engine.ListPlansAsync(new PageRequest { Limit = 2 });
        Assert.Equal([plans[4], plans[3]], first.Items.Select(p => p.Id));
        Assert.True(first.HasMore);
        var rest = await h.Engine.ListPlansAsync(new PageRequest { Limit = 100, StartingAfter = plans[3] });
        Assert.Equal([plans[2], plans[1], plans[0]], rest.Items.Select(p => p.Id));
        Assert.False(rest.HasMore);
        Assert.Equal([plans[1]], (await h.Engine.ListPlansAsync(archived: true)).Items.Select(p => p.Id));
        Assert.Equal([plans[0]], (await h.Engine.ListPlansAsync(new PageRequest { StartingAfter = plans[1] }, archived: false)).Items.Select(p => p.Id));

        Assert.Equal(customers.AsEnumerable().Reverse(), (await h.Engine.ListCustomersAsync()).Items.Select(c => c.Id));
        Assert.Equal([customers[4], customers[2], customers[0]], (await h.Engine.ListCustomersAsync(email: "even@example.com")).Items.Select(c => c.Id));
        Assert.Empty((await h.Engine.ListCustomersAsync(email: "EVEN@example.com")).Items);
    }

    [Fact]
    public async Task A_cursor_that_names_nothing_or_a_limit_out_of_range_is_a_validation_error()
    {
        var h = new EngineHarness();
        var plan = await h.MonthlyPlanAsync(1000);

        var missing = await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.ListPlansAsync(new PageRequest { StartingAfter = "plan_missing" }));
        Assert.Equal("starting_after", missing.Field);
        Assert.Contains("plan_missing", missing.Message, StringComparison.Ordinal);
        Assert.Equal("starting_after", (await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.ListCustomersAsync(new PageRequest { StartingAfter = plan.Id }))).Field);
        Assert.Equal("limit", (await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.ListPlansAsync(new PageRequest { Limit = 0 }))).Field);
        Assert.Equal("limit", (await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.ListCustomersAsync(new PageRequest { Limit = 101 }))).Field);
        Assert.Equal("starting_after", (await Assert.ThrowsAsync<BillingValidationException>(() => h.Engine.ListPlansAsync(new PageRequest { StartingAfter = string.Empty }))).Field);
    }
}
