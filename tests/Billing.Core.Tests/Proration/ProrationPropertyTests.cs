using System.Numerics;
using Billing.Periods;
using Billing.Proration;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Proration;

public sealed class ProrationPropertyTests
{
    private static readonly long Epoch1970 = new DateTimeOffset(1970, 1, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks / TimeSpan.TicksPerSecond;
    private static readonly long Year2100 = new DateTimeOffset(2100, 1, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks / TimeSpan.TicksPerSecond;

    private static Gen<(BillingPeriod Period, DateTimeOffset At)> PeriodAndInstant() =>
        from startSecond in Gens.Long(Epoch1970, Year2100)
        from length in Gen.Frequency((1, Gens.Long(1, 100)), (4, Gens.Long(86_400 * 28L, 86_400 * 31L)), (2, Gens.Long(1, 86_400 * 400L)))
        from offset in Gens.Long(0, length)
        let start = new DateTimeOffset(startSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero)
        select (new BillingPeriod(start, start.AddSeconds(length)), start.AddSeconds(offset));

    private static Gen<long> Amount() => Gen.Frequency((3, Gens.Long(0, 100_000)), (1, Gens.Long(0, 1_000_000_000_000)));

    [Fact]
    public void Unchanged_price_and_quantity_prorate_to_exactly_zero()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from amount in Amount()
            from mode in Gens.Rounding()
            select (p, amount, mode),
            t =>
            {
                var money = new Billing.Money(t.amount, Currency.USD);
                var result = ProrationCalculator.Prorate(t.p.Period, t.p.At, money, money, ProrationBehavior.CreateProrations, t.mode);
                Assert.True(result.Net.IsZero);
                Assert.Equal(-result.Credit!.Value.Amount, result.Debit!.Value.Amount);
            },
            Props.Many);
    }

    [Fact]
    public void The_credit_never_exceeds_the_old_price_nor_the_debit_the_new_one()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from oldAmount in Amount()
            from newAmount in Amount()
            from mode in Gens.Rounding()
            select (p, oldAmount, newAmount, mode),
            t =>
            {
                var result = ProrationCalculator.Prorate(t.p.Period, t.p.At, new Billing.Money(t.oldAmount, Currency.EUR), new Billing.Money(t.newAmount, Currency.EUR), ProrationBehavior.AlwaysInvoice, t.mode);
                var credit = result.Credit!.Value.Amount.MinorUnits;
                var debit = result.Debit!.Value.Amount.MinorUnits;
                Assert.InRange(credit, -t.oldAmount, 0);
                Assert.InRange(debit, 0, t.newAmount);
                Assert.Equal(credit + debit, result.Net.MinorUnits);
            },
            Props.Many);
    }

    [Fact]
    public void Each_line_is_the_exact_fraction_rounded_once()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from amount in Amount()
            select (p, amount),
            t =>
            {
                var line = ProrationCalculator.Prorate(t.p.Period, t.p.At, new Billing.Money(t.amount, Currency.USD), new Billing.Money(t.amount, Currency.USD)).Debit!.Value;
                var f = line.Formula;
                Assert.Equal((long)(t.p.Period.End - t.p.At).TotalSeconds, f.NumeratorSeconds);
                Assert.Equal((long)t.p.Period.Duration.TotalSeconds, f.DenominatorSeconds);
                // |amount × den − full × num| ≤ den / 2 (half-even is within half a unit)
                var error = BigInteger.Abs(((BigInteger)line.Amount.MinorUnits * f.DenominatorSeconds) - ((BigInteger)t.amount * f.NumeratorSeconds));
                Assert.True(error * 2 <= f.DenominatorSeconds, $"{line.Amount} is more than half a unit from {f}");
            },
            Props.Many);
    }

    [Fact]
    public void Splitting_a_period_and_prorating_each_part_sums_to_the_full_price_within_one_unit()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from amount in Amount()
            from mode in Gen.Elements(RoundingMode.HalfEven, RoundingMode.HalfUp)
            select (p, amount, mode),
            t =>
            {
                var money = new Billing.Money(t.amount, Currency.USD);
                var (first, _) = ProrationCalculator.ProrateSpan(money, t.p.Period, t.p.Period.Start, t.p.At, t.mode);
                var (second, _) = ProrationCalculator.ProrateSpan(money, t.p.Period, t.p.At, t.p.Period.End, t.mode);
                Assert.InRange((first + second - money).MinorUnits, -1, 1);
            },
            Props.Many);
    }

    [Fact]
    public void Splitting_through_allocation_is_exact()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from amount in Gen.Frequency((3, Amount()), (1, Gens.AnyLong()))
            select (p, amount),
            t =>
            {
                var money = new Billing.Money(t.amount, Currency.JPY);
                var (before, after) = ProrationCalculator.Split(money, t.p.Period, t.p.At);
                Assert.Equal(money, before + after);
                var total = (BigInteger)(long)t.p.Period.Duration.TotalSeconds;
                var part = (BigInteger)(long)(t.p.At - t.p.Period.Start).TotalSeconds;
                Assert.True(BigInteger.Abs((before.MinorUnits * total) - (t.amount * part)) < total);
            },
            Props.Many);
    }

    [Fact]
    public void A_quantity_change_nets_the_prorated_difference_within_one_unit()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from unit in Gens.Long(0, 100_000)
            from oldQuantity in Gens.Long(0, 1_000)
            from newQuantity in Gens.Long(0, 1_000)
            select (p, unit, oldQuantity, newQuantity),
            t =>
            {
                var price = new Billing.Pricing.PerUnitPrice(new Billing.Money(t.unit, Currency.USD));
                var result = ProrationCalculator.Prorate(t.p.Period, t.p.At, price, t.oldQuantity, price, t.newQuantity);
                var f = result.Debit!.Value.Formula;
                var exact = (BigInteger)t.unit * (t.newQuantity - t.oldQuantity) * f.NumeratorSeconds;
                Assert.True(BigInteger.Abs((result.Net.MinorUnits * (BigInteger)f.DenominatorSeconds) - exact) <= f.DenominatorSeconds);
            },
            Props.Many);
    }

    [Fact]
    public void A_later_change_never_credits_more()
    {
        Props.ForAll(
            from p in PeriodAndInstant()
            from later in Gens.Long(0, 86_400 * 40L)
            from amount in Amount()
            select (p, later, amount),
            t =>
            {
                var money = new Billing.Money(t.amount, Currency.USD);
                var laterAt = t.p.At.AddSeconds(t.later) > t.p.Period.End ? t.p.Period.End : t.p.At.AddSeconds(t.later);
                var early = ProrationCalculator.Prorate(t.p.Period, t.p.At, money, money).Credit!.Value.Amount;
                var late = ProrationCalculator.Prorate(t.p.Period, laterAt, money, money).Credit!.Value.Amount;
                Assert.True(late >= early);
            },
            Props.Many);
    }
}
