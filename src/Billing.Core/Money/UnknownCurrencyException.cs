namespace Billing;

/// <summary>Thrown when a currency code is not a known ISO 4217 currency.</summary>
public sealed class UnknownCurrencyException : ArgumentException
{
    /// <summary>Creates the exception for the given code.</summary>
    /// <param name="code">The code that was looked up.</param>
    public UnknownCurrencyException(string code)
        : base($"'{code}' is not a known ISO 4217 currency code.", nameof(code))
    {
        Code = code;
    }

    /// <summary>The code that was looked up.</summary>
    public string Code { get; }
}
