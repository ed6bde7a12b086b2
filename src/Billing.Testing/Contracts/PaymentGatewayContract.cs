using Billing.Payments;
using Xunit;

namespace Billing.Testing.Contracts;

/// <summary>
/// The behaviour every <see cref="IPaymentGateway"/> adapter must have: derive a test class, create the gateway and
/// name a succeeding and a declining payment method, and the facts run against it.
/// </summary>
/// <remarks>
/// <para>Each fact creates its own gateway and uses fresh idempotency keys (a new GUID per fact), so the suite can run
/// in parallel and repeatedly against a shared sandbox account. Amounts are small, in
/// <see cref="ContractCurrency"/>.</para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Test names read as sentences.")]
public abstract class PaymentGatewayContract
{
    private readonly string _run = Guid.NewGuid().ToString("N");

    /// <summary>A payment method the gateway charges successfully.</summary>
    protected abstract string SucceedingPaymentMethod { get; }

    /// <summary>A payment method the gateway declines (soft or hard).</summary>
    protected abstract string DecliningPaymentMethod { get; }

    /// <summary>The currency the facts charge in; USD unless overridden.</summary>
    protected virtual Currency ContractCurrency => Currency.USD;

    /// <summary>A charge that succeeds returns <see cref="PaymentOutcome.Succeeded"/> with a gateway payment id.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_succeeding_charge_returns_Succeeded_with_a_gateway_payment_id()
    {
        var gateway = CreateGateway();

        var result = await gateway.ChargeAsync(Charge(SucceedingPaymentMethod, 2_000, "a"));

        Assert.Equal(PaymentOutcome.Succeeded, result.Outcome);
        Assert.True(result.IsSuccess);
        Assert.False(string.IsNullOrWhiteSpace(result.GatewayPaymentId));
    }

    /// <summary>The same idempotency key twice returns the same payment id and result.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task The_same_idempotency_key_twice_returns_the_same_payment_and_result()
    {
        var gateway = CreateGateway();
        var request = Charge(SucceedingPaymentMethod, 2_500, "same");

        var first = await gateway.ChargeAsync(request);
        var second = await gateway.ChargeAsync(request);

        Assert.Equal(PaymentOutcome.Succeeded, first.Outcome);
        Assert.Equal(first.GatewayPaymentId, second.GatewayPaymentId);
        Assert.Equal(first, second);
    }

    /// <summary>A different idempotency key charges again, with a different payment id.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_different_key_charges_again_with_a_different_payment_id()
    {
        var gateway = CreateGateway();

        var first = await gateway.ChargeAsync(Charge(SucceedingPaymentMethod, 1_000, "one"));
        var second = await gateway.ChargeAsync(Charge(SucceedingPaymentMethod, 1_000, "two"));

        Assert.True(first.IsSuccess);
        Assert.True(second.IsSuccess);
        Assert.NotEqual(first.GatewayPaymentId, second.GatewayPaymentId);
    }

    /// <summary>A declining payment method gives a <see cref="PaymentOutcome.Declined"/> value, not an exception.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_declining_payment_method_returns_Declined_as_a_value()
    {
        var gateway = CreateGateway();

        var result = await gateway.ChargeAsync(Charge(DecliningPaymentMethod, 1_500, "declined"));

        Assert.Equal(PaymentOutcome.Declined, result.Outcome);
        Assert.False(result.IsSuccess);
        Assert.NotNull(result.DeclineType);
        Assert.False(string.IsNullOrWhiteSpace(result.DeclineCode));
    }

    /// <summary>Refunding part of a payment and then the rest both succeed, with distinct refund ids.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Refunding_part_then_the_rest_succeeds()
    {
        var gateway = CreateGateway();
        var paymentId = await SucceededPaymentAsync(gateway, 3_000, "refund-parts");

        var part = await gateway.RefundAsync(Refund(paymentId, 1_000, 1));
        var rest = await gateway.RefundAsync(Refund(paymentId, 2_000, 2));

        Assert.True(part.Succeeded, part.FailureMessage);
        Assert.True(rest.Succeeded, rest.FailureMessage);
        Assert.False(string.IsNullOrWhiteSpace(part.GatewayRefundId));
        Assert.False(string.IsNullOrWhiteSpace(rest.GatewayRefundId));
        Assert.NotEqual(part.GatewayRefundId, rest.GatewayRefundId);
    }

    /// <summary>Refunding more than remains is a failed <see cref="RefundResult"/>, not an exception, and refunds nothing.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Refunding_more_than_remains_fails_as_a_result()
    {
        var gateway = CreateGateway();
        var paymentId = await SucceededPaymentAsync(gateway, 2_000, "refund-too-much");
        var part = await gateway.RefundAsync(Refund(paymentId, 1_500, 1));

        var tooMuch = await gateway.RefundAsync(Refund(paymentId, 501, 2));
        var rest = await gateway.RefundAsync(Refund(paymentId, 500, 3));

        Assert.True(part.Succeeded, part.FailureMessage);
        Assert.False(tooMuch.Succeeded);
        Assert.Null(tooMuch.GatewayRefundId);
        Assert.False(string.IsNullOrWhiteSpace(tooMuch.FailureMessage));
        Assert.True(rest.Succeeded, rest.FailureMessage);
    }

    /// <summary>A refund repeated with the same key returns the first result and refunds only once.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task A_refund_replayed_with_the_same_key_returns_the_first_result_and_refunds_once()
    {
        var gateway = CreateGateway();
        var paymentId = await SucceededPaymentAsync(gateway, 2_000, "refund-replay");
        var request = Refund(paymentId, 1_200, 1);

        var first = await gateway.RefundAsync(request);
        var replay = await gateway.RefundAsync(request);
        var rest = await gateway.RefundAsync(Refund(paymentId, 800, 2));
        var beyond = await gateway.RefundAsync(Refund(paymentId, 1, 3));

        Assert.True(first.Succeeded, first.FailureMessage);
        Assert.Equal(first, replay);
        Assert.True(rest.Succeeded, rest.FailureMessage);
        Assert.False(beyond.Succeeded);
    }

    /// <summary>Refunding a payment id the gateway does not know is a failed <see cref="RefundResult"/>, not an exception.</summary>
    /// <returns>The test.</returns>
    [Fact]
    public async Task Refunding_an_unknown_payment_fails_as_a_result()
    {
        var gateway = CreateGateway();

        var result = await gateway.RefundAsync(Refund("pay_unknown_" + _run, 100, 1));

        Assert.False(result.Succeeded);
        Assert.Null(result.GatewayRefundId);
        Assert.False(string.IsNullOrWhiteSpace(result.FailureMessage));
    }

    /// <summary>Creates the gateway under test; called once per fact.</summary>
    /// <returns>A gateway.</returns>
    protected abstract IPaymentGateway CreateGateway();

    private ChargeRequest Charge(string paymentMethod, long minorUnits, string name) => new(
        InvoiceId: $"in_contract_{_run}_{name}",
        CustomerId: $"cus_contract_{_run}",
        PaymentMethod: paymentMethod,
        Amount: Money.FromMinorUnits(minorUnits, ContractCurrency),
        IdempotencyKey: PaymentKeys.Charge($"in_contract_{_run}_{name}", 1));

    private RefundRequest Refund(string paymentId, long minorUnits, int number) => new(
        paymentId,
        Money.FromMinorUnits(minorUnits, ContractCurrency),
        PaymentKeys.Refund(paymentId, number));

    private async Task<string> SucceededPaymentAsync(IPaymentGateway gateway, long minorUnits, string name)
    {
        var result = await gateway.ChargeAsync(Charge(SucceedingPaymentMethod, minorUnits, name));
        Assert.True(result.IsSuccess, result.Message);
        return Assert.IsType<string>(result.GatewayPaymentId);
    }
}
