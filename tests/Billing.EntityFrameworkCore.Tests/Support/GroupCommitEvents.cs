using Billing.Usage;

namespace Billing.EntityFrameworkCore.Tests.Support;

/// <summary>The events, keys and waits the group-commit tests share.</summary>
internal static class GroupCommitEvents
{
    /// <summary>The period every event belongs to.</summary>
    public static readonly DateTimeOffset PeriodStart = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>How long a test waits for calls to queue.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>When every event was received.</summary>
    public static readonly DateTimeOffset Received = new(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A fixed pseudo-random number in [0, <paramref name="range"/>) for <paramref name="i"/> (Knuth's multiplicative hash).</summary>
    public static int Scatter(int i, int range) => (int)(unchecked((uint)i * 2654435761u) % (uint)range);

    /// <summary>Waits until <paramref name="condition"/> holds; fails after <see cref="Patience"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The calls did not get queued in time.");
            await Task.Delay(5);
        }
    }

    /// <summary>A customer id no other test uses.</summary>
    public static string NewCustomer() => "cus_" + Guid.NewGuid().ToString("N")[..16];

    /// <summary>The customer's <c>api_calls</c> counter of <see cref="PeriodStart"/>.</summary>
    public static UsageCounterKey Key(string customer) => new(customer, "api_calls", PeriodStart);

    /// <summary>An event of the customer's counter, a day into the period.</summary>
    public static StoredUsageEvent Event(string customer, string key, long quantity) => new()
    {
        Counter = Key(customer),
        Quantity = quantity,
        IdempotencyKey = key,
        Timestamp = PeriodStart.AddDays(1),
        ReceivedAt = Received,
    };
}
