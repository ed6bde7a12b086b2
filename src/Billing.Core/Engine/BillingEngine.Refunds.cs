using Billing.Payments;

namespace Billing.Engine;

public sealed partial class BillingEngine
{
    /// <summary>
    /// Refunds a succeeded payment, fully (no amount) or partly; never more than what is left to refund.
    /// Emits <c>payment.refunded</c>. The gateway call carries an idempotency key derived from the payment and the
    /// refund number, so a retried refund is never paid out twice.
    /// </summary>
    /// <param name="paymentId">The payment.</param>
    /// <param name="amount">The amount to refund, or null for everything not yet refunded.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The payment after the refund, and the gateway's answer (a refused refund is a result, not an exception).</returns>
    /// <exception cref="BillingValidationException">Not positive, more than refundable, another currency, or a payment that did not succeed.</exception>
    public async Task<(Payment Payment, RefundResult Result)> RefundPaymentAsync(string paymentId, Money? amount = null, CancellationToken cancellationToken = default)
    {
        var (request, at) = await InSessionAsync(async session =>
        {
            var payment = await session.Payments.GetAsync(paymentId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("payment", paymentId);
            Require(payment.Status == PaymentStatus.Succeeded && payment.GatewayPaymentId is not null, "payment", "Only a succeeded payment can be refunded.");
            var refundable = payment.Amount - payment.AmountRefunded;
            var requested = amount ?? refundable;
            Require(ReferenceEquals(requested.Currency, payment.Amount.Currency), "amount", $"The refund must be in {payment.Amount.Currency.Code}.");
            Require(requested.IsPositive, "amount", "A refund must be positive.");
            Require(requested <= refundable, "amount", $"Only {refundable} of the payment can still be refunded.");
            var customer = await session.Customers.GetAsync(payment.CustomerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", payment.CustomerId);
            var now = await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            return (new RefundRequest(payment.GatewayPaymentId!, requested, PaymentKeys.Refund(payment.Id, payment.RefundCount + 1)), now);
        }, cancellationToken).ConfigureAwait(false);

        var result = await _gateway.RefundAsync(request, cancellationToken).ConfigureAwait(false);
        var updated = await InSessionAsync(async session =>
        {
            var payment = await session.Payments.GetAsync(paymentId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("payment", paymentId);
            if (!result.Succeeded || PaymentKeys.Refund(payment.Id, payment.RefundCount + 1) != request.IdempotencyKey)
            {
                return payment; // refused, or already recorded by a concurrent call with the same key
            }

            var refunded = payment with { AmountRefunded = payment.AmountRefunded + request.Amount, RefundCount = payment.RefundCount + 1 };
            session.Payments.Update(refunded);
            session.Outbox.Append(NewEvent("payment.refunded", at, "payment", payment.Id, payment.CustomerId, ("amount", request.Amount.MinorUnits), ("amount_refunded", refunded.AmountRefunded.MinorUnits), ("invoice", payment.InvoiceId)));
            return refunded with { Version = payment.Version + 1 };
        }, cancellationToken).ConfigureAwait(false);
        return (updated, result);
    }
}
