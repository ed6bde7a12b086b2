using Billing.Pricing;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Pricing;

public sealed class PricePropertyTests
{
    private static readonly Currency Currency = Billing.Currency.USD;

    private static Gen<PriceTier[]> Tiers() =>
        from count in Gen.Choose(1, 6)
        from widths in Gen.ArrayOf(Gens.Long(1, 50), count - 1)
        from units in Gen.ArrayOf(Gens.Long(0, 10_000), count)
        from flats in Gen.ArrayOf(Gen.Frequency((2, Gen.Constant(0L)), (1, Gens.Long(0, 50_000))), count)
        select Enumerable.Range(0, count)
            .Select(i => new PriceTier(i == count - 1 ? null : widths.Take(i + 1).Sum(), units[i], flats[i]))
            .ToArray();

    private static Gen<Price> AnyPrice() => Gen.OneOf(
        Gens.Long(0, 1_000_000).Select(a => (Price)new FlatPrice(new Billing.Money(a, Currency))),
        Gens.Long(0, 100_000).Select(a => (Price)new PerUnitPrice(new Billing.Money(a, Currency))),
        Tiers().Select(t => (Price)new GraduatedPrice(Currency, t)),
        Tiers().Select(t => (Price)new VolumePrice(Currency, t)),
        from amount in Gens.Long(0, 100_000)
        from size in Gens.Long(1, 100)
        select (Price)new PackagePrice(new Billing.Money(amount, Currency), size));

    private static Gen<long> Quantity() => Gen.Frequency((1, Gen.Constant(0L)), (6, Gens.Long(0, 400)), (1, Gens.Long(0, 1_000_000)));

    [Fact]
    public void Breakdown_always_sums_to_the_total()
    {
        Props.ForAll(
            from price in AnyPrice()
            from quantity in Quantity()
            select (price, quantity),
            t =>
            {
                var breakdown = t.price.Calculate(t.quantity);
                Assert.Equal(t.price.CalculateTotal(t.quantity), breakdown.Total);
                Assert.Equal(breakdown.Total.MinorUnits, breakdown.Components.Sum(c => c.Amount.MinorUnits));
                Assert.All(breakdown.Components, c => Assert.Equal(c.Quantity * c.UnitAmount, c.Amount.MinorUnits));
                Assert.Equal(t.quantity, breakdown.Quantity);
            },
            Props.Many);
    }

    [Fact]
    public void Graduated_per_unit_and_package_totals_never_decrease_as_quantity_grows()
    {
        var monotonic = Gen.OneOf(
            Tiers().Select(t => (Price)new GraduatedPrice(Currency, t)),
            Gens.Long(0, 100_000).Select(a => (Price)new PerUnitPrice(new Billing.Money(a, Currency))),
            from amount in Gens.Long(0, 100_000)
            from size in Gens.Long(1, 100)
            select (Price)new PackagePrice(new Billing.Money(amount, Currency), size));
        Props.ForAll(
            from price in monotonic
            from quantity in Quantity()
            from step in Gens.Long(1, 100)
            select (price, quantity, step),
            t => Assert.True(t.price.CalculateTotal(t.quantity) <= t.price.CalculateTotal(t.quantity + t.step)),
            Props.Many);
    }

    [Fact]
    public void Quantity_zero_costs_only_the_flat_parts()
    {
        Props.ForAll(AnyPrice(), price =>
        {
            var breakdown = price.Calculate(0);
            Assert.All(breakdown.Components, c => Assert.True(c.Kind == PriceComponentKind.FlatFee || c.Amount.IsZero));
            long expected = price switch
            {
                FlatPrice flat => flat.Amount.MinorUnits,
                GraduatedPrice graduated => graduated.Tiers[0].FlatAmount,
                VolumePrice volume => volume.Tiers[0].FlatAmount,
                _ => 0,
            };
            Assert.Equal(expected, breakdown.Total.MinorUnits);
        },
        Props.Many);
    }

    [Fact]
    public void Graduated_equals_pricing_each_unit_at_its_tier()
    {
        Props.ForAll(
            from tiers in Tiers()
            from quantity in Gens.Long(0, 400)
            select (tiers, quantity),
            t =>
            {
                // Reference: walk unit by unit; a tier's flat fee is charged when its first unit is (tier 0: always).
                long expected = t.tiers[0].FlatAmount;
                var tier = 0;
                for (long unit = 1; unit <= t.quantity; unit++)
                {
                    var entered = false;
                    while (t.tiers[tier].UpTo is { } upTo && unit > upTo)
                    {
                        tier++;
                        entered = true;
                    }

                    if (entered)
                    {
                        expected += t.tiers[tier].FlatAmount;
                    }

                    expected += t.tiers[tier].UnitAmount;
                }

                Assert.Equal(expected, new GraduatedPrice(Currency, t.tiers).CalculateTotal(t.quantity).MinorUnits);
            },
            Props.Many);
    }

    [Fact]
    public void Volume_equals_all_units_at_the_tier_of_the_total()
    {
        Props.ForAll(
            from tiers in Tiers()
            from quantity in Gens.Long(0, 400)
            select (tiers, quantity),
            t =>
            {
                var tier = t.tiers.First(x => x.UpTo is null || t.quantity <= x.UpTo);
                Assert.Equal(tier.FlatAmount + (t.quantity * tier.UnitAmount), new VolumePrice(Currency, t.tiers).CalculateTotal(t.quantity).MinorUnits);
            },
            Props.Many);
    }
}
