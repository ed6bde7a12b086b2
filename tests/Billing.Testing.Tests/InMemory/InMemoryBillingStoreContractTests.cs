using Billing.Ports;
using Billing.Testing.Contracts;
using Billing.InMemory;

namespace Billing.Testing.Tests.InMemory;

/// <summary>Runs the store contract suite against the in-memory store.</summary>
public sealed class InMemoryBillingStoreContractTests : BillingStoreContract
{
    /// <inheritdoc />
    protected override ValueTask<IBillingStore> CreateStoreAsync() => ValueTask.FromResult<IBillingStore>(new InMemoryBillingStore());
}
