namespace Billing.Proration;

/// <summary>The outcome of prorating a change: the credit and debit lines (none for <see cref="ProrationBehavior.None"/>).</summary>
/// <remarks>A value type: computing it allocates nothing.</remarks>
public readonly record struct ProrationResult
{
    internal ProrationResult(ProrationBehavior behavior, ProrationLine? credit, ProrationLine? debit, Money net)
    {
        Behavior = behavior;
        Credit = credit;
        Debit = debit;
        Net = net;
    }

    /// <summary>The behaviour that was applied.</summary>
    public ProrationBehavior Behavior { get; }

    /// <summary>The credit for unused time on the old price; null when the behaviour is <see cref="ProrationBehavior.None"/>.</summary>
    public ProrationLine? Credit { get; }

    /// <summary>The debit for remaining time on the new price; null when the behaviour is <see cref="ProrationBehavior.None"/>.</summary>
    public ProrationLine? Debit { get; }

    /// <summary>Credit plus debit: what the change costs (positive) or returns (negative) overall.</summary>
    public Money Net { get; }

    /// <summary>Whether there are lines to bill.</summary>
    public bool HasLines => Credit is not null;

    /// <summary>Whether the lines must be invoiced now (<see cref="ProrationBehavior.AlwaysInvoice"/>) rather than on the next invoice.</summary>
    public bool InvoiceImmediately => Behavior == ProrationBehavior.AlwaysInvoice && HasLines;
}
