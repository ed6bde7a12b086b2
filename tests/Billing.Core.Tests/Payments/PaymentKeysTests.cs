using Billing.Payments;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Payments;

public sealed class PaymentKeysTests
{
    [Fact]
    public void A_charge_key_is_the_invoice_the_word_charge_and_the_attempt()
    {
        Assert.Equal("in_1/charge/1", PaymentKeys.Charge("in_1", 1));
        Assert.Equal("in_ABC/charge/12", PaymentKeys.Charge("in_ABC", 12));
    }

    [Fact]
    public void A_refund_key_is_the_payment_the_word_refund_and_the_number()
    {
        Assert.Equal("pi_9/refund/1", PaymentKeys.Refund("pi_9", 1));
        Assert.Equal("pi_9/refund/3", PaymentKeys.Refund("pi_9", 3));
    }

    [Fact]
    public void Charge_and_refund_keys_never_collide()
    {
        Assert.NotEqual(PaymentKeys.Charge("x_1", 1), PaymentKeys.Refund("x_1", 1));
    }

    [Fact]
    public void Large_attempt_numbers_are_written_without_grouping_in_any_culture()
    {
        var previous = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            Assert.Equal("in_1/charge/1234567", PaymentKeys.Charge("in_1", 1_234_567));
            Assert.Equal($"in_1/charge/{int.MaxValue}", PaymentKeys.Charge("in_1", int.MaxValue));
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = previous;
        }
    }

    [Fact]
    public void The_same_inputs_give_the_same_key_and_different_attempts_give_different_keys()
    {
        var ids = Gen.Elements("in_1", "in_2", "in_zz9", "inv-2025-0001", "in_x");
        Props.ForAll(
            from id in ids
            from a in Gen.Choose(1, 1_000)
            from b in Gen.Choose(1, 1_000)
            select (id, a, b),
            t =>
            {
                Assert.Equal(PaymentKeys.Charge(t.id, t.a), PaymentKeys.Charge(t.id, t.a));
                Assert.Equal(t.a == t.b, PaymentKeys.Charge(t.id, t.a) == PaymentKeys.Charge(t.id, t.b));
                Assert.Equal(t.a == t.b, PaymentKeys.Refund(t.id, t.a) == PaymentKeys.Refund(t.id, t.b));
                Assert.StartsWith(t.id + "/", PaymentKeys.Charge(t.id, t.a), StringComparison.Ordinal);
            },
            Props.Many);
    }

    [Fact]
    public void Different_invoices_give_different_keys_for_the_same_attempt()
    {
        Assert.NotEqual(PaymentKeys.Charge("in_1", 2), PaymentKeys.Charge("in_2", 2));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("\t")]
    public void A_blank_id_is_rejected(string id)
    {
        Assert.Throws<ArgumentException>(() => PaymentKeys.Charge(id, 1));
        Assert.Throws<ArgumentException>(() => PaymentKeys.Refund(id, 1));
    }

    [Fact]
    public void A_null_id_is_rejected()
    {
        Assert.Throws<ArgumentNullException>(() => PaymentKeys.Charge(null!, 1));
        Assert.Throws<ArgumentNullException>(() => PaymentKeys.Refund(null!, 1));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void An_attempt_or_refund_number_below_1_is_rejected(int number)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PaymentKeys.Charge("in_1", number));
        Assert.Throws<ArgumentOutOfRangeException>(() => PaymentKeys.Refund("pi_1", number));
    }

    [Fact]
    public void A_succeeded_result_carries_its_payment_id_and_is_a_success()
    {
        var result = PaymentResult.Succeeded("pi_123");

        Assert.Equal(PaymentOutcome.Succeeded, result.Outcome);
        Assert.Equal("pi_123", result.GatewayPaymentId);
        Assert.True(result.IsSuccess);
        Assert.Null(result.DeclineType);
        Assert.Null(result.DeclineCode);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void A_succeeded_result_requires_a_payment_id(string id)
    {
        Assert.Throws<ArgumentException>(() => PaymentResult.Succeeded(id));
    }

    [Fact]
    public void A_succeeded_result_rejects_a_null_payment_id()
    {
        Assert.Throws<ArgumentNullException>(() => PaymentResult.Succeeded(null!));
    }

    [Theory]
    [InlineData(DeclineType.Soft, "insufficient_funds")]
    [InlineData(DeclineType.Hard, "fraudulent")]
    public void A_declined_result_carries_its_type_and_code_and_is_not_a_success(DeclineType type, string code)
    {
        var result = PaymentResult.Declined(type, code, "Declined by the issuer.", "pi_7");

        Assert.Equal(PaymentOutcome.Declined, result.Outcome);
        Assert.Equal(type, result.DeclineType);
        Assert.Equal(code, result.DeclineCode);
        Assert.Equal("Declined by the issuer.", result.Message);
        Assert.Equal("pi_7", result.GatewayPaymentId);
        Assert.False(result.IsSuccess);
    }

    [Fact]
    public void A_declined_result_may_have_no_payment_id_but_needs_a_code()
    {
        Assert.Null(PaymentResult.Declined(DeclineType.Soft, "generic_decline", "Declined.").GatewayPaymentId);
        Assert.Throws<ArgumentException>(() => PaymentResult.Declined(DeclineType.Soft, "", "Declined."));
    }

    [Fact]
    public void A_result_requiring_action_carries_the_client_secret_and_is_not_a_success()
    {
        var result = PaymentResult.RequiresAction("pi_8", "pi_8_secret_x");

        Assert.Equal(PaymentOutcome.RequiresAction, result.Outcome);
        Assert.Equal("pi_8", result.GatewayPaymentId);
        Assert.Equal("pi_8_secret_x", result.ClientSecret);
        Assert.False(result.IsSuccess);
        Assert.Throws<ArgumentException>(() => PaymentResult.RequiresAction("pi_8", " "));
        Assert.Throws<ArgumentException>(() => PaymentResult.RequiresAction("", "pi_8_secret_x"));
    }

    [Fact]
    public void A_retryable_failure_needs_a_message_and_is_not_a_success()
    {
        var result = PaymentResult.FailedRetryable("Gateway timed out.");

        Assert.Equal(PaymentOutcome.FailedRetryable, result.Outcome);
        Assert.Equal("Gateway timed out.", result.Message);
        Assert.False(result.IsSuccess);
        Assert.Throws<ArgumentException>(() => PaymentResult.FailedRetryable(""));
    }

    [Fact]
    public void Only_succeeded_results_are_successes()
    {
        PaymentResult[] all =
        [
            PaymentResult.Succeeded("pi_1"),
            PaymentResult.RequiresAction("pi_2", "secret"),
            PaymentResult.Declined(DeclineType.Soft, "insufficient_funds", "no funds"),
            PaymentResult.Declined(DeclineType.Hard, "stolen_card", "stolen"),
            PaymentResult.FailedRetryable("timeout"),
        ];

        Assert.Equal(Enum.GetValues<PaymentOutcome>().Order(), all.Select(r => r.Outcome).Distinct().Order());
        Assert.All(all, r => Assert.Equal(r.Outcome == PaymentOutcome.Succeeded, r.IsSuccess));
        Assert.Single(all, r => r.IsSuccess);
    }
}
