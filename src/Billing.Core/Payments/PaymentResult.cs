namespace Billing.Payments;

/// <summary>What a payment gateway answered to a charge.</summary>
public sealed record PaymentResult
{
    private PaymentResult(PaymentOutcome outcome)
    {
        Outcome = outcome;
    }

    /// <summary>The kind of result.</summary>
    public PaymentOutcome Outcome { get; private init; }

    /// <summary>The gateway's id of the payment, when one was created.</summary>
    public string? GatewayPaymentId { get; private init; }

    /// <summary>For <see cref="PaymentOutcome.RequiresAction"/>: the secret the client uses to authenticate.</summary>
    public string? ClientSecret { get; private init; }

    /// <summary>For <see cref="PaymentOutcome.Declined"/>: soft or hard.</summary>
    public DeclineType? DeclineType { get; private init; }

    /// <summary>For <see cref="PaymentOutcome.Declined"/>: the issuer's code (for example <c>insufficient_funds</c>).</summary>
    public string? DeclineCode { get; private init; }

    /// <summary>A human-readable explanation for failures.</summary>
    public string? Message { get; private init; }

    /// <summary>Whether the money was taken.</summary>
    public bool IsSuccess => Outcome == PaymentOutcome.Succeeded;

    /// <summary>A successful charge.</summary>
    /// <param name="gatewayPaymentId">The gateway's payment id.</param>
    /// <returns>The result.</returns>
    public static PaymentResult Succeeded(string gatewayPaymentId) =>
        new(PaymentOutcome.Succeeded) { GatewayPaymentId = Required(gatewayPaymentId) };

    /// <summary>A charge that needs customer authentication.</summary>
    /// <param name="gatewayPaymentId">The gateway's payment id.</param>
    /// <param name="clientSecret">The secret for the client to complete authentication.</param>
    /// <returns>The result.</returns>
    public static PaymentResult RequiresAction(string gatewayPaymentId, string clientSecret) =>
        new(PaymentOutcome.RequiresAction) { GatewayPaymentId = Required(gatewayPaymentId), ClientSecret = Required(clientSecret), Message = "The customer must authenticate the payment." };

    /// <summary>A declined charge.</summary>
    /// <param name="type">Soft (may be retried) or hard (never retried).</param>
    /// <param name="declineCode">The issuer's decline code.</param>
    /// <param name="message">An explanation.</param>
    /// <param name="gatewayPaymentId">The gateway's payment id, if one was created.</param>
    /// <returns>The result.</returns>
    public static PaymentResult Declined(DeclineType type, string declineCode, string message, string? gatewayPaymentId = null) =>
        new(PaymentOutcome.Declined) { DeclineType = type, DeclineCode = Required(declineCode), Message = message, GatewayPaymentId = gatewayPaymentId };

    /// <summary>A transient failure that may be retried with the same idempotency key.</summary>
    /// <param name="message">An explanation.</param>
    /// <returns>The result.</returns>
    public static PaymentResult FailedRetryable(string message) =>
        new(PaymentOutcome.FailedRetryable) { Message = Required(message) };

    private static string Required(string value, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(value))] string? name = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(value, name);
        return value;
    }
}
