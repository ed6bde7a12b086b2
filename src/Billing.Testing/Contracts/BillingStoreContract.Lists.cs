using Billing.Catalog;
using Billing.Customers;
using Billing.Ports;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace Billing.Testing.Contracts;

// The newest-first, cursor-paged lists of plans and customers (IPlanStore.ListAsync, ICustomerStore.ListAsync).
public abstract partial class BillingStoreContract
{
    /// <summary>How many generated cases the list paging property runs; each case gets a new store from
    /// <see cref="CreateStoreAsync"/> (override to run fewer where creating a store is slow).</summary>
    protected virtual int ListPropertyTests => 30;

    /// <summary>
    /// For any set of plans and customers (creation times with many ties, ids in any order, any archived flags and
    /// emails) and any page size, walking the pages of every list (unfiltered and filtered) yields every matching row
    /// exactly once, newest first with ties by id descending; every page but the last is full and says more follow.
    /// </summary>
    [Fact]
    public void For_any_rows_and_page_size_walking_the_pages_yields_every_row_exactly_once_in_order()
    {
        var row =
            from id in Gen.Choose(0, 999)
            from quarterSecond in Gen.Choose(0, 7)
            from flag in Gen.Elements(false, true)
            from email in Gen.Choose(0, 2)
            select new ListRow(id, quarterSecond, flag, email);
        var input = Gen.ListOf(row).Select(rows => rows.DistinctBy(r => r.Id).ToArray()).Zip(Gen.Choose(1, 7));
        Prop.ForAll(input.ToArbitrary(), x => CheckListWalkAsync(x.Item1, x.Item2).GetAwaiter().GetResult())
            .Check(Config.QuickThrowOnFailure.WithMaxTest(ListPropertyTests).WithEndSize(40));
    }

    /// <summary>A cursor that names no record fails with <see cref="BillingNotFoundException"/> naming it.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task List_cursor_that_names_no_record_throws_BillingNotFoundException()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Plans.Add(NewPlan("plan_1"));
            s.Customers.Add(NewCustomer("cus_1"));
        });

        await using var session = await store.BeginAsync();
        var plan = await Assert.ThrowsAsync<BillingNotFoundException>(async () => await session.Plans.ListAsync(new PageRequest { StartingAfter = "plan_missing" }));
        Assert.Equal(("plan", "plan_missing"), (plan.ObjectType, plan.Id));
        var customer = await Assert.ThrowsAsync<BillingNotFoundException>(async () => await session.Customers.ListAsync(new PageRequest { StartingAfter = "cus_missing" }));
        Assert.Equal(("customer", "cus_missing"), (customer.ObjectType, customer.Id));

        // A customer id is no plan cursor.
        await Assert.ThrowsAsync<BillingNotFoundException>(async () => await session.Plans.ListAsync(new PageRequest { StartingAfter = "cus_1" }));
    }

    /// <summary>A page size outside 1–100 fails with <see cref="BillingValidationException"/> on <c>limit</c>.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task List_limit_outside_1_to_100_throws_BillingValidationException()
    {
        var store = await CreateStoreAsync();
        await using var session = await store.BeginAsync();
        foreach (var limit in new[] { 0, -1, 101 })
        {
            Assert.Equal("limit", (await Assert.ThrowsAsync<BillingValidationException>(async () => await session.Plans.ListAsync(new PageRequest { Limit = limit }))).Field);
            Assert.Equal("limit", (await Assert.ThrowsAsync<BillingValidationException>(async () => await session.Customers.ListAsync(new PageRequest { Limit = limit }))).Field);
        }

        Assert.Empty((await session.Plans.ListAsync(new PageRequest { Limit = 100 })).Items);
    }

    /// <summary>The cursor is a position: it may name a record that the filter leaves out.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task List_cursor_may_name_a_record_the_filter_leaves_out()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Plans.Add(NewPlan("plan_a") with { CreatedAt = T0 });
            s.Plans.Add(NewPlan("plan_b") with { CreatedAt = T0.AddSeconds(1), Archived = true });
            s.Plans.Add(NewPlan("plan_c") with { CreatedAt = T0.AddSeconds(2) });
            s.Customers.Add(NewCustomer("cus_a") with { CreatedAt = T0, Email = "a@example.com" });
            s.Customers.Add(NewCustomer("cus_b") with { CreatedAt = T0.AddSeconds(1), Email = "b@example.com" });
            s.Customers.Add(NewCustomer("cus_c") with { CreatedAt = T0.AddSeconds(2), Email = "a@example.com" });
        });

        await using var session = await store.BeginAsync();
        var active = await session.Plans.ListAsync(new PageRequest { StartingAfter = "plan_b" }, archived: false);
        Assert.Equal(["plan_a"], active.Items.Select(p => p.Id));
        Assert.False(active.HasMore);
        var byEmail = await session.Customers.ListAsync(new PageRequest { StartingAfter = "cus_b" }, email: "a@example.com");
        Assert.Equal(["cus_a"], byEmail.Items.Select(c => c.Id));
        Assert.Equal(["cus_c", "cus_a"], (await session.Customers.ListAsync(new PageRequest(), email: "a@example.com")).Items.Select(c => c.Id));
        Assert.Empty((await session.Customers.ListAsync(new PageRequest(), email: "A@example.com")).Items);
        Assert.Equal(["plan_b"], (await session.Plans.ListAsync(new PageRequest(), archived: true)).Items.Select(p => p.Id));
    }

    /// <summary>A session's lists include its own uncommitted adds and reflect its uncommitted updates, with an exact
    /// <c>HasMore</c>.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_sessions_plan_and_customer_lists_include_its_own_uncommitted_writes()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            for (var i = 0; i < 4; i++)
            {
                s.Plans.Add(NewPlan($"plan_{i}") with { CreatedAt = T0.AddSeconds(i) });
                s.Customers.Add(NewCustomer($"cus_{i}") with { CreatedAt = T0.AddSeconds(i) });
            }
        });

        await using var session = await store.BeginAsync();
        session.Plans.Add(NewPlan("plan_new") with { CreatedAt = T0.AddSeconds(10) });
        var archived = await session.Plans.GetAsync("plan_3");
        session.Plans.Update(archived! with { Archived = true });
        var renamed = await session.Customers.GetAsync("cus_2");
        session.Customers.Update(renamed! with { Email = "moved@example.com" });
        session.Customers.Add(NewCustomer("cus_new") with { CreatedAt = T0.AddSeconds(-1) });

        var first = await session.Plans.ListAsync(new PageRequest { Limit = 2 }, archived: false);
        Assert.Equal(["plan_new", "plan_2"], first.Items.Select(p => p.Id));
        Assert.True(first.HasMore);
        var second = await session.Plans.ListAsync(new PageRequest { Limit = 2, StartingAfter = "plan_2" }, archived: false);
        Assert.Equal(["plan_1", "plan_0"], second.Items.Select(p => p.Id));
        Assert.False(second.HasMore);
        Assert.Equal(["plan_3"], (await session.Plans.ListAsync(new PageRequest(), archived: true)).Items.Select(p => p.Id));

        var customers = await session.Customers.ListAsync(new PageRequest { Limit = 5 });
        Assert.Equal(["cus_3", "cus_2", "cus_1", "cus_0", "cus_new"], customers.Items.Select(c => c.Id));
        Assert.False(customers.HasMore);
        Assert.Equal(["cus_2"], (await session.Customers.ListAsync(new PageRequest(), email: "moved@example.com")).Items.Select(c => c.Id));
        Assert.Empty((await session.Customers.ListAsync(new PageRequest(), email: "cus_2@example.com")).Items);
        Assert.Equal(["cus_0", "cus_new"], (await session.Customers.ListAsync(new PageRequest { StartingAfter = "cus_1" })).Items.Select(c => c.Id));
    }

    private async Task<bool> CheckListWalkAsync(ListRow[] rows, int limit)
    {
        var store = await CreateStoreAsync();
        if (rows.Length > 0)
        {
            await CommitAsync(store, s =>
            {
                foreach (var r in rows)
                {
                    s.Plans.Add(NewPlan(r.PlanId) with { CreatedAt = r.CreatedAt, Archived = r.Flag });
                    s.Customers.Add(NewCustomer(r.CustomerId) with { CreatedAt = r.CreatedAt, Email = r.Email });
                }
            });
        }

        static IEnumerable<ListRow> Ordered(IEnumerable<ListRow> rows) =>
            rows.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id, StringComparer.Ordinal);

        foreach (var archived in new bool?[] { null, false, true })
        {
            var expected = Ordered(rows.Where(r => archived is null || r.Flag == archived)).Select(r => r.PlanId);
            var walked = await WalkAsync<Plan>(store, limit, (s, page) => s.Plans.ListAsync(page, archived), p => p.Id);
            Assert.Equal(expected, walked);
        }

        foreach (var email in new string?[] { null, ListRow.EmailOf(1) })
        {
            var expected = Ordered(rows.Where(r => email is null || r.Email == email)).Select(r => r.CustomerId);
            var walked = await WalkAsync<Customer>(store, limit, (s, page) => s.Customers.ListAsync(page, email), c => c.Id);
            Assert.Equal(expected, walked);
        }

        return true;
    }

    /// <summary>Reads every page, each in its own session, checking that full pages say more follow.</summary>
    private static async Task<List<string>> WalkAsync<T>(IBillingStore store, int limit, Func<IBillingSession, PageRequest, ValueTask<ListPage<T>>> list, Func<T, string> id)
    {
        var ids = new List<string>();
        string? after = null;
        for (var pages = 0; ; pages++)
        {
            Assert.True(pages <= 1000 / limit + 1, "The walk does not end.");
            await using var session = await store.BeginAsync();
            var page = await list(session, new PageRequest { Limit = limit, StartingAfter = after });
            Assert.True(page.Items.Count <= limit);
            ids.AddRange(page.Items.Select(id));
            if (!page.HasMore)
            {
                return ids;
            }

            Assert.Equal(limit, page.Items.Count);
            after = id(page.Items[^1]);
        }
    }

    /// <summary>A generated row: one plan and one customer share its id number and creation time.</summary>
    private sealed record ListRow(int Number, int QuarterSecond, bool Flag, int EmailNumber)
    {
        // Zero-padded and unpadded numbers mixed, so that id order differs from number order.
        public string Id => Number % 2 == 0 ? $"{Number:D3}" : Number.ToString(System.Globalization.CultureInfo.InvariantCulture);

        public string PlanId => $"plan_{Id}";

        public string CustomerId => $"cus_{Id}";

        public DateTimeOffset CreatedAt => T0.AddMilliseconds(250 * QuarterSecond);

        public string Email => EmailOf(EmailNumber);

        public static string EmailOf(int n) => $"person{n}@example.com";
    }
}
