using System.Collections.Concurrent;
using Billing.Payments;
using Billing.Testing.Contracts;
using Billing.Testing.Payments;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Testing.Tests.Payments;

public sealed class FakePaymentGatewayContractTests : PaymentGatewayContract
{
    protected override string SucceedingPaymentMethod => FakePaymentGateway.Visa;

    protected override string DecliningPaymentMethod => FakePaymentGateway.ChargeDeclined;

    protected override IPaymentGateway CreateGateway() => new FakePaymentGateway();
}

public sealed class FakePaymentGatewayTests
{
    private static int s_invoice;

    private static Money Usd(long minorUnits) => Money.FromMinorUnits(minorUnits, Currency.USD);

    private static ChargeRequest Charge(string paymentMethod, long minorUnits = 1_000, string? key = null, Currency? currency = null)
    {
        var invoice = "in_" + Interlocked.Increment(ref s_invoice);
        return new ChargeRequest(invoice, "cus_1", paymentMethod, Money.FromMinorUnits(minorUnits, currency ?? Currency.USD), key ?? PaymentKeys.Charge(invoice, 1));
    }

    private static async Task<string> PaidAsync(FakePaymentGateway gateway, long minorUnits, Currency? currency = null)
    {
        var result = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa, minorUnits, currency: currency));
        Assert.True(result.IsSuccess);
        return result.GatewayPaymentId!;
    }

    // ---- Tokens ----

    [Theory]
    [InlineData("pm_card_visa")]
    [InlineData("pm_card_mastercard")]
    [InlineData("4242424242424242")]
    public async Task Succeeding_tokens_succeed_with_a_payment_id(string paymentMethod)
    {
        var result = await new FakePaymentGateway().ChargeAsync(Charge(paymentMethod));

        Assert.Equal(PaymentOutcome.Succeeded, result.Outcome);
        Assert.Equal("ch_fake_000001", result.GatewayPaymentId);
        Assert.Null(result.DeclineType);
        Assert.Null(result.DeclineCode);
    }

    [Theory]
    [InlineData("pm_card_chargeDeclined", DeclineType.Soft, "generic_decline")]
    [InlineData("pm_card_chargeDeclinedInsufficientFunds", DeclineType.Soft, "insufficient_funds")]
    [InlineData("pm_card_chargeDeclinedFraudulent", DeclineType.Hard, "fraudulent")]
    [InlineData("4000000000000002", DeclineType.Soft, "generic_decline")]
    [InlineData("4000000000009995", DeclineType.Soft, "insufficient_funds")]
    [InlineData("4100000000000019", DeclineType.Hard, "fraudulent")]
    [InlineData("pm_card_unknown", DeclineType.Hard, "resource_missing")]
    [InlineData("tok_visa", DeclineType.Hard, "resource_missing")]
    public async Task Declining_tokens_are_declined_as_values(string paymentMethod, DeclineType type, string code)
    {
        var gateway = new FakePaymentGateway();

        var result = await gateway.ChargeAsync(Charge(paymentMethod));

        Assert.Equal(PaymentOutcome.Declined, result.Outcome);
        Assert.Equal(type, result.DeclineType);
        Assert.Equal(code, result.DeclineCode);
        Assert.False(string.IsNullOrWhiteSpace(result.Message));
        Assert.False(result.IsSuccess);
        Assert.Equal(Usd(0), gateway.TotalCaptured(Currency.USD));
    }

    [Theory]
    [InlineData("pm_card_authenticationRequired")]
    [InlineData("4000002760003184")]
    public async Task Authentication_required_gives_a_client_secret_derived_from_the_payment_id(string paymentMethod)
    {
        var gateway = new FakePaymentGateway();

        var result = await gateway.ChargeAsync(Charge(paymentMethod));

        Assert.Equal(PaymentOutcome.RequiresAction, result.Outcome);
        Assert.Equal("ch_fake_000001", result.GatewayPaymentId);
        Assert.Equal("ch_fake_000001_secret_fake", result.ClientSecret);
        Assert.Equal(Usd(0), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task A_gateway_timeout_is_retryable_and_creates_no_payment()
    {
        var result = await new FakePaymentGateway().ChargeAsync(Charge(FakePaymentGateway.GatewayTimeout));

        Assert.Equal(PaymentOutcome.FailedRetryable, result.Outcome);
        Assert.Null(result.GatewayPaymentId);
        Assert.False(string.IsNullOrWhiteSpace(result.Message));
    }

    [Fact]
    public void The_token_constants_are_the_stripe_names()
    {
        Assert.Equal("pm_card_visa", FakePaymentGateway.Visa);
        Assert.Equal("pm_card_mastercard", FakePaymentGateway.Mastercard);
        Assert.Equal("4242424242424242", FakePaymentGateway.VisaNumber);
        Assert.Equal("pm_card_chargeDeclined", FakePaymentGateway.ChargeDeclined);
        Assert.Equal("pm_card_chargeDeclinedInsufficientFunds", FakePaymentGateway.ChargeDeclinedInsufficientFunds);
        Assert.Equal("pm_card_chargeDeclinedFraudulent", FakePaymentGateway.ChargeDeclinedFraudulent);
        Assert.Equal("pm_card_authenticationRequired", FakePaymentGateway.AuthenticationRequired);
        Assert.Equal("pm_card_gatewayTimeout", FakePaymentGateway.GatewayTimeout);
    }

    [Fact]
    public async Task Ids_are_sequential()
    {
        var gateway = new FakePaymentGateway();

        var ids = new List<string?>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa))).GatewayPaymentId);
        }

        var refund = await gateway.RefundAsync(new RefundRequest(ids[0]!, Usd(1), "r1"));

        Assert.Equal(["ch_fake_000001", "ch_fake_000002", "ch_fake_000003"], ids);
        Assert.Equal("re_fake_000001", refund.GatewayRefundId);
    }

    // ---- Card numbers ----

    [Theory]
    [InlineData("4242424242424242")]
    [InlineData("5555555555554444")]
    [InlineData("378282246310005")]
    [InlineData("6011111111111117")]
    [InlineData("4000056655665556")]
    [InlineData("4000000000000002")]
    [InlineData("4000000000009995")]
    [InlineData("4100000000000019")]
    [InlineData("4000002760003184")]
    public void Luhn_accepts_valid_card_numbers(string number) =>
        Assert.True(FakePaymentGateway.IsValidCardNumber(number));

    [Theory]
    [InlineData("4242424242424241")]
    [InlineData("1234567812345678")]
    [InlineData("42424242424")]
    [InlineData("42424242424242424242")]
    [InlineData("4242 4242 4242 4242")]
    [InlineData("")]
    public void Luhn_rejects_invalid_card_numbers(string number) =>
        Assert.False(FakePaymentGateway.IsValidCardNumber(number));

    [Theory]
    [InlineData("5555555555554444")]
    [InlineData("378282246310005")]
    [InlineData("6011111111111117")]
    public async Task Any_other_valid_card_number_succeeds(string number)
    {
        var result = await new FakePaymentGateway().ChargeAsync(Charge(number));

        Assert.Equal(PaymentOutcome.Succeeded, result.Outcome);
    }

    [Theory]
    [InlineData("4242424242424241")]
    [InlineData("1234567812345678")]
    [InlineData("4242")]
    [InlineData("00000000000000000000")]
    public async Task A_card_number_failing_the_check_is_declined_hard_as_incorrect(string number)
    {
        var result = await new FakePaymentGateway().ChargeAsync(Charge(number));

        Assert.Equal(PaymentOutcome.Declined, result.Outcome);
        Assert.Equal(DeclineType.Hard, result.DeclineType);
        Assert.Equal("incorrect_number", result.DeclineCode);
    }

    // ---- Argument validation ----

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(long.MinValue)]
    public async Task A_charge_amount_must_be_positive(long minorUnits)
    {
        var gateway = new FakePaymentGateway();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa, minorUnits)));

        Assert.Empty(gateway.Calls);
        Assert.Empty(gateway.Charges);
    }

    [Fact]
    public async Task A_charge_needs_a_request_a_payment_method_and_a_key()
    {
        var gateway = new FakePaymentGateway();

        await Assert.ThrowsAsync<ArgumentNullException>(async () => await gateway.ChargeAsync(null!));
        await Assert.ThrowsAsync<ArgumentException>(async () => await gateway.ChargeAsync(Charge(" ")));
        await Assert.ThrowsAsync<ArgumentException>(async () => await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa, key: "")));
        Assert.Empty(gateway.Calls);
    }

    [Fact]
    public async Task A_cancelled_charge_throws_and_records_nothing()
    {
        var gateway = new FakePaymentGateway();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa), cts.Token));

        Assert.Empty(gateway.Calls);
        Assert.Empty(gateway.Charges);
    }

    // ---- FailTimes ----

    [Fact]
    public async Task FailTimes_fails_the_next_charges_with_new_keys_then_the_token_behaves_as_usual()
    {
        var gateway = new FakePaymentGateway();
        gateway.FailTimes(FakePaymentGateway.Visa, 2);

        var first = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));
        var second = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));
        var third = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));

        Assert.Equal(PaymentOutcome.Declined, first.Outcome);
        Assert.Equal(DeclineType.Soft, first.DeclineType);
        Assert.Equal("insufficient_funds", first.DeclineCode);
        Assert.Equal(PaymentOutcome.Declined, second.Outcome);
        Assert.Equal(PaymentOutcome.Succeeded, third.Outcome);
        Assert.Equal(3, new[] { first.GatewayPaymentId, second.GatewayPaymentId, third.GatewayPaymentId }.Distinct().Count());
    }

    [Fact]
    public async Task FailTimes_only_affects_its_payment_method()
    {
        var gateway = new FakePaymentGateway();
        gateway.FailTimes(FakePaymentGateway.Visa, 1);

        var mastercard = await gateway.ChargeAsync(Charge(FakePaymentGateway.Mastercard));
        var visa = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));

        Assert.True(mastercard.IsSuccess);
        Assert.False(visa.IsSuccess);
    }

    [Fact]
    public async Task Replays_do_not_use_up_programmed_failures()
    {
        var gateway = new FakePaymentGateway();
        gateway.FailTimes(FakePaymentGateway.Visa, 2);
        var request = Charge(FakePaymentGateway.Visa);

        var first = await gateway.ChargeAsync(request);
        var replays = new List<PaymentResult>();
        for (var i = 0; i < 5; i++)
        {
            replays.Add(await gateway.ChargeAsync(request));
        }

        var second = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));
        var third = await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));
        var lateReplay = await gateway.ChargeAsync(request);

        Assert.False(first.IsSuccess);
        Assert.All(replays, r => Assert.Same(first, r));
        Assert.False(second.IsSuccess);
        Assert.True(third.IsSuccess);
        Assert.Same(first, lateReplay);
        Assert.Equal(3, gateway.Charges.Count);
    }

    [Fact]
    public async Task A_replay_returns_the_first_result_even_when_FailTimes_changed_meanwhile()
    {
        var gateway = new FakePaymentGateway();
        var request = Charge(FakePaymentGateway.Visa);
        var first = await gateway.ChargeAsync(request);

        gateway.FailTimes(FakePaymentGateway.Visa, 3);
        var replay = await gateway.ChargeAsync(request);

        Assert.True(first.IsSuccess);
        Assert.Same(first, replay);
        Assert.False((await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa))).IsSuccess);
    }

    [Fact]
    public async Task FailTimes_can_give_a_chosen_failure()
    {
        var gateway = new FakePaymentGateway();
        var timeout = PaymentResult.FailedRetryable("boom");
        var hard = PaymentResult.Declined(DeclineType.Hard, "stolen_card", "Stolen.");
        gateway.FailTimes(FakePaymentGateway.Visa, 1, timeout);
        gateway.FailTimes(FakePaymentGateway.Mastercard, 1, hard);

        Assert.Same(timeout, await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa)));
        Assert.Same(hard, await gateway.ChargeAsync(Charge(FakePaymentGateway.Mastercard)));
        Assert.True((await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa))).IsSuccess);
    }

    [Fact]
    public async Task FailTimes_replaces_the_remaining_count_and_zero_clears_it()
    {
        var gateway = new FakePaymentGateway();
        gateway.FailTimes(FakePaymentGateway.Visa, 5);
        gateway.FailTimes(FakePaymentGateway.Visa, 1);

        Assert.False((await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa))).IsSuccess);
        Assert.True((await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa))).IsSuccess);

        gateway.FailTimes(FakePaymentGateway.Visa, 3);
        gateway.FailTimes(FakePaymentGateway.Visa, 0);
        Assert.True((await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa))).IsSuccess);
    }

    [Fact]
    public async Task FailTimes_can_fail_a_card_number_and_a_declining_token()
    {
        var gateway = new FakePaymentGateway();
        gateway.FailTimes(FakePaymentGateway.VisaNumber, 1);
        gateway.FailTimes(FakePaymentGateway.ChargeDeclinedFraudulent, 1);

        var number = await gateway.ChargeAsync(Charge(FakePaymentGateway.VisaNumber));
        var fraud = await gateway.ChargeAsync(Charge(FakePaymentGateway.ChargeDeclinedFraudulent));
        var fraudAgain = await gateway.ChargeAsync(Charge(FakePaymentGateway.ChargeDeclinedFraudulent));

        Assert.Equal("insufficient_funds", number.DeclineCode);
        Assert.Equal("insufficient_funds", fraud.DeclineCode);
        Assert.Equal("fraudulent", fraudAgain.DeclineCode);
    }

    [Fact]
    public void FailTimes_rejects_bad_arguments()
    {
        var gateway = new FakePaymentGateway();

        Assert.Throws<ArgumentOutOfRangeException>(() => gateway.FailTimes(FakePaymentGateway.Visa, -1));
        Assert.Throws<ArgumentException>(() => gateway.FailTimes(" ", 1));
        Assert.Throws<ArgumentNullException>(() => gateway.FailTimes(null!, 1));
        Assert.Throws<ArgumentException>(() => gateway.FailTimes(FakePaymentGateway.Visa, 1, PaymentResult.Succeeded("ch_x")));
    }

    // ---- Idempotency and recording ----

    [Fact]
    public async Task Replays_are_counted_in_calls_but_not_in_charges()
    {
        var gateway = new FakePaymentGateway();
        var request = Charge(FakePaymentGateway.Visa, 1_234);
        var other = Charge(FakePaymentGateway.ChargeDeclined, 99);

        var first = await gateway.ChargeAsync(request);
        var replay = await gateway.ChargeAsync(request);
        var equalCopy = await gateway.ChargeAsync(request with { });
        await gateway.ChargeAsync(other);

        Assert.Same(first, replay);
        Assert.Same(first, equalCopy);
        Assert.Equal([request, request, request, other], gateway.Calls);
        Assert.Equal(2, gateway.Charges.Count);
        var charge = gateway.Charges[0];
        Assert.Equal(request, charge.Request);
        Assert.Equal(request.IdempotencyKey, charge.IdempotencyKey);
        Assert.Equal(FakePaymentGateway.Visa, charge.PaymentMethod);
        Assert.Equal(Usd(1_234), charge.Amount);
        Assert.Same(first, charge.Result);
        Assert.Equal("ch_fake_000001", charge.GatewayPaymentId);
        Assert.True(charge.IsCaptured);
        Assert.Equal(Usd(0), charge.AmountRefunded);
        Assert.Equal(Usd(1_234), charge.AmountRemaining);
        Assert.False(gateway.Charges[1].IsCaptured);
        Assert.Equal(Usd(0), gateway.Charges[1].AmountRemaining);
        Assert.Equal(Usd(1_234), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task The_same_key_with_a_different_invoice_or_customer_replays()
    {
        var gateway = new FakePaymentGateway();
        var request = Charge(FakePaymentGateway.Visa);

        var first = await gateway.ChargeAsync(request);
        var replay = await gateway.ChargeAsync(request with { InvoiceId = "in_other", CustomerId = "cus_other" });

        Assert.Same(first, replay);
        Assert.Single(gateway.Charges);
    }

    [Fact]
    public async Task A_replay_with_a_different_amount_or_payment_method_throws()
    {
        var gateway = new FakePaymentGateway();
        var request = Charge(FakePaymentGateway.Visa, 1_000);
        var first = await gateway.ChargeAsync(request);

        await Assert.ThrowsAsync<InvalidOperationException>(async () => await gateway.ChargeAsync(request with { Amount = Usd(1_001) }));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await gateway.ChargeAsync(request with { Amount = Money.FromMinorUnits(1_000, Currency.EUR) }));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await gateway.ChargeAsync(request with { PaymentMethod = FakePaymentGateway.Mastercard }));

        Assert.Single(gateway.Charges);
        Assert.Equal(4, gateway.Calls.Count);
        Assert.Same(first, await gateway.ChargeAsync(request));
        Assert.Equal(Usd(1_000), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task A_declined_or_timed_out_key_replays_its_failure()
    {
        var gateway = new FakePaymentGateway();
        var declined = Charge(FakePaymentGateway.ChargeDeclined);
        var timedOut = Charge(FakePaymentGateway.GatewayTimeout);

        Assert.Same(await gateway.ChargeAsync(declined), await gateway.ChargeAsync(declined));
        Assert.Same(await gateway.ChargeAsync(timedOut), await gateway.ChargeAsync(timedOut));
        Assert.Equal(2, gateway.Charges.Count);
    }

    [Fact]
    public async Task Calls_and_charges_are_snapshots()
    {
        var gateway = new FakePaymentGateway();
        await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));
        var calls = gateway.Calls;
        var charges = gateway.Charges;

        await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa));

        Assert.Single(calls);
        Assert.Single(charges);
        Assert.Equal(2, gateway.Calls.Count);
    }

    [Fact]
    public async Task TotalCaptured_sums_succeeded_charges_per_currency_minus_refunds()
    {
        var gateway = new FakePaymentGateway();
        Assert.Equal(Usd(0), gateway.TotalCaptured(Currency.USD));

        var a = await PaidAsync(gateway, 1_000);
        await PaidAsync(gateway, 2_500);
        await PaidAsync(gateway, 700, Currency.EUR);
        await gateway.ChargeAsync(Charge(FakePaymentGateway.ChargeDeclined, 9_999));
        await gateway.ChargeAsync(Charge(FakePaymentGateway.AuthenticationRequired, 9_999));
        await gateway.ChargeAsync(Charge(FakePaymentGateway.GatewayTimeout, 9_999));
        await gateway.RefundAsync(new RefundRequest(a, Usd(400), "r1"));

        Assert.Equal(Usd(3_100), gateway.TotalCaptured(Currency.USD));
        Assert.Equal(Money.FromMinorUnits(700, Currency.EUR), gateway.TotalCaptured(Currency.EUR));
        Assert.Equal(Money.Zero(Currency.JPY), gateway.TotalCaptured(Currency.JPY));
        Assert.Throws<ArgumentNullException>(() => gateway.TotalCaptured(null!));
    }

    // ---- Refunds ----

    [Fact]
    public async Task A_payment_can_be_refunded_in_parts_up_to_its_amount()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);

        var first = await gateway.RefundAsync(new RefundRequest(payment, Usd(300), PaymentKeys.Refund(payment, 1)));
        var rest = await gateway.RefundAsync(new RefundRequest(payment, Usd(700), PaymentKeys.Refund(payment, 2)));
        var more = await gateway.RefundAsync(new RefundRequest(payment, Usd(1), PaymentKeys.Refund(payment, 3)));

        Assert.Equal(new RefundResult(true, "re_fake_000001", null), first);
        Assert.Equal(new RefundResult(true, "re_fake_000002", null), rest);
        Assert.False(more.Succeeded);
        Assert.Null(more.GatewayRefundId);
        Assert.Contains("greater than", more.FailureMessage, StringComparison.Ordinal);
        Assert.Equal(Usd(1_000), gateway.Charges[0].AmountRefunded);
        Assert.Equal(Usd(0), gateway.Charges[0].AmountRemaining);
        Assert.Equal(Usd(0), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task Refunding_more_than_remains_fails_and_refunds_nothing()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);

        var result = await gateway.RefundAsync(new RefundRequest(payment, Usd(1_001), "r1"));

        Assert.False(result.Succeeded);
        Assert.Equal(Usd(0), gateway.Charges[0].AmountRefunded);
        Assert.Equal(Usd(1_000), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task A_refund_replay_returns_the_first_result_and_refunds_once()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);
        var request = new RefundRequest(payment, Usd(600), PaymentKeys.Refund(payment, 1));

        var first = await gateway.RefundAsync(request);
        var replay = await gateway.RefundAsync(request);
        var replayCopy = await gateway.RefundAsync(request with { });

        Assert.True(first.Succeeded);
        Assert.Same(first, replay);
        Assert.Same(first, replayCopy);
        Assert.Equal(Usd(600), gateway.Charges[0].AmountRefunded);
        Assert.Equal(Usd(400), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task A_refund_replay_with_different_parameters_throws()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);
        var other = await PaidAsync(gateway, 1_000);
        var request = new RefundRequest(payment, Usd(600), "r1");
        await gateway.RefundAsync(request);

        await Assert.ThrowsAsync<InvalidOperationException>(async () => await gateway.RefundAsync(request with { Amount = Usd(100) }));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await gateway.RefundAsync(request with { GatewayPaymentId = other }));
        Assert.Equal(Usd(1_400), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task A_failed_refund_does_not_use_up_its_key()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);

        var tooMuch = await gateway.RefundAsync(new RefundRequest(payment, Usd(5_000), "r1"));
        var retried = await gateway.RefundAsync(new RefundRequest(payment, Usd(500), "r1"));

        Assert.False(tooMuch.Succeeded);
        Assert.True(retried.Succeeded);
        Assert.Equal(Usd(500), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task Refunding_an_unknown_payment_fails_as_a_result()
    {
        var result = await new FakePaymentGateway().RefundAsync(new RefundRequest("ch_nope", Usd(1), "r1"));

        Assert.False(result.Succeeded);
        Assert.Null(result.GatewayRefundId);
        Assert.Contains("ch_nope", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pm_card_chargeDeclined")]
    [InlineData("pm_card_authenticationRequired")]
    public async Task A_charge_that_did_not_succeed_cannot_be_refunded(string paymentMethod)
    {
        var gateway = new FakePaymentGateway();
        var charged = await gateway.ChargeAsync(Charge(paymentMethod));

        var result = await gateway.RefundAsync(new RefundRequest(charged.GatewayPaymentId!, Usd(1), "r1"));

        Assert.False(result.Succeeded);
        Assert.Equal(Usd(0), gateway.Charges[0].AmountRefunded);
    }

    [Fact]
    public async Task A_refund_in_another_currency_fails_as_a_result()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);

        var result = await gateway.RefundAsync(new RefundRequest(payment, Money.FromMinorUnits(100, Currency.EUR), "r1"));

        Assert.False(result.Succeeded);
        Assert.Equal(Usd(1_000), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task A_refund_needs_a_positive_amount_a_payment_and_a_key()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);

        await Assert.ThrowsAsync<ArgumentNullException>(async () => await gateway.RefundAsync(null!));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await gateway.RefundAsync(new RefundRequest(payment, Usd(0), "r1")));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await gateway.RefundAsync(new RefundRequest(payment, Usd(-5), "r1")));
        await Assert.ThrowsAsync<ArgumentException>(async () => await gateway.RefundAsync(new RefundRequest(" ", Usd(1), "r1")));
        await Assert.ThrowsAsync<ArgumentException>(async () => await gateway.RefundAsync(new RefundRequest(payment, Usd(1), "")));
        Assert.Equal(Usd(1_000), gateway.TotalCaptured(Currency.USD));
    }

    // ---- Concurrency ----

    [Fact]
    public async Task Parallel_charges_with_the_same_key_charge_once_and_all_get_the_same_result()
    {
        var gateway = new FakePaymentGateway();
        var request = Charge(FakePaymentGateway.Visa, 5_000);
        var results = new ConcurrentBag<PaymentResult>();

        await Parallel.ForEachAsync(
            Enumerable.Range(0, 32),
            new ParallelOptions { MaxDegreeOfParallelism = 32 },
            async (_, ct) => results.Add(await gateway.ChargeAsync(request, ct)));

        Assert.Equal(32, results.Count);
        var first = Assert.Single(gateway.Charges).Result;
        Assert.All(results, r => Assert.Same(first, r));
        Assert.Equal(32, gateway.Calls.Count);
        Assert.Equal(Usd(5_000), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task Parallel_charges_with_distinct_keys_all_charge()
    {
        var gateway = new FakePaymentGateway();
        var requests = Enumerable.Range(1, 100).Select(i => Charge(FakePaymentGateway.Visa, i)).ToArray();
        var results = new ConcurrentBag<PaymentResult>();

        await Parallel.ForEachAsync(
            requests,
            new ParallelOptions { MaxDegreeOfParallelism = 32 },
            async (request, ct) => results.Add(await gateway.ChargeAsync(request, ct)));

        Assert.Equal(100, gateway.Charges.Count);
        Assert.Equal(100, gateway.Calls.Count);
        Assert.All(results, r => Assert.True(r.IsSuccess));
        Assert.Equal(100, results.Select(r => r.GatewayPaymentId).Distinct().Count());
        Assert.Equal(Usd(5_050), gateway.TotalCaptured(Currency.USD));
    }

    [Fact]
    public async Task Parallel_refunds_never_refund_more_than_the_payment()
    {
        var gateway = new FakePaymentGateway();
        var payment = await PaidAsync(gateway, 1_000);
        var results = new ConcurrentBag<RefundResult>();

        await Parallel.ForEachAsync(
            Enumerable.Range(1, 25),
            new ParallelOptions { MaxDegreeOfParallelism = 25 },
            async (i, ct) => results.Add(await gateway.RefundAsync(new RefundRequest(payment, Usd(100), PaymentKeys.Refund(payment, i)), ct)));

        Assert.Equal(10, results.Count(r => r.Succeeded));
        Assert.Equal(15, results.Count(r => !r.Succeeded));
        Assert.Equal(Usd(0), gateway.TotalCaptured(Currency.USD));
        Assert.Equal(Usd(1_000), gateway.Charges[0].AmountRefunded);
    }

    [Fact]
    public async Task Parallel_FailTimes_failures_are_handed_out_exactly()
    {
        var gateway = new FakePaymentGateway();
        gateway.FailTimes(FakePaymentGateway.Visa, 7);
        var results = new ConcurrentBag<PaymentResult>();

        await Parallel.ForEachAsync(
            Enumerable.Range(0, 40),
            new ParallelOptions { MaxDegreeOfParallelism = 16 },
            async (_, ct) => results.Add(await gateway.ChargeAsync(Charge(FakePaymentGateway.Visa), ct)));

        Assert.Equal(7, results.Count(r => !r.IsSuccess));
        Assert.Equal(33, results.Count(r => r.IsSuccess));
    }

    // ---- Property ----

    [Fact]
    public void Distinct_keys_make_distinct_charges_and_the_first_amount_of_each_is_captured()
    {
        string[] methods = [FakePaymentGateway.Visa, FakePaymentGateway.Mastercard, FakePaymentGateway.ChargeDeclined];
        var operation =
            from key in Gen.Choose(0, 5)
            from amount in Gen.Choose(1, 4)
            from method in Gen.Frequency((4, Gen.Constant(methods[0])), (1, Gen.Elements(methods)))
            select (Key: "k" + key, Amount: (long)amount, Method: method);
        var sequences = Gen.ArrayOf(operation);

        Prop.ForAll(sequences.ToArbitrary(), (Action<(string Key, long Amount, string Method)[]>)(ops =>
        {
            var gateway = new FakePaymentGateway();
            var first = new Dictionary<string, (long Amount, string Method, PaymentResult Result)>(StringComparer.Ordinal);
            foreach (var (key, amount, method) in ops)
            {
                var request = new ChargeRequest("in_" + key, "cus_1", method, Usd(amount), key);
                if (first.TryGetValue(key, out var seen) && (seen.Amount != amount || seen.Method != method))
                {
                    Assert.Throws<InvalidOperationException>(() => gateway.ChargeAsync(request).AsTask().GetAwaiter().GetResult());
                    continue;
                }

                var result = gateway.ChargeAsync(request).AsTask().GetAwaiter().GetResult();
                if (seen.Result is null)
                {
                    first[key] = (amount, method, result);
                }
                else
                {
                    Assert.Same(seen.Result, result);
                }
            }

            Assert.Equal(first.Count, gateway.Charges.Count);
            Assert.Equal(ops.Length, gateway.Calls.Count);
            Assert.Equal(
                Usd(first.Values.Where(f => f.Method != FakePaymentGateway.ChargeDeclined).Sum(f => f.Amount)),
                gateway.TotalCaptured(Currency.USD));
        })).Check(Config.QuickThrowOnFailure.WithMaxTest(1_000));
    }
}
