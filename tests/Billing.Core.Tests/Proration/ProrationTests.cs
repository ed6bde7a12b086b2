using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;

namespace Billing.Tests.Proration;

public sealed class ProrationTests
{
    private static readonly BillingPeriod April = new(Utc(2024, 4, 1), Utc(2024, 5, 1)); // 30 days = 2,592,000 s

    private static DateTimeOffset Utc(int y, int mo, int d, int h = 0) => new(y, mo, d, h, 0, 0, TimeSpan.Zero);

    private static Billing.Money Usd(long minor) => new(minor, Currency.USD);

    [Fact]
    public void Upgrade_on_day_10_credits_unused_time_and_debits_remaining_time()
    {
        // Change after 10 of 30 days: 20 days = 1,728,000 s remain of 2,592,000 s.
        // credit = −round(30.00 × 1,728,000 / 2,592,000) = −20.00; debit = round(60.00 × 2/3) = 40.00
        var result = ProrationCalculator.Prorate(April, Utc(2024, 4, 11), Usd(3000), Usd(6000));

        Assert.True(result.HasLines);
        Assert.False(result.InvoiceImmediately);
        var credit = result.Credit!.Value;
        var debit = result.Debit!.Value;
        Assert.Equal(ProrationLineKind.Credit, credit.Kind);
        Assert.Equal(Usd(-2000), credit.Amount);
        Assert.Equal(ProrationLineKind.Debit, debit.Kind);
        Assert.Equal(Usd(4000), debit.Amount);
        Assert.Equal(Usd(2000), result.Net);
        Assert.Equal(new ProrationFormula(Usd(3000), 1_728_000, 2_592_000, RoundingMode.HalfEven), credit.Formula);
        Assert.Equal(new ProrationFormula(Usd(6000), 1_728_000, 2_592_000, RoundingMode.HalfEven), debit.Formula);
        Assert.Equal(Utc(2024, 4, 11), credit.From);
        Assert.Equal(Utc(2024, 5, 1), credit.To);
        Assert.Equal("round(30.00 USD × 1728000 / 2592000, HalfEven)", credit.Formula.ToString());
    }

    [Fact]
    public void Each_line_is_rounded_once()
    {
        // 29.99 × 2/3 = 19.99333… → 19.99; 49.99 × 2/3 = 33.32666… → 33.33
        var result = ProrationCalculator.Prorate(April, Utc(2024, 4, 11), Usd(2999), Usd(4999));

        Assert.Equal(Usd(-1999), result.Credit!.Value.Amount);
        Assert.Equal(Usd(3333), result.Debit!.Value.Amount);
        Assert.Equal(Usd(1334), result.Net);
    }

    [Fact]
    public void The_rounding_mode_is_applied_and_recorded()
    {
        // Half of 0.05: 2.5 cents.
        var period = new BillingPeriod(Utc(2024, 1, 1), Utc(2024, 1, 3));
        var half = Utc(2024, 1, 2);

        Assert.Equal(Usd(2), ProrationCalculator.Prorate(period, half, Usd(5), Usd(5), rounding: RoundingMode.HalfEven).Debit!.Value.Amount);
        Assert.Equal(Usd(3), ProrationCalculator.Prorate(period, half, Usd(5), Usd(5), rounding: RoundingMode.HalfUp).Debit!.Value.Amount);
        Assert.Equal(Usd(-3), ProrationCalculator.Prorate(period, half, Usd(5), Usd(5), rounding: RoundingMode.HalfUp).Credit!.Value.Amount);
        Assert.Equal(RoundingMode.HalfUp, ProrationCalculator.Prorate(period, half, Usd(5), Usd(5), rounding: RoundingMode.HalfUp).Debit!.Value.Formula.Rounding);
    }

    [Fact]
    public void A_change_at_period_start_prorates_to_the_full_price_and_at_the_end_to_zero()
    {
        var atStart = ProrationCalculator.Prorate(April, April.Start, Usd(3000), Usd(6000));
        var atEnd = ProrationCalculator.Prorate(April, April.End, Usd(3000), Usd(6000));

        Assert.Equal(Usd(-3000), atStart.Credit!.Value.Amount);
        Assert.Equal(Usd(6000), atStart.Debit!.Value.Amount);
        Assert.Equal(Usd(0), atEnd.Credit!.Value.Amount);
        Assert.Equal(Usd(0), atEnd.Debit!.Value.Amount);
        Assert.Equal(0, atEnd.Debit!.Value.Formula.NumeratorSeconds);
    }

    [Fact]
    public void Behaviours_decide_whether_there_are_lines_and_when_they_are_invoiced()
    {
        var none = ProrationCalculator.Prorate(April, Utc(2024, 4, 11), Usd(3000), Usd(6000), ProrationBehavior.None);
        var always = ProrationCalculator.Prorate(April, Utc(2024, 4, 11), Usd(3000), Usd(6000), ProrationBehavior.AlwaysInvoice);

        Assert.False(none.HasLines);
        Assert.Null(none.Credit);
        Assert.Null(none.Debit);
        Assert.Equal(Usd(0), none.Net);
        Assert.False(none.InvoiceImmediately);
        Assert.True(always.InvoiceImmediately);
        Assert.Equal(Usd(2000), always.Net);
        Assert.Throws<ArgumentOutOfRangeException>(() => ProrationCalculator.Prorate(April, Utc(2024, 4, 11), Usd(1), Usd(1), (ProrationBehavior)9));
    }

    [Fact]
    public void A_quantity_change_prorates_the_difference()
    {
        var seat = new PerUnitPrice(Usd(1000));

        // 2 → 5 seats after 10 of 30 days: −round(20.00 × 2/3) + round(50.00 × 2/3) = −13.33 + 33.33 = 20.00 = 3 seats × 10.00 × 2/3
        var result = ProrationCalculator.Prorate(April, Utc(2024, 4, 11), seat, 2, seat, 5);

        Assert.Equal(Usd(-1333), result.Credit!.Value.Amount);
        Assert.Equal(Usd(3333), result.Debit!.Value.Amount);
        Assert.Equal(Usd(2000), result.Net);
    }

    [Fact]
    public void Instants_are_truncated_to_whole_seconds()
    {
        var result = ProrationCalculator.Prorate(April, Utc(2024, 4, 11).AddMilliseconds(999), Usd(3000), Usd(6000));

        Assert.Equal(1_728_000, result.Debit!.Value.Formula.NumeratorSeconds);
    }

    [Fact]
    public void Bad_input_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ProrationCalculator.Prorate(April, Utc(2024, 3, 31), Usd(1), Usd(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProrationCalculator.Prorate(April, Utc(2024, 5, 2), Usd(1), Usd(1)));
        var mismatch = Assert.Throws<CurrencyMismatchException>(() => ProrationCalculator.Prorate(April, Utc(2024, 4, 11), Usd(1), new Billing.Money(1, Currency.EUR)));
        Assert.Contains("EUR", mismatch.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ProrationCalculator.Prorate(new BillingPeriod(Utc(2024, 1, 1), Utc(2024, 1, 1).AddTicks(10)), Utc(2024, 1, 1), Usd(1), Usd(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProrationCalculator.ProrateSpan(Usd(100), April, Utc(2024, 4, 20), Utc(2024, 4, 10)));
    }

    [Fact]
    public void A_span_and_an_exact_split_of_the_period()
    {
        var (firstTen, formula) = ProrationCalculator.ProrateSpan(Usd(3000), April, April.Start, Utc(2024, 4, 11));
        var (before, after) = ProrationCalculator.Split(Usd(1000), April, Utc(2024, 4, 11));

        Assert.Equal(Usd(1000), firstTen);
        Assert.Equal(864_000, formula.NumeratorSeconds);
        Assert.Equal(Usd(333), before); // 1000 × 1/3 = 333.33…
        Assert.Equal(Usd(667), after);  // gets the left-over unit (larger remainder)
    }
}
