namespace Billing.Payments;

/// <summary>The kinds of result a charge can have. Expected business outcomes are values, not exceptions.</summary>
public enum PaymentOutcome
{
    /// <summary>The money was taken.</summary>
    Succeeded = 0,

    /// <summary>The customer must authenticate (SCA / 3-D Secure) using <see cref="PaymentResult.ClientSecret"/>.</summary>
    RequiresAction = 1,

    /// <summary>The issuer declined; see <see cref="PaymentResult.DeclineType"/> and <see cref="PaymentResult.DeclineCode"/>.</summary>
    Declined = 2,

    /// <summary>A transient failure (network, gateway outage); retrying with the same idempotency key is safe.</summary>
    FailedRetryable = 3,
}
