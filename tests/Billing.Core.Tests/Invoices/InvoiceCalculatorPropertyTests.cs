using Billing.Invoices;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Invoices;

public sealed class InvoiceCalculatorPropertyTests
{
    private static readonly Currency Usd = Currency.USD;

    public sealed record Input(InvoiceLine[] Items, Coupon? Coupon, TaxRate[] Rates, long Credit, RoundingMode Rounding);

    private static Gen<InvoiceLine> Item() =>
        from kind in Gen.Elements(InvoiceLineKind.Plan, InvoiceLineKind.Usage, InvoiceLineKind.ProrationCredit, InvoiceLineKind.ProrationDebit, InvoiceLineKind.Adjustment)
        from amount in Gens.Long(0, 10_000_000)
        select new InvoiceLine(kind, kind.ToString(), new Billing.Money(kind == InvoiceLineKind.ProrationCredit ? -amount : amount, Usd));

    private static Gen<Coupon?> AnyCoupon() => Gen.Frequency(
        (2, Gen.Constant<Coupon?>(null)),
        (1, Gens.Long(1, 1_000_000).Select(ppm => (Coupon?)Coupon.PercentOff("P", ppm, CouponDuration.Forever))),
        (1, Gens.Long(1, 5_000_000).Select(a => (Coupon?)Coupon.AmountOffEach("A", new Billing.Money(a, Usd), CouponDuration.Once))));

    private static Gen<TaxRate[]> Rates() =>
        from inclusive in Gen.Elements(false, true)
        from count in Gen.Choose(0, 4)
        from ppms in Gen.ArrayOf(Gen.Frequency((1, Gen.Constant(0L)), (5, Gens.Long(1, 300_000))), count)
        select ppms.Select((p, i) => new TaxRate($"T{i}", p, inclusive)).ToArray();

    private static Gen<Input> Inputs() =>
        from count in Gen.Choose(0, 8)
        from items in Gen.ArrayOf(Item(), count)
        from coupon in AnyCoupon()
        from rates in Rates()
        from credit in Gen.Frequency((1, Gen.Constant(0L)), (1, Gens.Long(0, 20_000_000)))
        from rounding in Gens.Rounding()
        select new Input(items, coupon, rates, credit, rounding);

    [Fact]
    public void The_total_is_always_the_exact_sum_of_its_lines()
    {
        Props.ForAll(Inputs(), input =>
        {
            var r = Calculate(input);
            Assert.Equal(r.Total.MinorUnits, r.Lines.Where(l => !l.IsInclusiveTax).Sum(l => l.Amount.MinorUnits));
            Assert.Equal(r.Subtotal.MinorUnits, input.Items.Sum(i => i.Amount.MinorUnits));
            Assert.Equal(r.Total, r.Subtotal + r.Discount + (r.TaxIsInclusive ? Billing.Money.Zero(Usd) : r.Tax));
        },
        Props.Many);
    }

    [Fact]
    public void Tax_lines_add_up_to_the_tax_and_the_tax_is_rounded_once()
    {
        Props.ForAll(Inputs(), input =>
        {
            var r = Calculate(input);
            var taxLines = r.Lines.Where(l => l.Kind == InvoiceLineKind.Tax).ToArray();
            Assert.Equal(input.Rates.Length, taxLines.Length);
            Assert.Equal(r.Tax.MinorUnits, taxLines.Sum(l => l.Amount.MinorUnits));
            var combined = input.Rates.Sum(t => t.PartsPerMillion);
            var taxable = r.Subtotal + r.Discount;
            var expected = combined == 0
                ? 0
                : r.TaxIsInclusive
                    ? (taxable - taxable.MultiplyFraction(1_000_000, 1_000_000 + combined, input.Rounding)).MinorUnits
                    : taxable.MultiplyFraction(combined, 1_000_000, input.Rounding).MinorUnits;
            Assert.Equal(expected, r.Tax.MinorUnits);
        },
        Props.Many);
    }

    [Fact]
    public void A_discount_is_never_more_than_a_positive_subtotal_and_never_applies_otherwise()
    {
        Props.ForAll(Inputs(), input =>
        {
            var r = Calculate(input);
            Assert.True(r.Discount.MinorUnits <= 0);
            Assert.True(-r.Discount.MinorUnits <= Math.Max(0, r.Subtotal.MinorUnits));
            if (input.Coupon is null || !r.Subtotal.IsPositive)
            {
                Assert.True(r.Discount.IsZero);
            }
        },
        Props.Many);
    }

    [Fact]
    public void Credit_is_conserved_and_the_amount_due_is_never_negative()
    {
        Props.ForAll(Inputs(), input =>
        {
            var r = Calculate(input);
            Assert.True(r.AmountDue.MinorUnits >= 0);
            Assert.True(r.CreditApplied.MinorUnits >= 0 && r.CreditApplied.MinorUnits <= input.Credit);
            Assert.Equal(r.Total.IsPositive ? r.Total : Billing.Money.Zero(Usd), r.AmountDue + r.CreditApplied);
            // what the customer pays in cash and credit, plus credit created, balances the total
            Assert.Equal(input.Credit - r.CreditApplied.MinorUnits + (r.Total.IsNegative ? -r.Total.MinorUnits : 0), r.CreditBalanceAfter.MinorUnits);
        },
        Props.Many);
    }

    private static InvoiceCalculation Calculate(Input input) =>
        InvoiceCalculator.Calculate(Usd, input.Items, input.Coupon, input.Rates, new Billing.Money(input.Credit, Usd), input.Rounding);
}
