namespace Billing.Payments;

/// <summary>A request to charge a payment method.</summary>
/// <param name="InvoiceId">The invoice being paid.</param>
/// <param name="CustomerId">The customer.</param>
/// <param name="PaymentMethod">The payment method reference (a token such as <c>pm_card_visa</c>).</param>
/// <param name="Amount">The amount to charge; positive.</param>
/// <param name="IdempotencyKey">Derived from the invoice and attempt (<see cref="PaymentKeys.Charge"/>): the gateway
/// must answer a repeated key with the first answer and never charge twice.</param>
public sealed record ChargeRequest(string InvoiceId, string CustomerId, string PaymentMethod, Money Amount, string IdempotencyKey);

/// <summary>A request to refund (part of) a succeeded payment.</summary>
/// <param name="GatewayPaymentId">The gateway's id of the payment to refund.</param>
/// <param name="Amount">The amount to refund; positive and at most what is left to refund.</param>
/// <param name="IdempotencyKey">Derived from the payment and refund number (<see cref="PaymentKeys.Refund"/>).</param>
public sealed record RefundRequest(string GatewayPaymentId, Money Amount, string IdempotencyKey);

/// <summary>What a gateway answered to a refund.</summary>
/// <param name="Succeeded">Whether the refund was made.</param>
/// <param name="GatewayRefundId">The gateway's refund id when it was.</param>
/// <param name="FailureMessage">Why not, when it was not.</param>
public sealed record RefundResult(bool Succeeded, string? GatewayRefundId, string? FailureMessage);

/// <summary>
/// The payment gateway port (Stripe, a fake, ...). Implementations must be idempotent on
/// <see cref="ChargeRequest.IdempotencyKey"/> and <see cref="RefundRequest.IdempotencyKey"/>.
/// </summary>
/// <remarks>Business outcomes (declines, authentication required) are <see cref="PaymentResult"/> values; only
/// programming errors and unexpected failures throw.</remarks>
public interface IPaymentGateway
{
    /// <summary>Charges a payment method.</summary>
    /// <param name="request">The charge.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The outcome.</returns>
    ValueTask<PaymentResult> ChargeAsync(ChargeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Refunds (part of) a payment.</summary>
    /// <param name="request">The refund.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The outcome.</returns>
    ValueTask<RefundResult> RefundAsync(RefundRequest request, CancellationToken cancellationToken = default);
}

/// <summary>Idempotency keys derived from the domain, so a retry or a restart can never charge twice.</summary>
public static class PaymentKeys
{
    /// <summary>The key of charge attempt <paramref name="attempt"/> of an invoice: <c>{invoiceId}/charge/{attempt}</c>.</summary>
    /// <param name="invoiceId">The invoice.</param>
    /// <param name="attempt">The attempt number, from 1.</param>
    /// <returns>The key; the same inputs always give the same key.</returns>
    public static string Charge(string invoiceId, int attempt)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(invoiceId);
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{invoiceId}/charge/{attempt}");
    }

    /// <summary>The key of refund number <paramref name="refundNumber"/> of a payment: <c>{paymentId}/refund/{n}</c>.</summary>
    /// <param name="paymentId">The payment.</param>
    /// <param name="refundNumber">The refund number, from 1.</param>
    /// <returns>The key.</returns>
    public static string Refund(string paymentId, int refundNumber)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(paymentId);
        ArgumentOutOfRangeException.ThrowIfLessThan(refundNumber, 1);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{paymentId}/refund/{refundNumber}");
    }
}
