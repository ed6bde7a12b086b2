namespace Billing.Invoices;

/// <summary>
/// The one table of invoice transitions: <c>draft → open → paid | void | uncollectible</c>, and an uncollectible
/// invoice can still be paid or voided. Anything else throws <see cref="InvalidStateTransitionException"/>.
/// </summary>
public static class InvoiceStateMachine
{
    private static readonly TransitionTable<InvoiceStatus, InvoiceTrigger> Table = new(
        "invoice",
        [
            (InvoiceStatus.Draft, InvoiceTrigger.Finalize, InvoiceStatus.Open),
            (InvoiceStatus.Open, InvoiceTrigger.Pay, InvoiceStatus.Paid),
            (InvoiceStatus.Open, InvoiceTrigger.Void, InvoiceStatus.Void),
            (InvoiceStatus.Open, InvoiceTrigger.MarkUncollectible, InvoiceStatus.Uncollectible),
            (InvoiceStatus.Uncollectible, InvoiceTrigger.Pay, InvoiceStatus.Paid),
            (InvoiceStatus.Uncollectible, InvoiceTrigger.Void, InvoiceStatus.Void),
        ]);

    /// <summary>The state a trigger leads to.</summary>
    /// <param name="from">The current state.</param>
    /// <param name="trigger">What happened.</param>
    /// <returns>The next state.</returns>
    /// <exception cref="InvalidStateTransitionException">The trigger is not allowed in <paramref name="from"/>.</exception>
    public static InvoiceStatus Next(InvoiceStatus from, InvoiceTrigger trigger) => Table.Fire(from, trigger);

    /// <summary>Whether a trigger is allowed in a state.</summary>
    /// <param name="from">The current state.</param>
    /// <param name="trigger">The trigger.</param>
    /// <returns><see langword="true"/> when <see cref="Next"/> would succeed.</returns>
    public static bool CanFire(InvoiceStatus from, InvoiceTrigger trigger) => Table.CanFire(from, trigger);

    /// <summary>The triggers a state allows.</summary>
    /// <param name="from">The state.</param>
    /// <returns>The allowed triggers, in enum order.</returns>
    public static IReadOnlyList<InvoiceTrigger> AllowedTriggers(InvoiceStatus from) => [.. Table.Allowed(from)];

    /// <summary>Every transition of the table.</summary>
    public static IReadOnlyList<(InvoiceStatus From, InvoiceTrigger Trigger, InvoiceStatus To)> Transitions { get; } = [.. Table.Transitions];
}
