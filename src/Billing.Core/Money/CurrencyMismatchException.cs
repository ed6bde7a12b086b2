namespace Billing;

/// <summary>
/// Thrown when an operation combines two amounts of different currencies (adding USD to EUR, comparing them,
/// prorating from a USD price to a EUR price). It names both currencies.
/// </summary>
/// <remarks>A currency mismatch is a programming error, never an expected outcome: convert first.</remarks>
public sealed class CurrencyMismatchException : InvalidOperationException
{
    /// <summary>Creates the exception for the two currencies involved.</summary>
    /// <param name="expected">The currency of the left operand.</param>
    /// <param name="actual">The currency of the right operand.</param>
    public CurrencyMismatchException(Currency expected, Currency actual)
        : base($"Currency mismatch: {expected.Code} and {actual.Code} cannot be combined.")
    {
        Expected = expected;
        Actual = actual;
    }

    /// <summary>The currency of the left operand.</summary>
    public Currency Expected { get; }

    /// <summary>The currency of the right operand.</summary>
    public Currency Actual { get; }
}
