using Billing.InMemory;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.Testing.Tests.InMemory;

/// <summary>The in-memory usage event store passes the event store contract.</summary>
public sealed class InMemoryUsageEventStoreContractTests : UsageEventStoreContract
{
    private readonly InMemoryUsageEventStore _store = new();

    /// <inheritdoc />
    protected override ValueTask<IUsageEventStore> CreateStoreAsync() => ValueTask.FromResult<IUsageEventStore>(_store);

    /// <summary>The store counts what it keeps.</summary>
    [Fact]
    public async Task Count_is_the_number_of_stored_events()
    {
        var store = new InMemoryUsageEventStore();
        var e = new Billing.Usage.StoredUsageEvent
        {
            Counter = new("cus_1", "api_calls", new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero)),
            Quantity = 1,
            IdempotencyKey = "k",
            Timestamp = new DateTimeOffset(2025, 3, 2, 0, 0, 0, TimeSpan.Zero),
            ReceivedAt = new DateTimeOffset(2025, 3, 2, 0, 0, 1, TimeSpan.Zero),
        };
        await store.AppendAsync([e, e with { IdempotencyKey = "k2" }, e]);
        Assert.Equal(2, store.Count);
    }
}
