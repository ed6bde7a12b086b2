using System.Collections.Concurrent;
using System.Globalization;
using Billing.Catalog;
using Billing.Customers;
using Billing.Dunning;
using Billing.Events;
using Billing.Invoices;
using Billing.Payments;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Subscriptions;
using Xunit;

namespace Billing.Testing.Contracts;

/// <summary>
/// The contract every <see cref="IBillingStore"/> adapter must pass: inherit it in the adapter's test project and
/// return a fresh, empty store from <see cref="CreateStoreAsync"/>.
/// </summary>
/// <remarks>
/// Covers versions, read-your-writes, rollback, atomic commits, optimistic concurrency, unique keys, gap-free
/// numbering, the outbox, the due and list queries, idempotency records, and a short parallel stress run. Times are
/// whole seconds in UTC so that database adapters round-trip them exactly.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Test names read as sentences.")]
public abstract partial class BillingStoreContract
{
    private const string Sequence = "INV";

    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Creates a new, empty store; called once per test.</summary>
    /// <returns>The store.</returns>
    protected abstract ValueTask<IBillingStore> CreateStoreAsync();

    // ---------------------------------------------------------------- versions and round trips (every store)

    /// <summary>A committed customer reads back in a new session at version 1; an update makes version 2; a stale update fails.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public Task Customers_round_trip_at_version_1_update_to_version_2_and_reject_stale_updates() =>
        AssertLifecycleAsync(
            NewCustomer("cus_1"),
            (c, n) => c with { Name = $"Renamed {n}", CreditBalance = new Money(-100 * n, Currency.USD), TestClockId = $"clk_{n}" },
            (s, c) => s.Customers.Add(c),
            (s, c) => s.Customers.Update(c),
            (s, id) => s.Customers.GetAsync(id),
            c => c.Id,
            c => c.Version,
            AssertSameCustomer);

    /// <summary>A committed plan reads back in a new session at version 1; an update makes version 2; a stale update fails.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public Task Plans_round_trip_at_version_1_update_to_version_2_and_reject_stale_updates() =>
        AssertLifecycleAsync(
            NewPlan("plan_1"),
            (p, n) => p with { Name = $"Renamed {n}", Archived = true, TrialDays = n },
            (s, p) => s.Plans.Add(p),
            (s, p) => s.Plans.Update(p),
            (s, id) => s.Plans.GetAsync(id),
            p => p.Id,
            p => p.Version,
            AssertSamePlan);

    /// <summary>A committed subscription reads back in a new session at version 1; an update makes version 2; a stale update fails.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public Task Subscriptions_round_trip_at_version_1_update_to_version_2_and_reject_stale_updates() =>
        AssertLifecycleAsync(
            NewSubscription("sub_1", nextActionAt: T0.AddDays(30)),
            (s, n) => s with { Quantity = 1 + n, Status = SubscriptionStatus.PastDue, NextActionAt = T0.AddDays(n), CancelAtPeriodEnd = true },
            (s, x) => s.Subscriptions.Add(x),
            (s, x) => s.Subscriptions.Update(x),
            (s, id) => s.Subscriptions.GetAsync(id),
            x => x.Id,
            x => x.Version,
            AssertSameSubscription);

    /// <summary>A committed invoice reads back in a new session at version 1; an update (same dedup key) makes version 2; a stale update fails.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public Task Invoices_round_trip_at_version_1_update_to_version_2_and_reject_stale_updates() =>
        AssertLifecycleAsync(
            NewInvoice("inv_1", subscriptionId: "sub_1", nextActionAt: T0.AddHours(1)) with { Number = "INV-1" },
            (i, n) => i with { Status = InvoiceStatus.Paid, AmountPaid = new Money(100 * n, Currency.USD), PaymentAttempts = n, ClosedAt = T0.AddHours(n) },
            (s, i) => s.Invoices.Add(i),
            (s, i) => s.Invoices.Update(i),
            (s, id) => s.Invoices.GetAsync(id),
            i => i.Id,
            i => i.Version,
            AssertSameInvoice);

    /// <summary>A committed payment reads back in a new session at version 1; an update (same idempotency key) makes version 2; a stale update fails.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public Task Payments_round_trip_at_version_1_update_to_version_2_and_reject_stale_updates() =>
        AssertLifecycleAsync(
            NewPayment("pay_1", "inv_1", 1),
            (p, n) => p with { Status = PaymentStatus.Succeeded, GatewayPaymentId = $"gw_{n}", RefundCount = n },
            (s, p) => s.Payments.Add(p),
            (s, p) => s.Payments.Update(p),
            (s, id) => s.Payments.GetAsync(id),
            p => p.Id,
            p => p.Version,
            AssertSamePayment);

    /// <summary>A committed test clock reads back in a new session at version 1; an update makes version 2; a stale update fails.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public Task Test_clocks_round_trip_at_version_1_update_to_version_2_and_reject_stale_updates() =>
        AssertLifecycleAsync(
            NewClock("clk_1"),
            (c, n) => c with { FrozenTime = c.FrozenTime.AddHours(n), Name = $"Renamed {n}" },
            (s, c) => s.TestClocks.Add(c),
            (s, c) => s.TestClocks.Update(c),
            (s, id) => s.TestClocks.GetAsync(id),
            c => c.Id,
            c => c.Version,
            AssertSameClock);

    /// <summary>The store sets version 1 on add, whatever version the caller passed.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Add_stores_version_1_whatever_version_is_passed()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Customers.Add(NewCustomer("cus_1") with { Version = 7 });
            s.Plans.Add(NewPlan("plan_1") with { Version = 7 });
            s.Subscriptions.Add(NewSubscription("sub_1") with { Version = 7 });
            s.Invoices.Add(NewInvoice("inv_1") with { Version = 7 });
            s.Payments.Add(NewPayment("pay_1", "inv_1", 1) with { Version = 7 });
            s.TestClocks.Add(NewClock("clk_1") with { Version = 7 });
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(1, (await session.Customers.GetAsync("cus_1"))?.Version);
        Assert.Equal(1, (await session.Plans.GetAsync("plan_1"))?.Version);
        Assert.Equal(1, (await session.Subscriptions.GetAsync("sub_1"))?.Version);
        Assert.Equal(1, (await session.Invoices.GetAsync("inv_1"))?.Version);
        Assert.Equal(1, (await session.Payments.GetAsync("pay_1"))?.Version);
        Assert.Equal(1, (await session.TestClocks.GetAsync("clk_1"))?.Version);
    }

    /// <summary>A record added and then updated in the same session is stored once, at version 1, with the updated data.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_record_added_and_updated_in_one_session_is_stored_at_version_1()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            var subscription = NewSubscription("sub_1");
            s.Subscriptions.Add(subscription);
            s.Subscriptions.Update(subscription with { Quantity = 5 });
        });

        var stored = await ReadAsync(store, s => s.Subscriptions.GetAsync("sub_1"));
        Assert.NotNull(stored);
        Assert.Equal(1, stored.Version);
        Assert.Equal(5, stored.Quantity);
    }

    // ---------------------------------------------------------------- sessions: read-your-writes, isolation, rollback

    /// <summary>Reads inside a session see its own uncommitted adds and updates.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_session_reads_its_own_uncommitted_writes()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Subscriptions.Add(NewSubscription("sub_1")));

        await using var session = await store.BeginAsync();
        session.Customers.Add(NewCustomer("cus_new"));
        session.Plans.Add(NewPlan("plan_new"));
        session.Invoices.Add(NewInvoice("inv_new", dedupKey: "dk_new"));
        session.Payments.Add(NewPayment("pay_new", "inv_new", 1, idempotencyKey: "pk_new"));
        session.TestClocks.Add(NewClock("clk_new"));
        session.Idempotency.Add(NewRecord("scope", "key", "pending"));
        var read = await session.Subscriptions.GetAsync("sub_1");
        Assert.NotNull(read);
        session.Subscriptions.Update(read with { Quantity = 9 });

        Assert.Equal("cus_new", (await session.Customers.GetAsync("cus_new"))?.Id);
        Assert.Equal("plan_new", (await session.Plans.GetAsync("plan_new"))?.Id);
        Assert.Equal("inv_new", (await session.Invoices.GetAsync("inv_new"))?.Id);
        Assert.Equal("inv_new", (await session.Invoices.GetByDedupKeyAsync("dk_new"))?.Id);
        Assert.Equal("pay_new", (await session.Payments.GetAsync("pay_new"))?.Id);
        Assert.Equal("pay_new", (await session.Payments.GetByIdempotencyKeyAsync("pk_new"))?.Id);
        Assert.Equal("clk_new", (await session.TestClocks.GetAsync("clk_new"))?.Id);
        Assert.Equal("pending", (await session.Idempotency.GetAsync("scope", "key"))?.Response);
        Assert.Equal(9, (await session.Subscriptions.GetAsync("sub_1"))?.Quantity);
    }

    /// <summary>The list queries inside a session include its own uncommitted adds and reflect its uncommitted updates.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_sessions_list_queries_include_its_own_uncommitted_writes()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Subscriptions.Add(NewSubscription("sub_a", "cus_1", nextActionAt: T0.AddHours(-2)));
            s.Invoices.Add(NewInvoice("inv_a", subscriptionId: "sub_a", nextActionAt: T0.AddHours(-2), createdAt: T0));
        });

        await using var session = await store.BeginAsync();
        session.Customers.Add(NewCustomer("cus_new", testClockId: "clk_1"));
        session.Subscriptions.Add(NewSubscription("sub_b", "cus_1", nextActionAt: T0.AddHours(-1)));
        session.Invoices.Add(NewInvoice("inv_b", subscriptionId: "sub_a", nextActionAt: T0.AddHours(-1), createdAt: T0.AddSeconds(1)));
        session.Payments.Add(NewPayment("pay_new", "inv_a", 1));

        // An uncommitted update that makes a committed row not due hides it from this session's due query.
        var committed = await session.Subscriptions.GetAsync("sub_a");
        Assert.NotNull(committed);
        session.Subscriptions.Update(committed with { NextActionAt = null });

        Assert.Equal(["cus_new"], Ids(await session.Customers.ListByTestClockAsync("clk_1")));
        Assert.Equal(["sub_a", "sub_b"], Ids(await session.Subscriptions.ListByCustomerAsync("cus_1")));
        Assert.Equal(["sub_b"], Ids(await session.Subscriptions.ListDueAsync(T0, null, 10)));
        Assert.Equal(["inv_a", "inv_b"], Ids(await session.Invoices.ListBySubscriptionAsync("sub_a")));
        Assert.Equal(["inv_a", "inv_b"], Ids(await session.Invoices.ListDueAsync(T0, null, 10)));
        Assert.Equal(["pay_new"], Ids(await session.Payments.ListByInvoiceAsync("inv_a")));
    }

    /// <summary>Nothing a session writes is visible to another session before it commits; all of it is after.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Uncommitted_writes_are_invisible_to_other_sessions_until_commit()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Subscriptions.Add(NewSubscription("sub_1")));

        await using (var writer = await store.BeginAsync())
        {
            await WriteOneOfEverythingAsync(writer);
            var read = await writer.Subscriptions.GetAsync("sub_1");
            Assert.NotNull(read);
            writer.Subscriptions.Update(read with { Quantity = 9 });

            await using (var other = await store.BeginAsync())
            {
                await AssertNothingOfEverythingAsync(other);
                Assert.Equal(1, (await other.Subscriptions.GetAsync("sub_1"))?.Quantity);
            }

            await writer.CommitAsync();
        }

        await using var after = await store.BeginAsync();
        Assert.NotNull(await after.Customers.GetAsync("cus_x"));
        Assert.NotNull(await after.Plans.GetAsync("plan_x"));
        Assert.NotNull(await after.Invoices.GetByDedupKeyAsync("dk_x"));
        Assert.NotNull(await after.Payments.GetByIdempotencyKeyAsync("pk_x"));
        Assert.NotNull(await after.TestClocks.GetAsync("clk_x"));
        Assert.NotNull(await after.Idempotency.GetAsync("scope_x", "key_x"));
        Assert.Equal(["evt_x"], EventIds(await after.Outbox.ReadAsync(0, 100)));
        Assert.Equal(9, (await after.Subscriptions.GetAsync("sub_1"))?.Quantity);
        Assert.Equal(2, await after.Invoices.NextNumberAsync(Sequence));
    }

    /// <summary>A session disposed without commit rolls back: none of its writes, events or numbers are kept.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Disposing_a_session_without_commit_rolls_back_everything()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Subscriptions.Add(NewSubscription("sub_1")));

        await using (var session = await store.BeginAsync())
        {
            await WriteOneOfEverythingAsync(session);
            var read = await session.Subscriptions.GetAsync("sub_1");
            Assert.NotNull(read);
            session.Subscriptions.Update(read with { Quantity = 9 });
        }

        await using var after = await store.BeginAsync();
        await AssertNothingOfEverythingAsync(after);
        var subscription = await after.Subscriptions.GetAsync("sub_1");
        Assert.Equal(1, subscription?.Quantity);
        Assert.Equal(1, subscription?.Version);
        Assert.Equal(1, await after.Invoices.NextNumberAsync(Sequence));
    }

    /// <summary>A session commits once; a second commit throws <see cref="InvalidOperationException"/> and writes nothing more.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Committing_a_session_twice_throws_InvalidOperationException()
    {
        var store = await CreateStoreAsync();
        await using (var session = await store.BeginAsync())
        {
            session.Outbox.Append(NewEvent("evt_1"));
            await session.CommitAsync();
            var error = await Assert.ThrowsAnyAsync<InvalidOperationException>(async () => await session.CommitAsync());

            // "Already committed", not a replay of the writes that then trips over its own rows.
            Assert.IsNotType<DuplicateKeyException>(error);
            Assert.IsNotType<ConcurrencyConflictException>(error);
        }

        Assert.Equal(["evt_1"], EventIds(await ReadAsync(store, s => s.Outbox.ReadAsync(0, 100))));
    }

    // ---------------------------------------------------------------- atomicity

    /// <summary>
    /// A commit that fails on any duplicate (id, dedup key, idempotency key, event id, idempotency record) writes
    /// nothing: none of the session's other adds, updates, events, records or numbers.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_commit_failing_with_a_duplicate_key_writes_nothing()
    {
        var store = await CreateStoreAsync();
        await CommitExistingRowsAsync(store);
        Action<IBillingSession>[] duplicates =
        [
            s => s.Customers.Add(NewCustomer("cus_1")),
            s => s.Invoices.Add(NewInvoice("inv_dup", dedupKey: "dk_1")),
            s => s.Payments.Add(NewPayment("pay_dup", "inv_1", 2, idempotencyKey: "pk_1")),
            s => s.Outbox.Append(NewEvent("evt_1")),
            s => s.Idempotency.Add(NewRecord("scope", "key_1", "again")),
        ];

        foreach (var duplicate in duplicates)
        {
            await AssertCommitFailsAsync<DuplicateKeyException>(store, async s =>
            {
                await WriteAlongsideAsync(s);
                duplicate(s);
            });
            await AssertNothingWrittenAlongsideAsync(store);
        }
    }

    /// <summary>A commit that fails on a stale or missing update writes nothing: none of the session's other adds, updates, events, records or numbers.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_commit_failing_with_a_concurrency_conflict_writes_nothing()
    {
        var store = await CreateStoreAsync();
        await CommitExistingRowsAsync(store);
        var stale = await ReadAsync(store, s => s.Subscriptions.GetAsync("sub_1"));
        Assert.NotNull(stale);
        await UpdateSubscriptionAsync(store, "sub_1", s => s with { Quantity = 2 });
        Action<IBillingSession>[] conflicts =
        [
            s => s.Subscriptions.Update(stale with { Quantity = 3 }),
            s => s.Plans.Update(NewPlan("plan_missing") with { Version = 1 }),
        ];

        foreach (var conflict in conflicts)
        {
            await AssertCommitFailsAsync<ConcurrencyConflictException>(store, async s =>
            {
                await WriteAlongsideAsync(s);
                conflict(s);
            });
            await AssertNothingWrittenAlongsideAsync(store);
            var subscription = await ReadAsync(store, s => s.Subscriptions.GetAsync("sub_1"));
            Assert.Equal(2, subscription?.Quantity);
            Assert.Equal(2, subscription?.Version);
        }
    }

    // ---------------------------------------------------------------- optimistic concurrency

    /// <summary>Two sessions update the same subscription read at version 1: the first commit wins, the second conflicts and changes nothing.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Of_two_sessions_updating_the_same_record_the_first_commit_wins()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Subscriptions.Add(NewSubscription("sub_1")));

        await using var first = await store.BeginAsync();
        await using var second = await store.BeginAsync();
        var readByFirst = await first.Subscriptions.GetAsync("sub_1");
        var readBySecond = await second.Subscriptions.GetAsync("sub_1");
        Assert.Equal(1, readByFirst?.Version);
        Assert.Equal(1, readBySecond?.Version);

        first.Subscriptions.Update(readByFirst! with { Quantity = 2 });
        second.Subscriptions.Update(readBySecond! with { Quantity = 3 });
        await first.CommitAsync();
        var conflict = await Assert.ThrowsAsync<ConcurrencyConflictException>(async () => await second.CommitAsync());
        Assert.Equal("sub_1", conflict.Id);

        var stored = await ReadAsync(store, s => s.Subscriptions.GetAsync("sub_1"));
        Assert.Equal(2, stored?.Quantity);
        Assert.Equal(2, stored?.Version);
    }

    /// <summary>Updating a record that was never added fails at commit with <see cref="ConcurrencyConflictException"/> in every store.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Updating_a_record_that_does_not_exist_fails_with_ConcurrencyConflictException()
    {
        var store = await CreateStoreAsync();
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => s.Customers.Update(NewCustomer("cus_missing") with { Version = 1 }));
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => s.Plans.Update(NewPlan("plan_missing") with { Version = 1 }));
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => s.Subscriptions.Update(NewSubscription("sub_missing") with { Version = 1 }));
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => s.Invoices.Update(NewInvoice("inv_missing") with { Version = 1 }));
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => s.Payments.Update(NewPayment("pay_missing", "inv_1", 1) with { Version = 1 }));
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => s.TestClocks.Update(NewClock("clk_missing") with { Version = 1 }));

        await using var after = await store.BeginAsync();
        Assert.Null(await after.Customers.GetAsync("cus_missing"));
        Assert.Null(await after.Plans.GetAsync("plan_missing"));
        Assert.Null(await after.Subscriptions.GetAsync("sub_missing"));
        Assert.Null(await after.Invoices.GetAsync("inv_missing"));
        Assert.Null(await after.Payments.GetAsync("pay_missing"));
        Assert.Null(await after.TestClocks.GetAsync("clk_missing"));
    }

    // ---------------------------------------------------------------- unique keys

    /// <summary>Adding an id that is committed, or twice in one session, is rejected with <see cref="DuplicateKeyException"/> in every store.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Duplicate_ids_are_rejected_in_every_store()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Customers.Add(NewCustomer("cus_1"));
            s.Plans.Add(NewPlan("plan_1"));
            s.Subscriptions.Add(NewSubscription("sub_1"));
            s.Invoices.Add(NewInvoice("inv_1", dedupKey: "dk_1"));
            s.Payments.Add(NewPayment("pay_1", "inv_1", 1, idempotencyKey: "pk_1"));
            s.TestClocks.Add(NewClock("clk_1"));
        });

        // Against a committed row (unique keys differ, so only the id collides).
        await AssertDuplicateRejectedAsync(store, s => s.Customers.Add(NewCustomer("cus_1") with { Name = "Other" }));
        await AssertDuplicateRejectedAsync(store, s => s.Plans.Add(NewPlan("plan_1") with { Name = "Other" }));
        await AssertDuplicateRejectedAsync(store, s => s.Subscriptions.Add(NewSubscription("sub_1") with { Quantity = 7 }));
        await AssertDuplicateRejectedAsync(store, s => s.Invoices.Add(NewInvoice("inv_1", dedupKey: "dk_other")));
        await AssertDuplicateRejectedAsync(store, s => s.Payments.Add(NewPayment("pay_1", "inv_1", 2, idempotencyKey: "pk_other")));
        await AssertDuplicateRejectedAsync(store, s => s.TestClocks.Add(NewClock("clk_1", T0.AddDays(1))));

        // Twice in one session.
        await AssertDuplicateRejectedAsync(store, s => { s.Customers.Add(NewCustomer("cus_2")); s.Customers.Add(NewCustomer("cus_2")); });
        await AssertDuplicateRejectedAsync(store, s => { s.Plans.Add(NewPlan("plan_2")); s.Plans.Add(NewPlan("plan_2")); });
        await AssertDuplicateRejectedAsync(store, s => { s.Subscriptions.Add(NewSubscription("sub_2")); s.Subscriptions.Add(NewSubscription("sub_2")); });
        await AssertDuplicateRejectedAsync(store, s => { s.Invoices.Add(NewInvoice("inv_2", dedupKey: "dk_2a")); s.Invoices.Add(NewInvoice("inv_2", dedupKey: "dk_2b")); });
        await AssertDuplicateRejectedAsync(store, s => { s.Payments.Add(NewPayment("pay_2", "inv_1", 2, idempotencyKey: "pk_2a")); s.Payments.Add(NewPayment("pay_2", "inv_1", 2, idempotencyKey: "pk_2b")); });
        await AssertDuplicateRejectedAsync(store, s => { s.TestClocks.Add(NewClock("clk_2")); s.TestClocks.Add(NewClock("clk_2")); });

        await using var after = await store.BeginAsync();
        Assert.Equal("Customer cus_1", (await after.Customers.GetAsync("cus_1"))?.Name);
        Assert.Equal("Plan plan_1", (await after.Plans.GetAsync("plan_1"))?.Name);
        Assert.Equal(1, (await after.Subscriptions.GetAsync("sub_1"))?.Quantity);
        Assert.Equal("dk_1", (await after.Invoices.GetAsync("inv_1"))?.DedupKey);
        Assert.Equal("pk_1", (await after.Payments.GetAsync("pay_1"))?.IdempotencyKey);
        Assert.Equal(T0, (await after.TestClocks.GetAsync("clk_1"))?.FrozenTime);
        Assert.Null(await after.Invoices.GetByDedupKeyAsync("dk_other"));
        Assert.Null(await after.Payments.GetByIdempotencyKeyAsync("pk_other"));
        Assert.Null(await after.Customers.GetAsync("cus_2"));
        Assert.Null(await after.Plans.GetAsync("plan_2"));
        Assert.Null(await after.Subscriptions.GetAsync("sub_2"));
        Assert.Null(await after.Invoices.GetAsync("inv_2"));
        Assert.Null(await after.Payments.GetAsync("pay_2"));
        Assert.Null(await after.TestClocks.GetAsync("clk_2"));
    }

    /// <summary>An invoice whose dedup key is committed, or used twice in one session, is rejected with <see cref="DuplicateKeyException"/>.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_duplicate_invoice_dedup_key_is_rejected()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Invoices.Add(NewInvoice("inv_1", dedupKey: "dk_1")));

        await AssertDuplicateRejectedAsync(store, s => s.Invoices.Add(NewInvoice("inv_2", dedupKey: "dk_1")));
        await AssertDuplicateRejectedAsync(store, s =>
        {
            s.Invoices.Add(NewInvoice("inv_3", dedupKey: "dk_3"));
            s.Invoices.Add(NewInvoice("inv_4", dedupKey: "dk_3"));
        });

        await using var after = await store.BeginAsync();
        Assert.Equal("inv_1", (await after.Invoices.GetByDedupKeyAsync("dk_1"))?.Id);
        Assert.Null(await after.Invoices.GetAsync("inv_2"));
        Assert.Null(await after.Invoices.GetAsync("inv_3"));
        Assert.Null(await after.Invoices.GetAsync("inv_4"));
        Assert.Null(await after.Invoices.GetByDedupKeyAsync("dk_3"));
    }

    /// <summary>A payment whose idempotency key is committed, or used twice in one session, is rejected with <see cref="DuplicateKeyException"/>.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_duplicate_payment_idempotency_key_is_rejected()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Payments.Add(NewPayment("pay_1", "inv_1", 1, idempotencyKey: "pk_1")));

        await AssertDuplicateRejectedAsync(store, s => s.Payments.Add(NewPayment("pay_2", "inv_1", 2, idempotencyKey: "pk_1")));
        await AssertDuplicateRejectedAsync(store, s =>
        {
            s.Payments.Add(NewPayment("pay_3", "inv_1", 3, idempotencyKey: "pk_3"));
            s.Payments.Add(NewPayment("pay_4", "inv_1", 4, idempotencyKey: "pk_3"));
        });

        await using var after = await store.BeginAsync();
        Assert.Equal("pay_1", (await after.Payments.GetByIdempotencyKeyAsync("pk_1"))?.Id);
        Assert.Null(await after.Payments.GetAsync("pay_2"));
        Assert.Null(await after.Payments.GetAsync("pay_3"));
        Assert.Null(await after.Payments.GetAsync("pay_4"));
        Assert.Equal(["pay_1"], Ids(await after.Payments.ListByInvoiceAsync("inv_1")));
    }

    /// <summary>An event whose id is in the outbox, or appended twice in one session, is rejected with <see cref="DuplicateKeyException"/>.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_duplicate_event_id_is_rejected()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Outbox.Append(NewEvent("evt_1")));

        await AssertDuplicateRejectedAsync(store, s =>
        {
            s.Outbox.Append(NewEvent("evt_2"));
            s.Outbox.Append(NewEvent("evt_1"));
        });
        await AssertDuplicateRejectedAsync(store, s =>
        {
            s.Outbox.Append(NewEvent("evt_3"));
            s.Outbox.Append(NewEvent("evt_3"));
        });

        Assert.Equal(["evt_1"], EventIds(await ReadAsync(store, s => s.Outbox.ReadAsync(0, 100))));
    }

    /// <summary>An idempotency record whose (scope, key) is committed, or added twice in one session, is rejected with <see cref="DuplicateKeyException"/>.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_duplicate_idempotency_record_is_rejected()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Idempotency.Add(NewRecord("scope", "key_1", "first")));

        await AssertDuplicateRejectedAsync(store, s => s.Idempotency.Add(NewRecord("scope", "key_1", "second")));
        await AssertDuplicateRejectedAsync(store, s =>
        {
            s.Idempotency.Add(NewRecord("scope", "key_2", "a"));
            s.Idempotency.Add(NewRecord("scope", "key_2", "b"));
        });

        await using var after = await store.BeginAsync();
        Assert.Equal("first", (await after.Idempotency.GetAsync("scope", "key_1"))?.Response);
        Assert.Null(await after.Idempotency.GetAsync("scope", "key_2"));
    }

    /// <summary><see cref="IInvoiceStore.GetByDedupKeyAsync"/> finds committed invoices and this session's pending ones, and nothing else.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task GetByDedupKeyAsync_finds_committed_and_this_sessions_pending_invoices()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Invoices.Add(NewInvoice("inv_1", dedupKey: "dk_1")));

        await using var session = await store.BeginAsync();
        session.Invoices.Add(NewInvoice("inv_2", dedupKey: "dk_2"));
        Assert.Equal("inv_1", (await session.Invoices.GetByDedupKeyAsync("dk_1"))?.Id);
        Assert.Equal("inv_2", (await session.Invoices.GetByDedupKeyAsync("dk_2"))?.Id);
        Assert.Null(await session.Invoices.GetByDedupKeyAsync("dk_unknown"));

        await using var other = await store.BeginAsync();
        Assert.Equal("inv_1", (await other.Invoices.GetByDedupKeyAsync("dk_1"))?.Id);
        Assert.Null(await other.Invoices.GetByDedupKeyAsync("dk_2"));
    }

    /// <summary><see cref="IPaymentStore.GetByIdempotencyKeyAsync"/> finds committed payments and this session's pending ones, and nothing else.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task GetByIdempotencyKeyAsync_finds_committed_and_this_sessions_pending_payments()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Payments.Add(NewPayment("pay_1", "inv_1", 1, idempotencyKey: "pk_1")));

        await using var session = await store.BeginAsync();
        session.Payments.Add(NewPayment("pay_2", "inv_1", 2, idempotencyKey: "pk_2"));
        Assert.Equal("pay_1", (await session.Payments.GetByIdempotencyKeyAsync("pk_1"))?.Id);
        Assert.Equal("pay_2", (await session.Payments.GetByIdempotencyKeyAsync("pk_2"))?.Id);
        Assert.Null(await session.Payments.GetByIdempotencyKeyAsync("pk_unknown"));

        await using var other = await store.BeginAsync();
        Assert.Equal("pay_1", (await other.Payments.GetByIdempotencyKeyAsync("pk_1"))?.Id);
        Assert.Null(await other.Payments.GetByIdempotencyKeyAsync("pk_2"));
    }

    // ---------------------------------------------------------------- numbering

    /// <summary>Numbers count 1, 2, 3 within a session and continue after its commit in the next session.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task NextNumberAsync_counts_from_1_and_continues_across_committed_sessions()
    {
        var store = await CreateStoreAsync();
        await using (var session = await store.BeginAsync())
        {
            Assert.Equal(1, await session.Invoices.NextNumberAsync(Sequence));
            Assert.Equal(2, await session.Invoices.NextNumberAsync(Sequence));
            Assert.Equal(3, await session.Invoices.NextNumberAsync(Sequence));
            await session.CommitAsync();
        }

        await using (var session = await store.BeginAsync())
        {
            Assert.Equal(4, await session.Invoices.NextNumberAsync(Sequence));
            await session.CommitAsync();
        }

        await using var last = await store.BeginAsync();
        Assert.Equal(5, await last.Invoices.NextNumberAsync(Sequence));
    }

    /// <summary>Numbers taken by a rolled-back session, or by a failed commit, are handed out again: committed numbers have no gaps.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Numbers_of_rolled_back_or_failed_sessions_are_reused()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, async s =>
        {
            Assert.Equal(1, await s.Invoices.NextNumberAsync(Sequence));
            s.Invoices.Add(NewInvoice("inv_1", dedupKey: "dk_1"));
        });

        await using (var rolledBack = await store.BeginAsync())
        {
            Assert.Equal(2, await rolledBack.Invoices.NextNumberAsync(Sequence));
            Assert.Equal(3, await rolledBack.Invoices.NextNumberAsync(Sequence));
        }

        await AssertCommitFailsAsync<DuplicateKeyException>(store, async s =>
        {
            Assert.Equal(2, await s.Invoices.NextNumberAsync(Sequence));
            s.Invoices.Add(NewInvoice("inv_2", dedupKey: "dk_1"));
        });

        await CommitAsync(store, async s => Assert.Equal(2, await s.Invoices.NextNumberAsync(Sequence)));
        await using var last = await store.BeginAsync();
        Assert.Equal(3, await last.Invoices.NextNumberAsync(Sequence));
    }

    /// <summary>Each sequence counts on its own.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Number_sequences_are_independent()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, async s =>
        {
            Assert.Equal(1, await s.Invoices.NextNumberAsync("A"));
            Assert.Equal(2, await s.Invoices.NextNumberAsync("A"));
            Assert.Equal(1, await s.Invoices.NextNumberAsync("B"));
            Assert.Equal(3, await s.Invoices.NextNumberAsync("A"));
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(1, await session.Invoices.NextNumberAsync("C"));
        Assert.Equal(2, await session.Invoices.NextNumberAsync("B"));
        Assert.Equal(4, await session.Invoices.NextNumberAsync("A"));
    }

    /// <summary>
    /// Two open sessions both take a number: they never both commit the same one (the second either conflicts or,
    /// in a store that blocks, waits and gets the next number).
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Two_concurrent_sessions_never_commit_the_same_number()
    {
        var store = await CreateStoreAsync();
        await using var first = await store.BeginAsync();
        await using var second = await store.BeginAsync();

        Assert.Equal(1, await first.Invoices.NextNumberAsync(Sequence));

        // A store that locks the sequence row blocks here until the first session ends, so take it on another task;
        // a store that does not block hands it out now, while the first session is still open.
        var secondNumber = Task.Run(async () => await second.Invoices.NextNumberAsync(Sequence));
        await Task.WhenAny(secondNumber, Task.Delay(TimeSpan.FromMilliseconds(500)));
        await first.CommitAsync();
        var number = await secondNumber.WaitAsync(TimeSpan.FromSeconds(30));

        bool secondCommitted;
        try
        {
            await second.CommitAsync();
            secondCommitted = true;
        }
        catch (ConcurrencyConflictException)
        {
            secondCommitted = false;
        }

        // Whoever commits second must not have committed number 1 again.
        if (secondCommitted)
        {
            Assert.Equal(2, number);
        }

        await using var last = await store.BeginAsync();
        Assert.Equal(secondCommitted ? 3 : 2, await last.Invoices.NextNumberAsync(Sequence));
    }

    /// <summary>
    /// Two open sessions number an invoice each: the loser of the race fails with the retryable
    /// <see cref="ConcurrencyConflictException"/> (not a duplicate invoice number), or, in a store that blocks, gets
    /// the next number and commits.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_numbering_race_between_two_invoices_fails_as_a_concurrency_conflict()
    {
        var store = await CreateStoreAsync();
        await using var first = await store.BeginAsync();
        await using var second = await store.BeginAsync();

        var firstNumber = await first.Invoices.NextNumberAsync(Sequence);
        first.Invoices.Add(NewInvoice("inv_1") with { Number = firstNumber.ToString(CultureInfo.InvariantCulture) });
        var secondNumber = Task.Run(async () => await second.Invoices.NextNumberAsync(Sequence));
        await Task.WhenAny(secondNumber, Task.Delay(TimeSpan.FromMilliseconds(500)));
        await first.CommitAsync();
        var number = await secondNumber.WaitAsync(TimeSpan.FromSeconds(30));
        second.Invoices.Add(NewInvoice("inv_2") with { Number = number.ToString(CultureInfo.InvariantCulture) });

        bool secondCommitted;
        try
        {
            await second.CommitAsync();
            secondCommitted = true;
        }
        catch (ConcurrencyConflictException)
        {
            secondCommitted = false;
        }

        Assert.Equal(1, firstNumber);
        if (secondCommitted)
        {
            Assert.Equal(2, number);
        }

        await using var after = await store.BeginAsync();
        Assert.Equal("1", (await after.Invoices.GetAsync("inv_1"))?.Number);
        Assert.Equal(secondCommitted ? "2" : null, (await after.Invoices.GetAsync("inv_2"))?.Number);
    }

    /// <summary>Parallel sessions that number invoices and retry on conflicts commit exactly the numbers 1..N.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Parallel_sessions_commit_gap_free_unique_numbers()
    {
        const int Tasks = 8;
        const int PerTask = 10;
        var store = await CreateStoreAsync();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var workers = Enumerable.Range(0, Tasks).Select(t => Task.Run(async () =>
        {
            await gate.Task;
            for (var i = 0; i < PerTask; i++)
            {
                await RetryOnConflictAsync(store, async s =>
                {
                    var n = await s.Invoices.NextNumberAsync(Sequence);
                    await Task.Yield();
                    s.Invoices.Add(NewInvoice($"inv_{t}_{i}", subscriptionId: "sub_numbers") with { Number = n.ToString(CultureInfo.InvariantCulture) });
                });
            }
        })).ToArray();
        gate.SetResult();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));

        await using var session = await store.BeginAsync();
        var numbers = (await session.Invoices.ListBySubscriptionAsync("sub_numbers"))
            .Select(i => long.Parse(i.Number!, CultureInfo.InvariantCulture))
            .Order()
            .ToList();
        Assert.Equal(Enumerable.Range(1, Tasks * PerTask).Select(n => (long)n), numbers);
        Assert.Equal((Tasks * PerTask) + 1, await session.Invoices.NextNumberAsync(Sequence));
    }

    // ---------------------------------------------------------------- outbox

    /// <summary>Committed events read back in commit order, with strictly increasing positions and their data intact.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Committed_events_are_read_in_commit_order_with_increasing_positions()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Outbox.Append(NewEvent("evt_c"));
            s.Outbox.Append(NewEvent("evt_a"));
            s.Outbox.Append(NewEvent("evt_b"));
        });
        await CommitAsync(store, s =>
        {
            s.Outbox.Append(NewEvent("evt_e"));
            s.Outbox.Append(NewEvent("evt_d"));
        });

        var entries = await ReadAsync(store, s => s.Outbox.ReadAsync(0, 100));
        Assert.Equal(["evt_c", "evt_a", "evt_b", "evt_e", "evt_d"], EventIds(entries));
        Assert.True(entries[0].Position > 0, "Positions start after 0.");
        for (var i = 1; i < entries.Count; i++)
        {
            Assert.True(entries[i].Position > entries[i - 1].Position, $"Position {entries[i].Position} follows {entries[i - 1].Position}.");
        }

        var expected = NewEvent("evt_a");
        var actual = entries[1].Event;
        Assert.Equal(expected.Type, actual.Type);
        Assert.Equal(expected.OccurredAt, actual.OccurredAt);
        Assert.Equal(expected.ObjectType, actual.ObjectType);
        Assert.Equal(expected.ObjectId, actual.ObjectId);
        Assert.Equal(expected.CustomerId, actual.CustomerId);
        AssertSameMap(expected.Data, actual.Data);
    }

    /// <summary><see cref="IOutbox.ReadAsync"/> returns at most the limit, starting after the given position.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Outbox_reads_page_after_a_position()
    {
        var store = await CreateStoreAsync();
        for (var i = 1; i <= 5; i++)
        {
            var id = $"evt_{i}";
            await CommitAsync(store, s => s.Outbox.Append(NewEvent(id)));
        }

        await using var session = await store.BeginAsync();
        var page1 = await session.Outbox.ReadAsync(0, 2);
        Assert.Equal(["evt_1", "evt_2"], EventIds(page1));
        var page2 = await session.Outbox.ReadAsync(page1[^1].Position, 2);
        Assert.Equal(["evt_3", "evt_4"], EventIds(page2));
        var page3 = await session.Outbox.ReadAsync(page2[^1].Position, 2);
        Assert.Equal(["evt_5"], EventIds(page3));
        Assert.Empty(await session.Outbox.ReadAsync(page3[^1].Position, 2));
        Assert.Equal(["evt_2", "evt_3", "evt_4", "evt_5"], EventIds(await session.Outbox.ReadAsync(page1[0].Position, 100)));
    }

    /// <summary>Events appended in a rolled-back session never reach the outbox.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Events_of_a_rolled_back_session_never_appear()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.Outbox.Append(NewEvent("evt_1")));
        await using (var rolledBack = await store.BeginAsync())
        {
            rolledBack.Outbox.Append(NewEvent("evt_rolled_back"));
        }

        await CommitAsync(store, s => s.Outbox.Append(NewEvent("evt_2")));

        Assert.Equal(["evt_1", "evt_2"], EventIds(await ReadAsync(store, s => s.Outbox.ReadAsync(0, 100))));
    }

    // ---------------------------------------------------------------- due and list queries

    /// <summary>Due subscriptions: NextActionAt at or before now on the given clock (null: no clock), earliest first, within the limit.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Subscription_ListDueAsync_returns_due_rows_of_the_clock_earliest_first_within_the_limit()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Subscriptions.Add(NewSubscription("sub_a", nextActionAt: T0.AddHours(-1)));
            s.Subscriptions.Add(NewSubscription("sub_b", nextActionAt: T0.AddHours(-3)));
            s.Subscriptions.Add(NewSubscription("sub_c", nextActionAt: T0));
            s.Subscriptions.Add(NewSubscription("sub_d", nextActionAt: T0.AddSeconds(1)));
            s.Subscriptions.Add(NewSubscription("sub_e", nextActionAt: null));
            s.Subscriptions.Add(NewSubscription("sub_f", nextActionAt: T0.AddHours(-5), testClockId: "clk_1"));
            s.Subscriptions.Add(NewSubscription("sub_g", nextActionAt: T0.AddHours(-2), testClockId: "clk_1"));
            s.Subscriptions.Add(NewSubscription("sub_h", nextActionAt: T0.AddHours(1), testClockId: "clk_1"));
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(["sub_b", "sub_a", "sub_c"], Ids(await session.Subscriptions.ListDueAsync(T0, null, 10)));
        Assert.Equal(["sub_b", "sub_a"], Ids(await session.Subscriptions.ListDueAsync(T0, null, 2)));
        Assert.Equal(["sub_f", "sub_g"], Ids(await session.Subscriptions.ListDueAsync(T0, "clk_1", 10)));
        Assert.Equal(["sub_f", "sub_g", "sub_h"], Ids(await session.Subscriptions.ListDueAsync(T0.AddDays(1), "clk_1", 10)));
        Assert.Empty(await session.Subscriptions.ListDueAsync(T0, "clk_other", 10));
        Assert.Empty(await session.Subscriptions.ListDueAsync(T0.AddHours(-10), null, 10));
        Assert.DoesNotContain("sub_e", Ids(await session.Subscriptions.ListDueAsync(DateTimeOffset.MaxValue, null, 100)));
    }

    /// <summary>Due invoices: NextActionAt at or before now on the given clock (null: no clock), earliest first, within the limit.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Invoice_ListDueAsync_returns_due_rows_of_the_clock_earliest_first_within_the_limit()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Invoices.Add(NewInvoice("inv_a", nextActionAt: T0.AddHours(-1)));
            s.Invoices.Add(NewInvoice("inv_b", nextActionAt: T0.AddHours(-3)));
            s.Invoices.Add(NewInvoice("inv_c", nextActionAt: T0));
            s.Invoices.Add(NewInvoice("inv_d", nextActionAt: T0.AddSeconds(1)));
            s.Invoices.Add(NewInvoice("inv_e", nextActionAt: null));
            s.Invoices.Add(NewInvoice("inv_f", nextActionAt: T0.AddHours(-5), testClockId: "clk_1"));
            s.Invoices.Add(NewInvoice("inv_g", nextActionAt: T0.AddHours(-2), testClockId: "clk_1"));
            s.Invoices.Add(NewInvoice("inv_h", nextActionAt: T0.AddHours(1), testClockId: "clk_1"));
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(["inv_b", "inv_a", "inv_c"], Ids(await session.Invoices.ListDueAsync(T0, null, 10)));
        Assert.Equal(["inv_b", "inv_a"], Ids(await session.Invoices.ListDueAsync(T0, null, 2)));
        Assert.Equal(["inv_f", "inv_g"], Ids(await session.Invoices.ListDueAsync(T0, "clk_1", 10)));
        Assert.Equal(["inv_f", "inv_g", "inv_h"], Ids(await session.Invoices.ListDueAsync(T0.AddDays(1), "clk_1", 10)));
        Assert.Empty(await session.Invoices.ListDueAsync(T0, "clk_other", 10));
        Assert.Empty(await session.Invoices.ListDueAsync(T0.AddHours(-10), null, 10));
        Assert.DoesNotContain("inv_e", Ids(await session.Invoices.ListDueAsync(DateTimeOffset.MaxValue, null, 100)));
    }

    /// <summary>
    /// Claims: a committed claim hides the rows from other claims until the lease ends; the plain due list still
    /// shows them; an update of a claimed row ends its claim.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task ClaimDueAsync_skips_rows_claimed_by_another_run_until_the_lease_ends_or_the_row_is_updated()
    {
        var store = await CreateStoreAsync();
        var lease = TimeSpan.FromMinutes(5);
        await CommitAsync(store, s =>
        {
            for (var i = 1; i <= 5; i++)
            {
                s.Subscriptions.Add(NewSubscription($"sub_{i}", nextActionAt: T0.AddMinutes(-i)));
                s.Invoices.Add(NewInvoice($"inv_{i}", nextActionAt: T0.AddMinutes(-i)));
            }

            s.Subscriptions.Add(NewSubscription("sub_clock", nextActionAt: T0.AddMinutes(-10), testClockId: "clk_1"));
        });

        IReadOnlyList<Subscription> firstSubscriptions = [];
        IReadOnlyList<Invoice> firstInvoices = [];
        await CommitAsync(store, async s =>
        {
            firstSubscriptions = await s.Subscriptions.ClaimDueAsync(T0, null, 3, T0, lease);
            firstInvoices = await s.Invoices.ClaimDueAsync(T0, null, 3, T0, lease);
        });
        Assert.Equal(["sub_5", "sub_4", "sub_3"], Ids(firstSubscriptions));
        Assert.Equal(["inv_5", "inv_4", "inv_3"], Ids(firstInvoices));

        await using (var second = await store.BeginAsync())
        {
            Assert.Equal(["sub_2", "sub_1"], Ids(await second.Subscriptions.ClaimDueAsync(T0, null, 10, T0.AddMinutes(1), lease)));
            Assert.Equal(["inv_2", "inv_1"], Ids(await second.Invoices.ClaimDueAsync(T0, null, 10, T0.AddMinutes(1), lease)));
            Assert.Equal(["sub_clock"], Ids(await second.Subscriptions.ClaimDueAsync(T0, "clk_1", 10, T0.AddMinutes(1), lease)));
            await second.CommitAsync();
        }

        await using (var third = await store.BeginAsync())
        {
            Assert.Empty(await third.Subscriptions.ClaimDueAsync(T0, null, 10, T0.AddMinutes(2), lease));
            Assert.Equal(["sub_5", "sub_4", "sub_3", "sub_2", "sub_1"], Ids(await third.Subscriptions.ListDueAsync(T0, null, 10)));
            Assert.Equal(["inv_5", "inv_4", "inv_3", "inv_2", "inv_1"], Ids(await third.Invoices.ListDueAsync(T0, null, 10)));
        }

        // An update ends the claim: the row is claimable at once while still due.
        await CommitAsync(store, async s =>
        {
            var sub = await s.Subscriptions.GetAsync("sub_4");
            s.Subscriptions.Update(sub! with { Quantity = 7 });
            var inv = await s.Invoices.GetAsync("inv_4");
            s.Invoices.Update(inv! with { PaymentAttempts = 1 });
        });
        await CommitAsync(store, async s =>
        {
            Assert.Equal(["sub_4"], Ids(await s.Subscriptions.ClaimDueAsync(T0, null, 10, T0.AddMinutes(3), lease)));
            Assert.Equal(["inv_4"], Ids(await s.Invoices.ClaimDueAsync(T0, null, 10, T0.AddMinutes(3), lease)));
        });

        // After the lease every row is claimable again, earliest first.
        await using var late = await store.BeginAsync();
        Assert.Equal(["sub_5", "sub_3"], Ids(await late.Subscriptions.ClaimDueAsync(T0, null, 2, T0.AddMinutes(5), lease)));
        Assert.Equal(["inv_5", "inv_3", "inv_2", "inv_1"], Ids(await late.Invoices.ClaimDueAsync(T0, null, 10, T0.AddMinutes(6), lease)));
    }

    /// <summary>A customer's subscriptions, in id order, and only theirs.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task ListByCustomerAsync_returns_the_customers_subscriptions_in_id_order()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Subscriptions.Add(NewSubscription("sub_c", "cus_1"));
            s.Subscriptions.Add(NewSubscription("sub_a", "cus_1"));
            s.Subscriptions.Add(NewSubscription("sub_b", "cus_2"));
            s.Subscriptions.Add(NewSubscription("sub_d", "cus_1"));
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(["sub_a", "sub_c", "sub_d"], Ids(await session.Subscriptions.ListByCustomerAsync("cus_1")));
        Assert.Equal(["sub_b"], Ids(await session.Subscriptions.ListByCustomerAsync("cus_2")));
        Assert.Empty(await session.Subscriptions.ListByCustomerAsync("cus_none"));
    }

    /// <summary>A read-ahead of customers (<see cref="ISubscriptionStore.PreloadByCustomersAsync"/>) changes no answer: the
    /// customers and subscriptions read after it are the stored ones (unknown ids stay unknown, repeated ids are fine),
    /// and the session's own writes, before or after it, still win over what was read ahead.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task PreloadByCustomersAsync_changes_no_answer_and_the_sessions_writes_still_win()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Customers.Add(NewCustomer("cus_1"));
            s.Customers.Add(NewCustomer("cus_2"));
            s.Customers.Add(NewCustomer("cus_3"));
            s.Subscriptions.Add(NewSubscription("sub_c", "cus_1"));
            s.Subscriptions.Add(NewSubscription("sub_a", "cus_1"));
            s.Subscriptions.Add(NewSubscription("sub_b", "cus_2"));
        });

        await using var session = await store.BeginAsync();
        session.Subscriptions.Add(NewSubscription("sub_new", "cus_2"));
        await session.Subscriptions.PreloadByCustomersAsync(["cus_1", "cus_2", "cus_3", "cus_1", "cus_none"]);

        Assert.Equal(["sub_a", "sub_c"], Ids(await session.Subscriptions.ListByCustomerAsync("cus_1")));
        Assert.Equal(["sub_b", "sub_new"], Ids(await session.Subscriptions.ListByCustomerAsync("cus_2")));
        Assert.Empty(await session.Subscriptions.ListByCustomerAsync("cus_3"));
        Assert.Empty(await session.Subscriptions.ListByCustomerAsync("cus_none"));
        Assert.Equal("Customer cus_1", (await session.Customers.GetAsync("cus_1"))?.Name);
        Assert.Null(await session.Customers.GetAsync("cus_none"));

        var subscription = await session.Subscriptions.GetAsync("sub_a");
        session.Subscriptions.Update(subscription! with { Quantity = 7 });
        var customer = await session.Customers.GetAsync("cus_3");
        session.Customers.Update(customer! with { Name = "Renamed" });
        await session.Subscriptions.PreloadByCustomersAsync(["cus_1", "cus_3"]);

        Assert.Equal(7, (await session.Subscriptions.ListByCustomerAsync("cus_1")).Single(s => s.Id == "sub_a").Quantity);
        Assert.Equal("Renamed", (await session.Customers.GetAsync("cus_3"))?.Name);
    }

    /// <summary>A subscription's invoices, oldest first, and only its.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task ListBySubscriptionAsync_returns_the_subscriptions_invoices_oldest_first()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Invoices.Add(NewInvoice("inv_a", subscriptionId: "sub_1", createdAt: T0.AddDays(60)));
            s.Invoices.Add(NewInvoice("inv_b", subscriptionId: "sub_1", createdAt: T0));
            s.Invoices.Add(NewInvoice("inv_c", subscriptionId: "sub_2", createdAt: T0.AddDays(10)));
            s.Invoices.Add(NewInvoice("inv_d", subscriptionId: "sub_1", createdAt: T0.AddDays(30)));
            s.Invoices.Add(NewInvoice("inv_e", subscriptionId: null, createdAt: T0.AddDays(5)));
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(["inv_b", "inv_d", "inv_a"], Ids(await session.Invoices.ListBySubscriptionAsync("sub_1")));
        Assert.Equal(["inv_c"], Ids(await session.Invoices.ListBySubscriptionAsync("sub_2")));
        Assert.Empty(await session.Invoices.ListBySubscriptionAsync("sub_none"));
    }

    /// <summary>An invoice's payments, ordered by attempt, and only its.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task ListByInvoiceAsync_returns_the_invoices_payments_by_attempt()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Payments.Add(NewPayment("pay_a", "inv_1", 3));
            s.Payments.Add(NewPayment("pay_b", "inv_1", 1));
            s.Payments.Add(NewPayment("pay_c", "inv_2", 1));
            s.Payments.Add(NewPayment("pay_d", "inv_1", 2));
        });

        await using var session = await store.BeginAsync();
        var payments = await session.Payments.ListByInvoiceAsync("inv_1");
        Assert.Equal(["pay_b", "pay_d", "pay_a"], Ids(payments));
        Assert.Equal([1, 2, 3], payments.Select(p => p.Attempt));
        Assert.Equal(["pay_c"], Ids(await session.Payments.ListByInvoiceAsync("inv_2")));
        Assert.Empty(await session.Payments.ListByInvoiceAsync("inv_none"));
    }

    /// <summary>The customers attached to a test clock, in id order, and only those.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task ListByTestClockAsync_returns_the_clocks_customers_in_id_order()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Customers.Add(NewCustomer("cus_c", testClockId: "clk_1"));
            s.Customers.Add(NewCustomer("cus_a", testClockId: "clk_1"));
            s.Customers.Add(NewCustomer("cus_b", testClockId: "clk_2"));
            s.Customers.Add(NewCustomer("cus_d"));
        });

        await using var session = await store.BeginAsync();
        Assert.Equal(["cus_a", "cus_c"], Ids(await session.Customers.ListByTestClockAsync("clk_1")));
        Assert.Equal(["cus_b"], Ids(await session.Customers.ListByTestClockAsync("clk_2")));
        Assert.Empty(await session.Customers.ListByTestClockAsync("clk_none"));
    }

    // ---------------------------------------------------------------- parallel stress

    /// <summary>Parallel read-update-commit loops that retry on conflicts lose no update: 8 × 50 increments make version 401.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Parallel_retried_updates_of_one_record_lose_no_increment()
    {
        const int Tasks = 8;
        const int PerTask = 50;
        var store = await CreateStoreAsync();
        await CommitAsync(store, s => s.TestClocks.Add(NewClock("clk_counter")));
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var workers = Enumerable.Range(0, Tasks).Select(_ => Task.Run(async () =>
        {
            await gate.Task;
            for (var i = 0; i < PerTask; i++)
            {
                await RetryOnConflictAsync(store, async s =>
                {
                    var clock = await s.TestClocks.GetAsync("clk_counter");
                    Assert.NotNull(clock);
                    await Task.Yield();
                    s.TestClocks.Update(clock with { FrozenTime = clock.FrozenTime.AddSeconds(1) });
                });
            }
        })).ToArray();
        gate.SetResult();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));

        var final = await ReadAsync(store, s => s.TestClocks.GetAsync("clk_counter"));
        Assert.NotNull(final);
        Assert.Equal(T0.AddSeconds(Tasks * PerTask), final.FrozenTime);
        Assert.Equal((Tasks * PerTask) + 1, final.Version);
    }

    /// <summary>
    /// Parallel sessions add invoices whose dedup keys collide with another task's: every key is stored exactly once
    /// and every losing commit fails with <see cref="DuplicateKeyException"/>.
    /// </summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Parallel_adds_with_colliding_dedup_keys_store_each_key_exactly_once()
    {
        const int Tasks = 8;
        const int PerTask = 50;
        var store = await CreateStoreAsync();
        var committed = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var rejected = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async Task AddAsync(string invoiceId, string dedupKey)
        {
            await using var session = await store.BeginAsync();
            session.Invoices.Add(NewInvoice(invoiceId, dedupKey: dedupKey, subscriptionId: "sub_stress"));
            await Task.Yield();
            try
            {
                await session.CommitAsync();
                committed.AddOrUpdate(dedupKey, 1, (_, n) => n + 1);
            }
            catch (DuplicateKeyException)
            {
                rejected.AddOrUpdate(dedupKey, 1, (_, n) => n + 1);
            }
        }

        var workers = Enumerable.Range(0, Tasks).Select(t => Task.Run(async () =>
        {
            await gate.Task;
            for (var i = 0; i < PerTask; i++)
            {
                await AddAsync($"inv_{t}_{i}", $"dk_{t}_{i}");
                await AddAsync($"inv_{t}_x{i}", $"dk_{(t + 1) % Tasks}_{i}");
            }
        })).ToArray();
        gate.SetResult();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));

        var expectedKeys = Enumerable.Range(0, Tasks).SelectMany(t => Enumerable.Range(0, PerTask).Select(i => $"dk_{t}_{i}")).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedKeys, committed.Keys.Order(StringComparer.Ordinal));
        Assert.All(committed.Values, n => Assert.Equal(1, n));
        Assert.Equal(expectedKeys, rejected.Keys.Order(StringComparer.Ordinal));
        Assert.All(rejected.Values, n => Assert.Equal(1, n));

        await using var session = await store.BeginAsync();
        var stored = await session.Invoices.ListBySubscriptionAsync("sub_stress");
        Assert.Equal(Tasks * PerTask, stored.Count);
        Assert.Equal(expectedKeys, stored.Select(i => i.DedupKey).Order(StringComparer.Ordinal));
        foreach (var key in expectedKeys)
        {
            Assert.Equal(key, (await session.Invoices.GetByDedupKeyAsync(key))?.DedupKey);
        }
    }

    // ---------------------------------------------------------------- idempotency records

    /// <summary>An idempotency record reads as null until committed, then reads back as stored.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Idempotency_record_is_null_until_committed_then_read_back()
    {
        var store = await CreateStoreAsync();
        Assert.Null(await ReadAsync(store, s => s.Idempotency.GetAsync("scope", "key")));

        var record = NewRecord("scope", "key", "{\"id\":\"sub_1\"}");
        await CommitAsync(store, s => s.Idempotency.Add(record));

        Assert.Equal(record, await ReadAsync(store, s => s.Idempotency.GetAsync("scope", "key")));
        Assert.Null(await ReadAsync(store, s => s.Idempotency.GetAsync("scope", "other_key")));
    }

    /// <summary>The same key in different scopes names different records.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Idempotency_keys_in_different_scopes_are_independent()
    {
        var store = await CreateStoreAsync();
        await CommitAsync(store, s =>
        {
            s.Idempotency.Add(NewRecord("scope_a", "key", "a"));
            s.Idempotency.Add(NewRecord("scope_b", "key", "b"));
        });
        await CommitAsync(store, s => s.Idempotency.Add(NewRecord("scope_c", "key", "c")));

        await using var session = await store.BeginAsync();
        Assert.Equal("a", (await session.Idempotency.GetAsync("scope_a", "key"))?.Response);
        Assert.Equal("b", (await session.Idempotency.GetAsync("scope_b", "key"))?.Response);
        Assert.Equal("c", (await session.Idempotency.GetAsync("scope_c", "key"))?.Response);
        Assert.Null(await session.Idempotency.GetAsync("scope_d", "key"));
    }

    // ---------------------------------------------------------------- factories

    /// <summary>A valid customer.</summary>
    /// <param name="id">The id.</param>
    /// <param name="testClockId">The test clock, if any.</param>
    /// <returns>The customer (version 0).</returns>
    protected static Customer NewCustomer(string id, string? testClockId = null) => new()
    {
        Id = id,
        Name = $"Customer {id}",
        Email = $"{id}@example.com",
        Currency = Currency.USD,
        TimeZoneId = "Europe/Berlin",
        DefaultPaymentMethod = "pm_card",
        CreditBalance = new Money(0, Currency.USD),
        TaxRates = [new TaxRate("VAT", 190_000)],
        ExternalId = $"ext_{id}",
        TestClockId = testClockId,
        Metadata = new Dictionary<string, string>(StringComparer.Ordinal) { ["tier"] = "gold" },
        CreatedAt = T0,
    };

    /// <summary>A valid monthly plan at 29.00 USD.</summary>
    /// <param name="id">The id.</param>
    /// <returns>The plan (version 0).</returns>
    protected static Plan NewPlan(string id) => new()
    {
        Id = id,
        Name = $"Plan {id}",
        Description = "A flat monthly plan.",
        Price = new FlatPrice(new Money(2900, Currency.USD)),
        Interval = BillingInterval.Monthly,
        TrialDays = 14,
        Metadata = new Dictionary<string, string>(StringComparer.Ordinal) { ["family"] = "basic" },
        CreatedAt = T0,
    };

    /// <summary>A valid active subscription in its first monthly period.</summary>
    /// <param name="id">The id.</param>
    /// <param name="customerId">The customer.</param>
    /// <param name="nextActionAt">When it is next due, if ever.</param>
    /// <param name="testClockId">The test clock, if any.</param>
    /// <returns>The subscription (version 0).</returns>
    protected static Subscription NewSubscription(string id, string customerId = "cus_1", DateTimeOffset? nextActionAt = null, string? testClockId = null) => new()
    {
        Id = id,
        CustomerId = customerId,
        PlanId = "plan_1",
        Quantity = 1,
        Status = SubscriptionStatus.Active,
        ScheduleStart = T0,
        AnchorLocal = new DateTime(2025, 3, 1, 13, 0, 0, DateTimeKind.Unspecified),
        CurrentPeriod = new BillingPeriod(T0, T0.AddMonths(1)),
        PaymentMethod = "pm_card",
        NextActionAt = nextActionAt,
        TestClockId = testClockId,
        CreatedAt = T0,
    };

    /// <summary>A valid open invoice with no lines and zero amounts.</summary>
    /// <param name="id">The id.</param>
    /// <param name="dedupKey">The dedup key (default: derived from the id).</param>
    /// <param name="subscriptionId">The subscription, if any.</param>
    /// <param name="nextActionAt">When it is next due, if ever.</param>
    /// <param name="testClockId">The test clock, if any.</param>
    /// <param name="createdAt">When it was created (default: the base instant).</param>
    /// <returns>The invoice (version 0).</returns>
    protected static Invoice NewInvoice(string id, string? dedupKey = null, string? subscriptionId = null, DateTimeOffset? nextActionAt = null, string? testClockId = null, DateTimeOffset? createdAt = null)
    {
        var zero = Money.Zero(Currency.USD);
        return new()
        {
            Id = id,
            CustomerId = "cus_1",
            SubscriptionId = subscriptionId,
            DedupKey = dedupKey ?? $"dk_{id}",
            Reason = BillingReason.Manual,
            Status = InvoiceStatus.Open,
            Currency = Currency.USD,
            Period = new BillingPeriod(T0, T0.AddMonths(1)),
            Lines = [],
            Subtotal = zero,
            Discount = zero,
            Tax = zero,
            Total = zero,
            CreditApplied = zero,
            AmountDue = zero,
            AmountPaid = zero,
            Dunning = DunningState.Initial(1),
            NextActionAt = nextActionAt,
            TestClockId = testClockId,
            CreatedAt = createdAt ?? T0,
            FinalizedAt = T0,
        };
    }

    /// <summary>A valid pending payment attempt of 29.00 USD.</summary>
    /// <param name="id">The id.</param>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="attempt">The attempt number.</param>
    /// <param name="idempotencyKey">The idempotency key (default: derived from the id).</param>
    /// <returns>The payment (version 0).</returns>
    protected static Payment NewPayment(string id, string invoiceId, int attempt, string? idempotencyKey = null) => new()
    {
        Id = id,
        InvoiceId = invoiceId,
        CustomerId = "cus_1",
        Attempt = attempt,
        IdempotencyKey = idempotencyKey ?? $"pk_{id}",
        Amount = new Money(2900, Currency.USD),
        PaymentMethod = "pm_card",
        Status = PaymentStatus.Pending,
        AmountRefunded = Money.Zero(Currency.USD),
        CreatedAt = T0,
    };

    /// <summary>A test clock.</summary>
    /// <param name="id">The id.</param>
    /// <param name="frozenTime">Its time (default: the base instant).</param>
    /// <returns>The clock (version 0).</returns>
    protected static TestClock NewClock(string id, DateTimeOffset? frozenTime = null) => new()
    {
        Id = id,
        Name = $"Clock {id}",
        FrozenTime = frozenTime ?? T0,
    };

    /// <summary>A billing event.</summary>
    /// <param name="id">The event id.</param>
    /// <returns>The event.</returns>
    protected static BillingEvent NewEvent(string id) => new()
    {
        Id = id,
        Type = "subscription.updated",
        OccurredAt = T0,
        ObjectType = "subscription",
        ObjectId = "sub_1",
        CustomerId = "cus_1",
        Data = new Dictionary<string, string>(StringComparer.Ordinal) { ["event"] = id },
    };

    /// <summary>An idempotency record.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="key">The key.</param>
    /// <param name="response">The stored response.</param>
    /// <returns>The record.</returns>
    protected static IdempotencyRecord NewRecord(string scope, string key, string response = "{}") =>
        new(scope, key, "sha256:abc", response, T0, T0.AddDays(1));

    // ---------------------------------------------------------------- helpers

    private async Task AssertLifecycleAsync<T>(
        T original,
        Func<T, int, T> change,
        Action<IBillingSession, T> add,
        Action<IBillingSession, T> update,
        Func<IBillingSession, string, ValueTask<T?>> get,
        Func<T, string> idOf,
        Func<T, long> versionOf,
        Action<T, T> assertSameData)
        where T : class
    {
        var store = await CreateStoreAsync();
        var id = idOf(original);
        Assert.Null(await ReadAsync(store, s => get(s, id)));

        await CommitAsync(store, s => add(s, original));
        var v1 = await ReadAsync(store, s => get(s, id));
        Assert.NotNull(v1);
        Assert.Equal(1, versionOf(v1));
        assertSameData(original, v1);

        var changed = change(v1, 1);
        await CommitAsync(store, s => update(s, changed));
        var v2 = await ReadAsync(store, s => get(s, id));
        Assert.NotNull(v2);
        Assert.Equal(2, versionOf(v2));
        assertSameData(changed, v2);

        // An update based on version 1 is stale now: it fails and the stored row keeps the first update.
        await AssertCommitFailsAsync<ConcurrencyConflictException>(store, s => update(s, change(v1, 2)));
        var after = await ReadAsync(store, s => get(s, id));
        Assert.NotNull(after);
        Assert.Equal(2, versionOf(after));
        assertSameData(changed, after);

        // An update with the current version succeeds again.
        var changedAgain = change(after, 3);
        await CommitAsync(store, s => update(s, changedAgain));
        var v3 = await ReadAsync(store, s => get(s, id));
        Assert.NotNull(v3);
        Assert.Equal(3, versionOf(v3));
        assertSameData(changedAgain, v3);
    }

    private static async Task CommitAsync(IBillingStore store, Action<IBillingSession> write)
    {
        await using var session = await store.BeginAsync();
        write(session);
        await session.CommitAsync();
    }

    private static async Task CommitAsync(IBillingStore store, Func<IBillingSession, Task> write)
    {
        await using var session = await store.BeginAsync();
        await write(session);
        await session.CommitAsync();
    }

    private static async Task<T> ReadAsync<T>(IBillingStore store, Func<IBillingSession, ValueTask<T>> read)
    {
        await using var session = await store.BeginAsync();
        return await read(session);
    }

    private static Task AssertCommitFailsAsync<TException>(IBillingStore store, Action<IBillingSession> write)
        where TException : Exception =>
        AssertCommitFailsAsync<TException>(store, s =>
        {
            write(s);
            return Task.CompletedTask;
        });

    private static async Task AssertCommitFailsAsync<TException>(IBillingStore store, Func<IBillingSession, Task> write)
        where TException : Exception
    {
        await using var session = await store.BeginAsync();
        await write(session);
        await Assert.ThrowsAsync<TException>(async () => await session.CommitAsync());
    }

    /// <summary>
    /// Runs the writes and expects a <see cref="DuplicateKeyException"/>: from the commit, or (for a key repeated
    /// inside the session) already from the add, in which case the session is disposed without commit.
    /// </summary>
    private static async Task AssertDuplicateRejectedAsync(IBillingStore store, Action<IBillingSession> write)
    {
        await using var session = await store.BeginAsync();
        try
        {
            write(session);
        }
        catch (DuplicateKeyException)
        {
            return;
        }

        await Assert.ThrowsAsync<DuplicateKeyException>(async () => await session.CommitAsync());
    }

    private static async Task RetryOnConflictAsync(IBillingStore store, Func<IBillingSession, Task> write)
    {
        for (var attempt = 0; attempt < 10_000; attempt++)
        {
            await using var session = await store.BeginAsync();
            await write(session);
            try
            {
                await session.CommitAsync();
                return;
            }
            catch (ConcurrencyConflictException)
            {
                // Someone else committed first: read again and retry.
            }
        }

        Assert.Fail("Gave up after 10,000 conflicting attempts.");
    }

    private static Task CommitExistingRowsAsync(IBillingStore store) =>
        CommitAsync(store, s =>
        {
            s.Customers.Add(NewCustomer("cus_1"));
            s.Subscriptions.Add(NewSubscription("sub_1"));
            s.Invoices.Add(NewInvoice("inv_1", dedupKey: "dk_1"));
            s.Payments.Add(NewPayment("pay_1", "inv_1", 1, idempotencyKey: "pk_1"));
            s.TestClocks.Add(NewClock("clk_1"));
            s.Outbox.Append(NewEvent("evt_1"));
            s.Idempotency.Add(NewRecord("scope", "key_1"));
        });

    /// <summary>Writes of every kind that are valid on their own, to go down with a failing commit.</summary>
    private static async Task WriteAlongsideAsync(IBillingSession session)
    {
        session.Customers.Add(NewCustomer("cus_new"));
        session.Plans.Add(NewPlan("plan_new"));
        session.Subscriptions.Add(NewSubscription("sub_new", "cus_new"));
        session.Invoices.Add(NewInvoice("inv_new", dedupKey: "dk_new"));
        session.Payments.Add(NewPayment("pay_new", "inv_new", 1, idempotencyKey: "pk_new"));
        session.Outbox.Append(NewEvent("evt_new"));
        session.Idempotency.Add(NewRecord("scope", "key_new"));
        var clock = await session.TestClocks.GetAsync("clk_1");
        Assert.NotNull(clock);
        session.TestClocks.Update(clock with { FrozenTime = T0.AddDays(1) });
        Assert.Equal(1, await session.Invoices.NextNumberAsync(Sequence));
    }

    private static async Task AssertNothingWrittenAlongsideAsync(IBillingStore store)
    {
        await using var after = await store.BeginAsync();
        Assert.Null(await after.Customers.GetAsync("cus_new"));
        Assert.Null(await after.Plans.GetAsync("plan_new"));
        Assert.Null(await after.Subscriptions.GetAsync("sub_new"));
        Assert.Null(await after.Invoices.GetAsync("inv_new"));
        Assert.Null(await after.Invoices.GetByDedupKeyAsync("dk_new"));
        Assert.Equal("inv_1", (await after.Invoices.GetByDedupKeyAsync("dk_1"))?.Id);
        Assert.Null(await after.Payments.GetAsync("pay_new"));
        Assert.Null(await after.Payments.GetByIdempotencyKeyAsync("pk_new"));
        Assert.Equal("pay_1", (await after.Payments.GetByIdempotencyKeyAsync("pk_1"))?.Id);
        Assert.Equal(["evt_1"], EventIds(await after.Outbox.ReadAsync(0, 100)));
        Assert.Null(await after.Idempotency.GetAsync("scope", "key_new"));
        Assert.Equal("{}", (await after.Idempotency.GetAsync("scope", "key_1"))?.Response);
        var clock = await after.TestClocks.GetAsync("clk_1");
        Assert.Equal(T0, clock?.FrozenTime);
        Assert.Equal(1, clock?.Version);
        Assert.Equal(1, await after.Invoices.NextNumberAsync(Sequence));
    }

    private static async Task UpdateSubscriptionAsync(IBillingStore store, string id, Func<Subscription, Subscription> change)
    {
        await using var session = await store.BeginAsync();
        var subscription = await session.Subscriptions.GetAsync(id);
        Assert.NotNull(subscription);
        session.Subscriptions.Update(change(subscription));
        await session.CommitAsync();
    }

    private static async Task WriteOneOfEverythingAsync(IBillingSession session)
    {
        session.Customers.Add(NewCustomer("cus_x", testClockId: "clk_x"));
        session.Plans.Add(NewPlan("plan_x"));
        session.Subscriptions.Add(NewSubscription("sub_x", "cus_x", nextActionAt: T0.AddHours(-1)));
        session.Invoices.Add(NewInvoice("inv_x", dedupKey: "dk_x", subscriptionId: "sub_x", nextActionAt: T0.AddHours(-1)));
        session.Payments.Add(NewPayment("pay_x", "inv_x", 1, idempotencyKey: "pk_x"));
        session.TestClocks.Add(NewClock("clk_x"));
        session.Outbox.Append(NewEvent("evt_x"));
        session.Idempotency.Add(NewRecord("scope_x", "key_x"));
        Assert.Equal(1, await session.Invoices.NextNumberAsync(Sequence));
    }

    /// <summary>Asserts that none of <see cref="WriteOneOfEverythingAsync"/>'s writes is visible (numbers are checked by the callers).</summary>
    private static async Task AssertNothingOfEverythingAsync(IBillingSession session)
    {
        Assert.Null(await session.Customers.GetAsync("cus_x"));
        Assert.Empty(await session.Customers.ListByTestClockAsync("clk_x"));
        Assert.Null(await session.Plans.GetAsync("plan_x"));
        Assert.Null(await session.Subscriptions.GetAsync("sub_x"));
        Assert.Empty(await session.Subscriptions.ListByCustomerAsync("cus_x"));
        Assert.Empty(await session.Subscriptions.ListDueAsync(T0, null, 10));
        Assert.Null(await session.Invoices.GetAsync("inv_x"));
        Assert.Null(await session.Invoices.GetByDedupKeyAsync("dk_x"));
        Assert.Empty(await session.Invoices.ListBySubscriptionAsync("sub_x"));
        Assert.Empty(await session.Invoices.ListDueAsync(T0, null, 10));
        Assert.Null(await session.Payments.GetAsync("pay_x"));
        Assert.Null(await session.Payments.GetByIdempotencyKeyAsync("pk_x"));
        Assert.Empty(await session.Payments.ListByInvoiceAsync("inv_x"));
        Assert.Null(await session.TestClocks.GetAsync("clk_x"));
        Assert.Empty(await session.Outbox.ReadAsync(0, 100));
        Assert.Null(await session.Idempotency.GetAsync("scope_x", "key_x"));
    }

    private static List<string> Ids(IEnumerable<Customer> rows) => [.. rows.Select(r => r.Id)];

    private static List<string> Ids(IEnumerable<Subscription> rows) => [.. rows.Select(r => r.Id)];

    private static List<string> Ids(IEnumerable<Invoice> rows) => [.. rows.Select(r => r.Id)];

    private static List<string> Ids(IEnumerable<Payment> rows) => [.. rows.Select(r => r.Id)];

    private static List<string> EventIds(IEnumerable<OutboxEntry> entries) => [.. entries.Select(e => e.Event.Id)];

    private static void AssertSameMap(IReadOnlyDictionary<string, string> expected, IReadOnlyDictionary<string, string> actual) =>
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), actual.OrderBy(p => p.Key, StringComparer.Ordinal));

    private static void AssertSameCustomer(Customer expected, Customer actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.Email, actual.Email);
        Assert.Equal(expected.Currency, actual.Currency);
        Assert.Equal(expected.TimeZoneId, actual.TimeZoneId);
        Assert.Equal(expected.DefaultPaymentMethod, actual.DefaultPaymentMethod);
        Assert.Equal(expected.CreditBalance, actual.CreditBalance);
        Assert.Equal(expected.TaxRates, actual.TaxRates);
        Assert.Equal(expected.ExternalId, actual.ExternalId);
        Assert.Equal(expected.TestClockId, actual.TestClockId);
        AssertSameMap(expected.Metadata, actual.Metadata);
        Assert.Equal(expected.CreatedAt, actual.CreatedAt);
    }

    private static void AssertSamePlan(Plan expected, Plan actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.Description, actual.Description);
        Assert.Equal(expected.Price.Model, actual.Price.Model);
        Assert.Equal(expected.Price.Currency, actual.Price.Currency);
        Assert.Equal(expected.Price.CalculateTotal(1), actual.Price.CalculateTotal(1));
        Assert.Equal(expected.Price.CalculateTotal(3), actual.Price.CalculateTotal(3));
        Assert.Equal(expected.Interval, actual.Interval);
        Assert.Equal(expected.TrialDays, actual.TrialDays);
        Assert.Equal(expected.Archived, actual.Archived);
        AssertSameMap(expected.Metadata, actual.Metadata);
        Assert.Equal(expected.CreatedAt, actual.CreatedAt);
    }

    private static void AssertSameSubscription(Subscription expected, Subscription actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.CustomerId, actual.CustomerId);
        Assert.Equal(expected.PlanId, actual.PlanId);
        Assert.Equal(expected.Quantity, actual.Quantity);
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.ScheduleStart, actual.ScheduleStart);
        Assert.Equal(expected.AnchorLocal, actual.AnchorLocal);
        Assert.Equal(expected.CurrentPeriod, actual.CurrentPeriod);
        Assert.Equal(expected.TrialEnd, actual.TrialEnd);
        Assert.Equal(expected.CancelAtPeriodEnd, actual.CancelAtPeriodEnd);
        Assert.Equal(expected.CanceledAt, actual.CanceledAt);
        Assert.Equal(expected.PausedAt, actual.PausedAt);
        Assert.Equal(expected.PendingChange, actual.PendingChange);
        Assert.Equal(expected.PendingLines.Count, actual.PendingLines.Count);
        Assert.Equal(expected.Discount is null, actual.Discount is null);
        Assert.Equal(expected.PaymentMethod, actual.PaymentMethod);
        Assert.Equal(expected.LatestInvoiceId, actual.LatestInvoiceId);
        Assert.Equal(expected.NextActionAt, actual.NextActionAt);
        Assert.Equal(expected.TestClockId, actual.TestClockId);
        Assert.Equal(expected.CreatedAt, actual.CreatedAt);
    }

    private static void AssertSameInvoice(Invoice expected, Invoice actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.CustomerId, actual.CustomerId);
        Assert.Equal(expected.SubscriptionId, actual.SubscriptionId);
        Assert.Equal(expected.DedupKey, actual.DedupKey);
        Assert.Equal(expected.Reason, actual.Reason);
        Assert.Equal(expected.Number, actual.Number);
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.Currency, actual.Currency);
        Assert.Equal(expected.Period, actual.Period);
        Assert.Equal(expected.Lines.Count, actual.Lines.Count);
        Assert.Equal(expected.Subtotal, actual.Subtotal);
        Assert.Equal(expected.Discount, actual.Discount);
        Assert.Equal(expected.Tax, actual.Tax);
        Assert.Equal(expected.Total, actual.Total);
        Assert.Equal(expected.CreditApplied, actual.CreditApplied);
        Assert.Equal(expected.AmountDue, actual.AmountDue);
        Assert.Equal(expected.AmountPaid, actual.AmountPaid);
        Assert.Equal(expected.Dunning, actual.Dunning);
        Assert.Equal(expected.PaymentAttempts, actual.PaymentAttempts);
        Assert.Equal(expected.NextActionAt, actual.NextActionAt);
        Assert.Equal(expected.TestClockId, actual.TestClockId);
        Assert.Equal(expected.CreatedAt, actual.CreatedAt);
        Assert.Equal(expected.FinalizedAt, actual.FinalizedAt);
        Assert.Equal(expected.ClosedAt, actual.ClosedAt);
    }

    private static void AssertSamePayment(Payment expected, Payment actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.InvoiceId, actual.InvoiceId);
        Assert.Equal(expected.CustomerId, actual.CustomerId);
        Assert.Equal(expected.Attempt, actual.Attempt);
        Assert.Equal(expected.IdempotencyKey, actual.IdempotencyKey);
        Assert.Equal(expected.Amount, actual.Amount);
        Assert.Equal(expected.PaymentMethod, actual.PaymentMethod);
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.GatewayPaymentId, actual.GatewayPaymentId);
        Assert.Equal(expected.AmountRefunded, actual.AmountRefunded);
        Assert.Equal(expected.RefundCount, actual.RefundCount);
        Assert.Equal(expected.CreatedAt, actual.CreatedAt);
    }

    private static void AssertSameClock(TestClock expected, TestClock actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.FrozenTime, actual.FrozenTime);
    }
}
