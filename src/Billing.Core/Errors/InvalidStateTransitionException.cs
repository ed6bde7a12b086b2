namespace Billing;

/// <summary>
/// Thrown when a trigger is not allowed in an object's current state (cancelling a canceled subscription,
/// paying a voided invoice). It names the state, the trigger and the triggers the state does allow.
/// </summary>
/// <remarks>An illegal transition always fails loudly; it is never ignored.</remarks>
public sealed class InvalidStateTransitionException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="objectType">What kind of object (for example <c>subscription</c>).</param>
    /// <param name="state">The current state.</param>
    /// <param name="trigger">The trigger that is not allowed.</param>
    /// <param name="allowedTriggers">The triggers the current state allows.</param>
    public InvalidStateTransitionException(string objectType, string state, string trigger, IReadOnlyList<string> allowedTriggers)
        : base($"{(objectType.Length > 0 && "aeiou".Contains(objectType[0], StringComparison.Ordinal) ? "An" : "A")} {objectType} in state '{state}' cannot take '{trigger}'. Allowed in '{state}': {(allowedTriggers.Count == 0 ? "nothing (final state)" : string.Join(", ", allowedTriggers))}.")
    {
        ObjectType = objectType;
        State = state;
        Trigger = trigger;
        AllowedTriggers = allowedTriggers;
    }

    /// <summary>What kind of object (for example <c>subscription</c> or <c>invoice</c>).</summary>
    public string ObjectType { get; }

    /// <summary>The current state.</summary>
    public string State { get; }

    /// <summary>The trigger that was refused.</summary>
    public string Trigger { get; }

    /// <summary>The triggers the current state allows.</summary>
    public IReadOnlyList<string> AllowedTriggers { get; }
}
