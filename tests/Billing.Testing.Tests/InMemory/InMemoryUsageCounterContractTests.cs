using Billing.InMemory;
using Billing.Ports;
using Billing.Testing.Contracts;

namespace Billing.Testing.Tests.InMemory;

/// <summary>The in-memory usage counters pass the counter contract.</summary>
public sealed class InMemoryUsageCounterContractTests : UsageCounterContract
{
    private readonly InMemoryUsageCounter _counter = new();

    /// <inheritdoc />
    protected override ValueTask<IUsageCounter> CreateCounterAsync() => ValueTask.FromResult<IUsageCounter>(_counter);
}
