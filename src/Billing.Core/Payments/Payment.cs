namespace Billing.Payments;

/// <summary>The state of one charge attempt.</summary>
public enum PaymentStatus
{
    /// <summary>Recorded before calling the gateway; the outcome is not known yet (a crash here is retried with the same key).</summary>
    Pending = 0,

    /// <summary>The money was taken.</summary>
    Succeeded = 1,

    /// <summary>The customer must authenticate.</summary>
    RequiresAction = 2,

    /// <summary>Declined or failed.</summary>
    Failed = 3,
}

/// <summary>One charge attempt for an invoice, with its refunds.</summary>
/// <remarks><see cref="IdempotencyKey"/> is unique per store and derived from the invoice and attempt number
/// (<see cref="PaymentKeys.Charge"/>), so a retried or restarted run reuses it and the gateway never charges twice.</remarks>
public sealed record Payment
{
    /// <summary>The payment's id (<c>pay_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The invoice paid.</summary>
    public required string InvoiceId { get; init; }

    /// <summary>The customer.</summary>
    public required string CustomerId { get; init; }

    /// <summary>The attempt number for the invoice, from 1.</summary>
    public required int Attempt { get; init; }

    /// <summary>The idempotency key sent to the gateway; unique.</summary>
    public required string IdempotencyKey { get; init; }

    /// <summary>The amount charged.</summary>
    public required Money Amount { get; init; }

    /// <summary>The payment method charged.</summary>
    public required string PaymentMethod { get; init; }

    /// <summary>The state of the attempt.</summary>
    public required PaymentStatus Status { get; init; }

    /// <summary>The gateway's payment id, when known.</summary>
    public string? GatewayPaymentId { get; init; }

    /// <summary>The full gateway result once known.</summary>
    public PaymentResult? Result { get; init; }

    /// <summary>The amount refunded so far (never more than <see cref="Amount"/>).</summary>
    public required Money AmountRefunded { get; init; }

    /// <summary>How many refunds were made (the next refund's key uses this + 1).</summary>
    public int RefundCount { get; init; }

    /// <summary>When the attempt was made.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>The optimistic-concurrency version.</summary>
    public long Version { get; init; }
}
