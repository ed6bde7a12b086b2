using Billing.Ports;
using Billing.InMemory;

namespace Billing.Testing.Tests.InMemory;

/// <summary>Behaviour specific to the in-memory store, beyond the store contract.</summary>
public sealed class InMemoryBillingStoreTests
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task BeginAsync_with_a_canceled_token_throws()
    {
        var store = new InMemoryBillingStore();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await store.BeginAsync(new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task Outbox_positions_are_1_based_commit_order_indexes()
    {
        var store = new InMemoryBillingStore();
        await using (var session = await store.BeginAsync())
        {
            session.Outbox.Append(Event("evt_a"));
            session.Outbox.Append(Event("evt_b"));
            await session.CommitAsync();
        }

        await using var reader = await store.BeginAsync();
        Assert.Equal([1L, 2L], (await reader.Outbox.ReadAsync(0, 10)).Select(e => e.Position));
        Assert.Empty(await reader.Outbox.ReadAsync(2, 10));
        Assert.Empty(await reader.Outbox.ReadAsync(100, 10));
    }

    [Fact]
    public async Task Outbox_ReadAsync_rejects_a_limit_below_1()
    {
        await using var session = await new InMemoryBillingStore().BeginAsync();
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await session.Outbox.ReadAsync(0, 0));
    }

    [Fact]
    public async Task NextNumberAsync_rejects_a_blank_sequence()
    {
        await using var session = await new InMemoryBillingStore().BeginAsync();
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await session.Invoices.NextNumberAsync(" "));
    }

    [Fact]
    public async Task A_stale_update_names_the_object_and_the_version_read()
    {
        var store = new InMemoryBillingStore();
        await using (var session = await store.BeginAsync())
        {
            session.TestClocks.Add(new TestClock { Id = "clk_1", FrozenTime = T0 });
            await session.CommitAsync();
        }

        await using (var session = await store.BeginAsync())
        {
            var clock = await session.TestClocks.GetAsync("clk_1");
            session.TestClocks.Update(clock! with { FrozenTime = T0.AddDays(1) });
            await session.CommitAsync();
        }

        await using var stale = await store.BeginAsync();
        stale.TestClocks.Update(new TestClock { Id = "clk_1", FrozenTime = T0.AddDays(2), Version = 1 });
        var error = await Assert.ThrowsAsync<ConcurrencyConflictException>(async () => await stale.CommitAsync());
        Assert.Equal("test_clock", error.ObjectType);
        Assert.Equal("clk_1", error.Id);
        Assert.Equal(1, error.ExpectedVersion);
    }

    [Fact]
    public async Task A_duplicate_event_names_the_key()
    {
        var store = new InMemoryBillingStore();
        await using var session = await store.BeginAsync();
        session.Outbox.Append(Event("evt_1"));
        session.Outbox.Append(Event("evt_1"));
        var error = await Assert.ThrowsAsync<DuplicateKeyException>(async () => await session.CommitAsync());
        Assert.Equal("event", error.ObjectType);
        Assert.Equal("id", error.KeyName);
        Assert.Equal("evt_1", error.Key);
    }

    private static Billing.Events.BillingEvent Event(string id) => new()
    {
        Id = id,
        Type = "test.event",
        OccurredAt = T0,
        ObjectType = "test",
        ObjectId = "obj_1",
    };
}
