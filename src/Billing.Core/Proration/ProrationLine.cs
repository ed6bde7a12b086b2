namespace Billing.Proration;

/// <summary>One proration line: a credit for unused time on the old price or a debit for remaining time on the new one.</summary>
/// <param name="Kind">Credit or debit.</param>
/// <param name="Amount">The signed amount: zero or negative for a credit, zero or positive for a debit.</param>
/// <param name="From">The first instant the line covers (the change instant).</param>
/// <param name="To">The end of the covered time (the period end).</param>
/// <param name="Formula">How the amount was computed.</param>
public readonly record struct ProrationLine(ProrationLineKind Kind, Money Amount, DateTimeOffset From, DateTimeOffset To, ProrationFormula Formula);
