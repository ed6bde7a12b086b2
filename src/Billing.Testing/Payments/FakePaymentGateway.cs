using System.Globalization;
using Billing.Payments;

namespace Billing.Testing.Payments;

/// <summary>
/// A thread-safe, deterministic in-memory <see cref="IPaymentGateway"/> that answers like Stripe test mode: the
/// payment method decides the outcome (<c>pm_card_visa</c> succeeds, <c>pm_card_chargeDeclined</c> is declined, ...),
/// repeated idempotency keys replay the first answer, and every call is recorded for assertions.
/// </summary>
/// <remarks>
/// <para>Payment methods: <see cref="Visa"/>, <see cref="Mastercard"/> and any raw card number (ASCII digits only,
/// 12 to 19 of them, passing the Luhn check) succeed; a digits-only string that is not a valid card number is declined
/// hard with <c>incorrect_number</c>. The Stripe test card numbers 4000000000000002 (<c>generic_decline</c>),
/// 4000000000009995 (<c>insufficient_funds</c>), 4100000000000019 (<c>fraudulent</c>) and 4000002760003184
/// (authentication required) behave like the matching tokens. An unknown token is declined hard with
/// <c>resource_missing</c> (Stripe's "No such PaymentMethod").</para>
/// <para>Idempotency: the first call with a key decides the result, which every later call with that key gets back
/// unchanged (whatever the outcome, <see cref="PaymentOutcome.FailedRetryable"/> included, and whatever
/// <see cref="FailTimes"/> was told meanwhile) without charging again. A replay with a different amount or payment
/// method throws <see cref="InvalidOperationException"/>, as Stripe answers with an idempotency error.</para>
/// <para>Ids are sequential, not random: the n-th distinct charge is <c>ch_fake_00000n</c> and the n-th refund
/// <c>re_fake_00000n</c>. A <see cref="PaymentOutcome.FailedRetryable"/> result and the decline of an unknown token
/// carry no payment id (nothing was created), but still take their number.</para>
/// <para>All members may be called concurrently; one lock serializes them and the recorded lists are snapshots.</para>
/// </remarks>
public sealed class FakePaymentGateway : IPaymentGateway
{
    /// <summary>A Visa card that always succeeds.</summary>
    public const string Visa = "pm_card_visa";

    /// <summary>A Mastercard that always succeeds.</summary>
    public const string Mastercard = "pm_card_mastercard";

    /// <summary>The Visa test card number; any other Luhn-valid number succeeds too.</summary>
    public const string VisaNumber = "4242424242424242";

    /// <summary>Always declined soft with <c>generic_decline</c>.</summary>
    public const string ChargeDeclined = "pm_card_chargeDeclined";

    /// <summary>Always declined soft with <c>insufficient_funds</c>.</summary>
    public const string ChargeDeclinedInsufficientFunds = "pm_card_chargeDeclinedInsufficientFunds";

    /// <summary>Always declined hard with <c>fraudulent</c>.</summary>
    public const string ChargeDeclinedFraudulent = "pm_card_chargeDeclinedFraudulent";

    /// <summary>Always requires authentication; the client secret is <c>{paymentId}_secret_fake</c>.</summary>
    public const string AuthenticationRequired = "pm_card_authenticationRequired";

    /// <summary>Always fails with <see cref="PaymentOutcome.FailedRetryable"/> (a gateway timeout).</summary>
    public const string GatewayTimeout = "pm_card_gatewayTimeout";

    private readonly Lock _gate = new();
    private readonly List<ChargeRequest> _calls = [];
    private readonly List<string> _chargeOrder = [];
    private readonly Dictionary<string, FakeCharge> _charges = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _keysByPaymentId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (RefundRequest Request, RefundResult Result)> _refunds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (int Remaining, PaymentResult? Failure)> _programmedFailures = new(StringComparer.Ordinal);
    private long _refundCount;

    /// <summary>Every charge call in order, replays included (a snapshot).</summary>
    /// <remarks>Includes replays rejected for a mismatched amount or payment method; excludes calls rejected by
    /// argument validation or cancelled before they started.</remarks>
    public IReadOnlyList<ChargeRequest> Calls
    {
        get
        {
            lock (_gate)
            {
                return [.. _calls];
            }
        }
    }

    /// <summary>One entry per distinct idempotency key, in the order first seen, with its result and refunds (a snapshot).</summary>
    public IReadOnlyList<FakeCharge> Charges
    {
        get
        {
            lock (_gate)
            {
                return [.. _chargeOrder.Select(key => _charges[key])];
            }
        }
    }

    /// <summary>
    /// Makes the next <paramref name="times"/> charges with <paramref name="paymentMethod"/> get
    /// <paramref name="failure"/> instead of the method's usual outcome; after that the method behaves as usual.
    /// </summary>
    /// <param name="paymentMethod">The payment method to fail (compared ordinally).</param>
    /// <param name="times">How many charges fail; 0 clears a previous setting.</param>
    /// <param name="failure">The result to give; by default a soft decline with <c>insufficient_funds</c> and its own payment id.</param>
    /// <remarks>Only a charge with a new idempotency key uses up one failure; a replay returns its first result and
    /// consumes nothing. Calling again for the same method replaces the remaining count rather than adding to it.
    /// A given <paramref name="failure"/> is returned as it is, including its <see cref="PaymentResult.GatewayPaymentId"/>.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="times"/> is negative.</exception>
    /// <exception cref="ArgumentException"><paramref name="paymentMethod"/> is empty, or <paramref name="failure"/> is a success.</exception>
    public void FailTimes(string paymentMethod, int times, PaymentResult? failure = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(paymentMethod);
        ArgumentOutOfRangeException.ThrowIfNegative(times);
        if (failure is { IsSuccess: true })
        {
            throw new ArgumentException("A programmed failure cannot be a success.", nameof(failure));
        }

        lock (_gate)
        {
            if (times == 0)
            {
                _programmedFailures.Remove(paymentMethod);
            }
            else
            {
                _programmedFailures[paymentMethod] = (times, failure);
            }
        }
    }

    /// <summary>The net amount captured in a currency: succeeded charges minus their refunds.</summary>
    /// <param name="currency">The currency to total.</param>
    /// <returns>The total; zero when nothing was captured in that currency.</returns>
    public Money TotalCaptured(Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        lock (_gate)
        {
            var total = Money.Zero(currency);
            foreach (var charge in _charges.Values)
            {
                if (charge.IsCaptured && charge.Amount.Currency == currency)
                {
                    total += charge.AmountRemaining;
                }
            }

            return total;
        }
    }

    /// <inheritdoc />
    /// <remarks>See the class remarks for the outcome of each payment method and the idempotency rules.</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="ArgumentException">The payment method or idempotency key is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The amount is not positive.</exception>
    /// <exception cref="InvalidOperationException">The key was used before with a different amount or payment method.</exception>
    public ValueTask<PaymentResult> ChargeAsync(ChargeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(request.PaymentMethod, nameof(request));
        ArgumentException.ThrowIfNullOrWhiteSpace(request.IdempotencyKey, nameof(request));
        if (!request.Amount.IsPositive)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Amount, "The amount to charge must be positive.");
        }

        cancellationToken.ThrowIfCancellationRequested();

        lock (_gate)
        {
            _calls.Add(request);
            if (_charges.TryGetValue(request.IdempotencyKey, out var existing))
            {
                if (existing.Amount != request.Amount || !string.Equals(existing.PaymentMethod, request.PaymentMethod, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException(
                        $"Keys for idempotent requests can only be used with the same parameters they were first used with: " +
                        $"'{request.IdempotencyKey}' was used for {existing.Amount} with '{existing.PaymentMethod}', " +
                        $"not {request.Amount} with '{request.PaymentMethod}'.");
                }

                return ValueTask.FromResult(existing.Result);
            }

            var paymentId = Id("ch_fake_", _chargeOrder.Count + 1);
            var result = ProgrammedFailure(request.PaymentMethod, paymentId) ?? Decide(request.PaymentMethod, paymentId);
            _charges.Add(request.IdempotencyKey, new FakeCharge(request, result, Money.Zero(request.Amount.Currency)));
            _chargeOrder.Add(request.IdempotencyKey);
            if (result.GatewayPaymentId is { } id)
            {
                _keysByPaymentId.TryAdd(id, request.IdempotencyKey);
            }

            return ValueTask.FromResult(result);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// <para>Only a succeeded charge can be refunded, in its own currency, and never beyond what is left: otherwise,
    /// and for an unknown payment id, the result is a failure (an expected outcome, not an exception).</para>
    /// <para>A successful refund is idempotent on its key: a replay returns the first result and refunds nothing more;
    /// a replay with a different payment or amount throws <see cref="InvalidOperationException"/>. A failed refund
    /// does not use up its key (like a Stripe request rejected before it executes), so the key can be retried with
    /// other parameters.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="ArgumentException">The payment id or idempotency key is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The amount is not positive.</exception>
    /// <exception cref="InvalidOperationException">The key was used before for a different refund.</exception>
    public ValueTask<RefundResult> RefundAsync(RefundRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(request.GatewayPaymentId, nameof(request));
        ArgumentException.ThrowIfNullOrWhiteSpace(request.IdempotencyKey, nameof(request));
        if (!request.Amount.IsPositive)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Amount, "The amount to refund must be positive.");
        }

        cancellationToken.ThrowIfCancellationRequested();

        lock (_gate)
        {
            if (_refunds.TryGetValue(request.IdempotencyKey, out var previous))
            {
                if (previous.Request != request)
                {
                    throw new InvalidOperationException(
                        $"Keys for idempotent requests can only be used with the same parameters they were first used with: " +
                        $"'{request.IdempotencyKey}' refunded {previous.Request.Amount} of '{previous.Request.GatewayPaymentId}', " +
                        $"not {request.Amount} of '{request.GatewayPaymentId}'.");
                }

                return ValueTask.FromResult(previous.Result);
            }

            if (!_keysByPaymentId.TryGetValue(request.GatewayPaymentId, out var chargeKey))
            {
                return Failed($"No such payment: '{request.GatewayPaymentId}'.");
            }

            var charge = _charges[chargeKey];
            if (!charge.IsCaptured)
            {
                return Failed($"Payment '{request.GatewayPaymentId}' did not succeed ({charge.Result.Outcome}); there is nothing to refund.");
            }

            if (charge.Amount.Currency != request.Amount.Currency)
            {
                return Failed($"Payment '{request.GatewayPaymentId}' is in {charge.Amount.Currency}, not {request.Amount.Currency}.");
            }

            if (request.Amount > charge.AmountRemaining)
            {
                return Failed($"Refund of {request.Amount} is greater than the {charge.AmountRemaining} left to refund on '{request.GatewayPaymentId}'.");
            }

            _charges[chargeKey] = charge with { AmountRefunded = charge.AmountRefunded + request.Amount };
            var result = new RefundResult(true, Id("re_fake_", ++_refundCount), null);
            _refunds.Add(request.IdempotencyKey, (request, result));
            return ValueTask.FromResult(result);
        }

        static ValueTask<RefundResult> Failed(string message) => ValueTask.FromResult(new RefundResult(false, null, message));
    }

    /// <summary>Whether <paramref name="number"/> is a plausible card number: 12 to 19 ASCII digits passing the Luhn check.</summary>
    /// <param name="number">The candidate.</param>
    /// <returns><see langword="true"/> when valid.</returns>
    internal static bool IsValidCardNumber(string number)
    {
        if (number.Length is < 12 or > 19 || !number.All(char.IsAsciiDigit))
        {
            return false;
        }

        var sum = 0;
        var doubled = false;
        for (var i = number.Length - 1; i >= 0; i--)
        {
            var digit = number[i] - '0';
            if (doubled)
            {
                digit *= 2;
                if (digit > 9)
                {
                    digit -= 9;
                }
            }

            sum += digit;
            doubled = !doubled;
        }

        return sum % 10 == 0;
    }

    private static PaymentResult Decide(string paymentMethod, string paymentId) => paymentMethod switch
    {
        Visa or Mastercard or VisaNumber => PaymentResult.Succeeded(paymentId),
        ChargeDeclined or "4000000000000002" =>
            PaymentResult.Declined(DeclineType.Soft, "generic_decline", "Your card was declined.", paymentId),
        ChargeDeclinedInsufficientFunds or "4000000000009995" =>
            PaymentResult.Declined(DeclineType.Soft, "insufficient_funds", "Your card has insufficient funds.", paymentId),
        ChargeDeclinedFraudulent or "4100000000000019" =>
            PaymentResult.Declined(DeclineType.Hard, "fraudulent", "Your card was declined.", paymentId),
        AuthenticationRequired or "4000002760003184" =>
            PaymentResult.RequiresAction(paymentId, paymentId + "_secret_fake"),
        GatewayTimeout => PaymentResult.FailedRetryable("The payment gateway timed out."),
        _ when paymentMethod.All(char.IsAsciiDigit) => IsValidCardNumber(paymentMethod)
            ? PaymentResult.Succeeded(paymentId)
            : PaymentResult.Declined(DeclineType.Hard, "incorrect_number", "Your card number is incorrect.", paymentId),
        _ => PaymentResult.Declined(DeclineType.Hard, "resource_missing", $"No such PaymentMethod: '{paymentMethod}'."),
    };

    private static string Id(string prefix, long number) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}{number:D6}");

    private PaymentResult? ProgrammedFailure(string paymentMethod, string paymentId)
    {
        if (!_programmedFailures.TryGetValue(paymentMethod, out var programmed))
        {
            return null;
        }

        if (programmed.Remaining <= 1)
        {
            _programmedFailures.Remove(paymentMethod);
        }
        else
        {
            _programmedFailures[paymentMethod] = (programmed.Remaining - 1, programmed.Failure);
        }

        return programmed.Failure
            ?? PaymentResult.Declined(DeclineType.Soft, "insufficient_funds", "Your card has insufficient funds.", paymentId);
    }
}

/// <summary>One distinct charge (idempotency key) the <see cref="FakePaymentGateway"/> processed.</summary>
/// <param name="Request">The first request made with the key.</param>
/// <param name="Result">The result given to it and to every replay.</param>
/// <param name="AmountRefunded">How much of a succeeded charge was refunded so far.</param>
public sealed record FakeCharge(ChargeRequest Request, PaymentResult Result, Money AmountRefunded)
{
    /// <summary>The idempotency key.</summary>
    public string IdempotencyKey => Request.IdempotencyKey;

    /// <summary>The payment method charged.</summary>
    public string PaymentMethod => Request.PaymentMethod;

    /// <summary>The amount requested.</summary>
    public Money Amount => Request.Amount;

    /// <summary>The gateway payment id, when one was created.</summary>
    public string? GatewayPaymentId => Result.GatewayPaymentId;

    /// <summary>Whether the money was taken.</summary>
    public bool IsCaptured => Result.IsSuccess;

    /// <summary>What is still captured and refundable: <see cref="Amount"/> minus <see cref="AmountRefunded"/> for a
    /// succeeded charge, zero otherwise.</summary>
    public Money AmountRemaining => IsCaptured ? Amount - AmountRefunded : Money.Zero(Amount.Currency);
}
