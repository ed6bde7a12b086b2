using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;

namespace Billing.Tests;

/// <summary>The README's 30-second example, kept compiling and true.</summary>
public sealed class ReadmeExampleTests
{
    [Fact]
    public void The_readme_example_prints_what_it_says()
    {
        var usd = Currency.FromCode("USD");

        // Money: long minor units + currency, checked arithmetic, exact splits.
        var price = Money.FromMajorUnits(29.99m, usd);                   // 2999 minor units
        var parts = (price * 3).Split(4);                                 // 22.50, 22.49, 22.49, 22.49

        // Prices: first 1,000 API calls free, then 0.20 each (graduated tiers).
        var api = new GraduatedPrice(usd, [PriceTier.Until(1_000, 0), PriceTier.Unbounded(20)]);
        var usage = api.CalculateTotal(1_250);                            // 50.00 USD

        // Periods: anchored on the 31st, on the customer's calendar, DST-safe.
        var schedule = BillingSchedule.Anniversary(
            new DateTimeOffset(2025, 1, 31, 15, 0, 0, TimeSpan.Zero),
            BillingInterval.Monthly,
            TimeZoneInfo.FindSystemTimeZoneById("America/New_York"));
        var second = schedule.GetPeriod(1);                               // [2025-02-28 15:00Z, 2025-03-31 14:00Z)

        // Proration: upgrade to 49.99 ten days into that period, to the second.
        var upgrade = ProrationCalculator.Prorate(second, second.Start.AddDays(10), price, Money.FromMajorUnits(49.99m, usd));

        Assert.Equal(["22.50 USD", "22.49 USD", "22.49 USD", "22.49 USD"], parts.Select(p => p.ToString()));
        Assert.Equal("50.00 USD", usage.ToString());
        Assert.Equal(new BillingPeriod(new DateTimeOffset(2025, 2, 28, 15, 0, 0, TimeSpan.Zero), new DateTimeOffset(2025, 3, 31, 14, 0, 0, TimeSpan.Zero)), second);
        Assert.Equal("-20.30 USD", upgrade.Credit!.Value.Amount.ToString());
        Assert.Equal("33.84 USD", upgrade.Debit!.Value.Amount.ToString());
        Assert.Equal("13.54 USD", upgrade.Net.ToString());
        Assert.Equal("round(49.99 USD × 1810800 / 2674800, HalfEven)", upgrade.Debit!.Value.Formula.ToString());
    }
}
