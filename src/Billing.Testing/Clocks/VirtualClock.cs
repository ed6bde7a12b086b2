using Billing.Customers;
using Billing.Engine;
using Billing.Ports;

namespace Billing.Testing.Clocks;

/// <summary>
/// A test clock as an object: customers created through it are attached to it, and <see cref="AdvanceAsync(DateTimeOffset, CancellationToken)"/>
/// runs every billing step due between the old and the new time, in order, for those customers only.
/// </summary>
/// <remarks>
/// Clocks are independent: many can advance at once (each test its own clock; no global time). A year of renewals,
/// trials, dunning retries and events runs in milliseconds on the in-memory store.
/// </remarks>
public sealed class VirtualClock
{
    private readonly BillingEngine _engine;

    private VirtualClock(BillingEngine engine, TestClock clock)
    {
        _engine = engine;
        Id = clock.Id;
        Now = clock.FrozenTime;
    }

    /// <summary>The clock's id (attach customers with <see cref="NewCustomer.TestClockId"/>).</summary>
    public string Id { get; }

    /// <summary>The clock's current time, as of the last advance.</summary>
    public DateTimeOffset Now { get; private set; }

    /// <summary>Creates a clock frozen at <paramref name="start"/>.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="start">The clock's starting time.</param>
    /// <param name="name">A name for people.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The clock.</returns>
    public static async Task<VirtualClock> StartAsync(BillingEngine engine, DateTimeOffset start, string? name = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        return new VirtualClock(engine, await engine.CreateTestClockAsync(start, name, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Creates a customer attached to this clock.</summary>
    /// <param name="customer">The customer's content (its <see cref="NewCustomer.TestClockId"/> is set to this clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The customer.</returns>
    public Task<Customer> CreateCustomerAsync(NewCustomer customer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(customer);
        return _engine.CreateCustomerAsync(customer with { TestClockId = Id }, cancellationToken);
    }

    /// <summary>Moves the clock to <paramref name="to"/>, running every billing step due on the way.</summary>
    /// <param name="to">The new time; not before <see cref="Now"/>.</param>
    /// <param name="cancellationToken">Cancels between steps.</param>
    /// <returns>A task that completes when the clock is at <paramref name="to"/>.</returns>
    public async Task AdvanceAsync(DateTimeOffset to, CancellationToken cancellationToken = default) =>
        Now = (await _engine.AdvanceTestClockAsync(Id, to, cancellationToken).ConfigureAwait(false)).FrozenTime;

    /// <summary>Moves the clock forward by <paramref name="by"/>.</summary>
    /// <param name="by">How far; not negative.</param>
    /// <param name="cancellationToken">Cancels between steps.</param>
    /// <returns>A task that completes when the clock has moved.</returns>
    public Task AdvanceAsync(TimeSpan by, CancellationToken cancellationToken = default) => AdvanceAsync(Now + by, cancellationToken);
}
