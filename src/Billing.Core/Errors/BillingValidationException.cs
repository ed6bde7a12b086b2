namespace Billing;

/// <summary>Bad input to an engine operation: names the field and says what is wrong. Nothing was changed.</summary>
public sealed class BillingValidationException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="field">The input field (for example <c>quantity</c>).</param>
    /// <param name="message">What is wrong with it.</param>
    public BillingValidationException(string field, string message)
        : base(message, field)
    {
        Field = field;
    }

    /// <summary>The input field.</summary>
    public string Field { get; }
}
