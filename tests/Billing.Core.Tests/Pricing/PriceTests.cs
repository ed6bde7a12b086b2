using Billing.Pricing;

namespace Billing.Tests.Pricing;

public sealed class PriceTests
{
    private static readonly Currency Usd = Currency.USD;

    private static readonly PriceTier[] TenThenCheaper = [PriceTier.Until(10, 500), PriceTier.Unbounded(400)];

    [Fact]
    public void Flat_price_costs_its_amount_whatever_the_quantity()
    {
        var price = new FlatPrice(new Billing.Money(2900, Usd));

        Assert.Equal(PriceModel.Flat, price.Model);
        Assert.Equal(2900, price.CalculateTotal(0).MinorUnits);
        Assert.Equal(2900, price.CalculateTotal(1_000).MinorUnits);
        var component = Assert.Single(price.Calculate(7).Components);
        Assert.Equal(new PriceComponent(PriceComponentKind.FlatFee, -1, 1, 2900, new Billing.Money(2900, Usd)), component);
    }

    [Fact]
    public void Per_unit_price_multiplies()
    {
        var price = new PerUnitPrice(new Billing.Money(1250, Usd));

        var breakdown = price.Calculate(4);

        Assert.Equal(5000, breakdown.Total.MinorUnits);
        Assert.Equal(new PriceComponent(PriceComponentKind.Units, -1, 4, 1250, new Billing.Money(5000, Usd)), Assert.Single(breakdown.Components));
        Assert.Equal(0, price.CalculateTotal(0).MinorUnits);
    }

    [Fact]
    public void Graduated_price_charges_each_unit_in_its_own_tier()
    {
        var price = new GraduatedPrice(Usd, TenThenCheaper);

        // 10 × 5.00 + 2 × 4.00 = 58.00
        var breakdown = price.Calculate(12);

        Assert.Equal(5800, breakdown.Total.MinorUnits);
        Assert.Equal(
            [
                new PriceComponent(PriceComponentKind.Units, 0, 10, 500, new Billing.Money(5000, Usd)) { TierFrom = 1, TierUpTo = 10 },
                new PriceComponent(PriceComponentKind.Units, 1, 2, 400, new Billing.Money(800, Usd)) { TierFrom = 11 }, // open-ended
            ],
            breakdown.Components);
        Assert.Equal(5000, price.CalculateTotal(10).MinorUnits);
        Assert.Equal(500, price.CalculateTotal(1).MinorUnits);
    }

    [Fact]
    public void Graduated_flat_fees_apply_once_the_quantity_reaches_their_tier_and_the_first_always()
    {
        // Stripe-style "base fee + usage": first 1,000 calls included for 20.00, then 0.02 each + 5.00 once past 1,000.
        var price = new GraduatedPrice(Usd, [PriceTier.Until(1_000, 0, 2000), PriceTier.Unbounded(2, 500)]);

        Assert.Equal(2000, price.CalculateTotal(0).MinorUnits);
        Assert.Equal(2000, price.CalculateTotal(1_000).MinorUnits);
        Assert.Equal(2000 + 500 + 2, price.CalculateTotal(1_001).MinorUnits);
        var zero = price.Calculate(0);
        Assert.Equal(new PriceComponent(PriceComponentKind.FlatFee, 0, 1, 2000, new Billing.Money(2000, Usd)) { TierFrom = 1, TierUpTo = 1_000 }, Assert.Single(zero.Components));
    }

    [Fact]
    public void Volume_price_charges_every_unit_at_the_tier_the_total_falls_in()
    {
        var price = new VolumePrice(Usd, TenThenCheaper);

        Assert.Equal(5000, price.CalculateTotal(10).MinorUnits);
        Assert.Equal(4800, price.CalculateTotal(12).MinorUnits); // 12 × 4.00: cheaper than 10 units, by design
        Assert.Equal(0, price.TierIndexFor(10));
        Assert.Equal(1, price.TierIndexFor(11));
        Assert.Equal(
            [new PriceComponent(PriceComponentKind.Units, 1, 12, 400, new Billing.Money(4800, Usd)) { TierFrom = 11 }],
            price.Calculate(12).Components);
    }

    [Fact]
    public void Volume_flat_fee_is_the_tiers_and_quantity_zero_costs_the_first_tiers()
    {
        var price = new VolumePrice(Usd, [PriceTier.Until(5, 100, 1000), PriceTier.Unbounded(50, 3000)]);

        Assert.Equal(1000, price.CalculateTotal(0).MinorUnits);
        Assert.Equal(1000 + 500, price.CalculateTotal(5).MinorUnits);
        Assert.Equal(3000 + 300, price.CalculateTotal(6).MinorUnits);
    }

    [Fact]
    public void Package_price_rounds_partial_packages_up()
    {
        var price = new PackagePrice(new Billing.Money(500, Usd), 10);

        Assert.Equal(0, price.CalculateTotal(0).MinorUnits);
        Assert.Equal(500, price.CalculateTotal(1).MinorUnits);
        Assert.Equal(500, price.CalculateTotal(10).MinorUnits);
        Assert.Equal(1000, price.CalculateTotal(11).MinorUnits);
        Assert.Equal(new PriceComponent(PriceComponentKind.Packages, -1, 2, 500, new Billing.Money(1000, Usd)), Assert.Single(price.Calculate(11).Components));
        Assert.Equal(long.MaxValue / 10 + 1, price.PackagesFor(long.MaxValue));
    }

    [Fact]
    public void Negative_quantity_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PerUnitPrice(new Billing.Money(1, Usd)).Calculate(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GraduatedPrice(Usd, TenThenCheaper).CalculateTotal(-1));
    }

    [Fact]
    public void Totals_that_do_not_fit_throw_instead_of_wrapping()
    {
        Assert.Throws<OverflowException>(() => new PerUnitPrice(new Billing.Money(long.MaxValue, Usd)).CalculateTotal(2));
        Assert.Throws<OverflowException>(() => new GraduatedPrice(Usd, TenThenCheaper).Calculate(long.MaxValue));
    }

    [Fact]
    public void Negative_amounts_and_bad_package_sizes_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FlatPrice(new Billing.Money(-1, Usd)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PerUnitPrice(new Billing.Money(-1, Usd)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PackagePrice(new Billing.Money(-1, Usd), 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PackagePrice(new Billing.Money(1, Usd), 0));
    }

    public static TheoryData<PriceTier[], string> BadTiers => new()
    {
        { [], "at least one tier" },
        { [PriceTier.Until(10, 1)], "must be open-ended" },
        { [PriceTier.Unbounded(1), PriceTier.Until(10, 1), PriceTier.Unbounded(1)], "only the last tier" },
        { [PriceTier.Until(10, 1), PriceTier.Until(10, 1), PriceTier.Unbounded(1)], "strictly ascending" },
        { [PriceTier.Until(10, 1), PriceTier.Until(5, 1), PriceTier.Unbounded(1)], "strictly ascending" },
        { [PriceTier.Until(0, 1), PriceTier.Unbounded(1)], "at least 1" },
        { [PriceTier.Until(10, -1), PriceTier.Unbounded(1)], "negative amount" },
        { [PriceTier.Until(10, 1), PriceTier.Unbounded(1, -5)], "negative amount" },
    };

    [Theory]
    [MemberData(nameof(BadTiers))]
    public void Bad_tiers_are_a_clear_error_at_construction(PriceTier[] tiers, string message)
    {
        var graduated = Assert.Throws<ArgumentException>(() => new GraduatedPrice(Usd, tiers));
        var volume = Assert.Throws<ArgumentException>(() => new VolumePrice(Usd, tiers));

        Assert.Contains(message, graduated.Message, StringComparison.Ordinal);
        Assert.Contains(message, volume.Message, StringComparison.Ordinal);
        Assert.Equal("tiers", graduated.ParamName);
    }

    [Fact]
    public void Tiers_are_copied_so_the_price_stays_immutable()
    {
        PriceTier[] tiers = [PriceTier.Until(10, 500), PriceTier.Unbounded(400)];
        var price = new GraduatedPrice(Usd, tiers);

        tiers[0] = PriceTier.Until(10, 1);

        Assert.Equal(5000, price.CalculateTotal(10).MinorUnits);
        Assert.Equal(500, price.Tiers[0].UnitAmount);
    }
}
