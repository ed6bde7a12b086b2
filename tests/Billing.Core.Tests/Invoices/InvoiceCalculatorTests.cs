using Billing.Invoices;

namespace Billing.Tests.Invoices;

public sealed class InvoiceCalculatorTests
{
    private static readonly Currency Usd = Currency.USD;

    private static Billing.Money M(long minor) => new(minor, Usd);

    private static InvoiceLine Plan(long minor) => new(InvoiceLineKind.Plan, "Pro plan", M(minor));

    [Fact]
    public void A_plain_invoice_totals_its_lines()
    {
        var result = InvoiceCalculator.Calculate(Usd, [Plan(2900), new InvoiceLine(InvoiceLineKind.Usage, "API calls", M(1234))], null, [], M(0));

        Assert.Equal(M(4134), result.Subtotal);
        Assert.Equal(M(0), result.Discount);
        Assert.Equal(M(0), result.Tax);
        Assert.Equal(M(4134), result.Total);
        Assert.Equal(M(4134), result.AmountDue);
        Assert.Equal(2, result.Lines.Count);
    }

    [Fact]
    public void Percent_coupon_is_rounded_once_and_exclusive_tax_applies_after_it()
    {
        // 29.99 − 15 % (4.4985 → 4.50 half-even) = 25.49; tax 8.875 % of 25.49 = 2.2622… → 2.26; total 27.75
        var coupon = Coupon.PercentOff("SPRING15", 150_000, CouponDuration.Once);
        var result = InvoiceCalculator.Calculate(Usd, [Plan(2999)], coupon, [TaxRate.Percent("NY sales tax", 8.875m)], M(0));

        Assert.Equal(M(-450), result.Discount);
        Assert.Equal(M(226), result.Tax);
        Assert.Equal(M(2775), result.Total);
        Assert.Equal(["Pro plan", "Discount (SPRING15)", "NY sales tax 8.875%"], result.Lines.Select(l => l.Description));
        Assert.Equal(result.Total.MinorUnits, result.Lines.Sum(l => l.Amount.MinorUnits));
    }

    [Fact]
    public void Tax_is_rounded_once_per_invoice_and_split_across_rates_so_the_lines_add_up()
    {
        // 10.01 at 4 % + 4.5 % + 0.375 % = 8.875 % → 0.888… → 0.89 once; split 40000:45000:3750 → 0.40, 0.45, 0.04
        TaxRate[] rates = [new("State", 40_000), new("County", 45_000), new("MCTD", 3_750)];
        var result = InvoiceCalculator.Calculate(Usd, [Plan(1001)], null, rates, M(0));

        Assert.Equal(M(89), result.Tax);
        Assert.Equal([M(40), M(45), M(4)], result.Lines.Where(l => l.Kind == InvoiceLineKind.Tax).Select(l => l.Amount));
        Assert.Equal(M(1090), result.Total);
    }

    [Fact]
    public void Inclusive_tax_is_contained_in_the_total()
    {
        // 119.00 gross at 19 % inclusive: net = 100.00, tax = 19.00; total stays 119.00
        var result = InvoiceCalculator.Calculate(Usd, [Plan(11900)], null, [TaxRate.Percent("VAT", 19m, inclusive: true)], M(0));

        Assert.True(result.TaxIsInclusive);
        Assert.Equal(M(1900), result.Tax);
        Assert.Equal(M(11900), result.Total);
        var taxLine = Assert.Single(result.Lines, l => l.Kind == InvoiceLineKind.Tax);
        Assert.True(taxLine.IsInclusiveTax);
        Assert.Equal(result.Total.MinorUnits, result.Lines.Where(l => !l.IsInclusiveTax).Sum(l => l.Amount.MinorUnits));
    }

    [Fact]
    public void Credit_balance_pays_first_and_a_negative_total_becomes_credit()
    {
        var partly = InvoiceCalculator.Calculate(Usd, [Plan(2900)], null, [], M(1000));
        Assert.Equal(M(1000), partly.CreditApplied);
        Assert.Equal(M(1900), partly.AmountDue);
        Assert.Equal(M(0), partly.CreditBalanceAfter);

        var fully = InvoiceCalculator.Calculate(Usd, [Plan(2900)], null, [], M(5000));
        Assert.Equal(M(2900), fully.CreditApplied);
        Assert.Equal(M(0), fully.AmountDue);
        Assert.Equal(M(2100), fully.CreditBalanceAfter);

        var credit = InvoiceCalculator.Calculate(Usd, [new InvoiceLine(InvoiceLineKind.ProrationCredit, "Unused time", M(-2000)), new InvoiceLine(InvoiceLineKind.ProrationDebit, "Remaining time", M(500))], null, [], M(100));
        Assert.Equal(M(-1500), credit.Total);
        Assert.Equal(M(0), credit.AmountDue);
        Assert.Equal(M(1600), credit.CreditBalanceAfter);
    }

    [Fact]
    public void A_hundred_percent_coupon_gives_a_zero_invoice()
    {
        var result = InvoiceCalculator.Calculate(Usd, [Plan(2900)], Coupon.PercentOff("FREE", 1_000_000, CouponDuration.Once), [TaxRate.Percent("VAT", 20m)], M(0));

        Assert.Equal(M(0), result.Total);
        Assert.Equal(M(0), result.AmountDue);
    }

    [Fact]
    public void An_amount_off_coupon_never_exceeds_the_subtotal_and_ignores_non_positive_subtotals()
    {
        var coupon = Coupon.AmountOffEach("TENOFF", M(1000), CouponDuration.Forever);

        Assert.Equal(M(-500), InvoiceCalculator.Calculate(Usd, [Plan(500)], coupon, [], M(0)).Discount);
        Assert.Equal(M(0), InvoiceCalculator.Calculate(Usd, [new InvoiceLine(InvoiceLineKind.ProrationCredit, "Unused", M(-500))], coupon, [], M(0)).Discount);
        Assert.Throws<CurrencyMismatchException>(() => InvoiceCalculator.Calculate(Currency.EUR, [new InvoiceLine(InvoiceLineKind.Plan, "Plan", new Billing.Money(500, Currency.EUR))], coupon, [], new Billing.Money(0, Currency.EUR)));
    }

    [Fact]
    public void Bad_input_is_rejected()
    {
        Assert.Throws<ArgumentException>(() => InvoiceCalculator.Calculate(Usd, [new InvoiceLine(InvoiceLineKind.Tax, "Tax", M(1))], null, [], M(0)));
        Assert.Throws<ArgumentException>(() => InvoiceCalculator.Calculate(Usd, [Plan(1)], null, [], M(-1)));
        Assert.Throws<ArgumentException>(() => InvoiceCalculator.Calculate(Usd, [Plan(1)], null, [new TaxRate("A", 1), new TaxRate("B", 1, true)], M(0)));
        Assert.Throws<CurrencyMismatchException>(() => InvoiceCalculator.Calculate(Usd, [new InvoiceLine(InvoiceLineKind.Plan, "Plan", new Billing.Money(1, Currency.EUR))], null, [], M(0)));
        Assert.Throws<ArgumentException>(() => TaxRate.Percent("VAT", 19.12345m));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TaxRate("VAT", 1_000_001));
        Assert.Throws<ArgumentException>(() => Coupon.PercentOff("X", 1, CouponDuration.Repeating));
        Assert.Throws<ArgumentException>(() => Coupon.PercentOff("X", 1, CouponDuration.Once, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Coupon.PercentOff("X", 0, CouponDuration.Once));
    }
}
