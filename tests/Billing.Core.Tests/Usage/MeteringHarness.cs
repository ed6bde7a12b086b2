using Billing.InMemory;
using Billing.Ports;
using Billing.Tests.Engine;
using Billing.Usage;

namespace Billing.Tests.Usage;

/// <summary>The setup the metering tests share.</summary>
internal static class MeteringHarness
{
    /// <summary>
    /// An engine whose usage lines are priced from an in-memory event store, and a metering service with default options
    /// over the engine's store, <paramref name="counter"/> (a new in-memory counter by default) and that event store.
    /// </summary>
    public static (EngineHarness Harness, InMemoryUsageEventStore Events, UsageMeteringService Metering) Create(IUsageCounter? counter = null)
    {
        var events = new InMemoryUsageEventStore();
        var harness = new EngineHarness(usage: new MeteredUsageCharges(events));
        return (harness, events, new UsageMeteringService(harness.Store, counter ?? new InMemoryUsageCounter(), events, harness.Time, new MeteringOptions()));
    }
}
