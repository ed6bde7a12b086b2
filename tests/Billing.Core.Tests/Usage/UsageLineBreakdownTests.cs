using Billing.Catalog;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Tests.Support;
using Billing.Usage;
using FsCheck;
using FsCheck.Fluent;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

/// <summary>
/// Usage lines carry the quantity and the price model's breakdown tier by tier; the parts add up exactly to the line.
/// </summary>
public sealed class UsageLineBreakdownTests
{
    private static readonly BillingPeriod January = new(Utc(2025, 1, 1), Utc(2025, 2, 1));

    private static Gen<PriceTier[]> Tiers() =>
        from count in Gen.Choose(1, 6)
        from widths in Gen.ArrayOf(Gen.Frequency((3, Gens.Long(1, 50)), (1, Gens.Long(1, 1_000_000))), count - 1)
        from units in Gen.ArrayOf(Gen.Frequency((1, Gen.Constant(0L)), (4, Gens.Long(0, 100_000))), count)
        from flats in Gen.ArrayOf(Gen.Frequency((2, Gen.Constant(0L)), (1, Gens.Long(0, 1_000_000))), count)
        select Enumerable.Range(0, count)
            .Select(i => new PriceTier(i == count - 1 ? null : widths.Take(i + 1).Sum(), units[i], flats[i]))
            .ToArray();

    private static Gen<Price> TieredOrPackage(Currency currency) => Gen.OneOf(
        Tiers().Select(t => (Price)new GraduatedPrice(currency, t)),
        Tiers().Select(t => (Price)new VolumePrice(currency, t)),
        from amount in Gens.Long(0, 1_000_000)
        from size in Gen.Frequency((3, Gens.Long(1, 100)), (1, Gens.Long(1, 1_000_000)))
        select (Price)new PackagePrice(new Money(amount, currency), size));

    private static Gen<long> Quantity() =>
        Gen.Frequency((1, Gen.Constant(0L)), (5, Gens.Long(0, 500)), (2, Gens.Long(0, 10_000_000)), (1, Gens.Long(0, 1_000_000_000)));

    /// <summary>
    /// Property: for random graduated, volume and package prices and quantities, the usage line's breakdown has the
    /// line's quantity, its parts sum exactly to the line amount (= the price's total), each part is quantity × unit
    /// amount, the tier bounds are the price's tiers, and the units per tier add up to the quantity (graduated), are
    /// the whole quantity in the tier that contains it (volume), or are the packages that cover it (package). The
    /// breakdown survives a rebuild from its components (what storage does).
    /// </summary>
    [Fact]
    public void A_usage_lines_breakdown_sums_exactly_to_the_line_for_any_tiers_and_quantity()
    {
        var cases =
            from currency in Gen.Elements(Currency.USD, Currency.JPY, Currency.KWD)
            from price in TieredOrPackage(currency)
            from quantity in Quantity()
            select (price, quantity);
        Props.ForAll(cases, t =>
        {
            var (price, quantity) = t;
            var metered = new MeteredPrice { Meter = new Meter { Key = "units" }, Price = price };
            var line = MeteredUsageCharges.Line("plan_p", metered, quantity, January);
            var breakdown = line.Breakdown!;
            Assert.Equal((InvoiceLineKind.Usage, quantity, quantity, "plan_p", "units"), (line.Kind, line.Quantity, breakdown.Quantity, line.PlanId, line.MeterKey));
            Assert.Equal(price.CalculateTotal(quantity), line.Amount);
            Assert.Equal(line.Amount, breakdown.Total);
            Assert.Equal(line.Amount.MinorUnits, breakdown.Components.Sum(c => c.Amount.MinorUnits));
            Assert.All(breakdown.Components, c => Assert.Equal(checked(c.Quantity * c.UnitAmount), c.Amount.MinorUnits));
            Assert.All(breakdown.Components, c => Assert.Same(price.Currency, c.Amount.Currency));

            switch (price)
            {
                case GraduatedPrice graduated:
                    AssertTierBounds(graduated.Tiers, breakdown);
                    var units = breakdown.Components.Where(c => c.Kind == PriceComponentKind.Units).ToList();
                    Assert.Equal(quantity, units.Sum(c => c.Quantity));
                    Assert.All(units, c => Assert.True(c.Quantity >= 1 && (c.TierUpTo is not { } upTo || c.Quantity <= upTo - c.TierFrom!.Value + 1), $"{c} overflows its tier"));
                    Assert.Equal(units.Select(c => c.TierIndex).Order(), units.Select(c => c.TierIndex)); // tier order, each tier once
                    Assert.Equal(units.Count, units.Select(c => c.TierIndex).Distinct().Count());
                    Assert.All(units.SkipLast(1), c => Assert.Equal(c.TierUpTo!.Value - c.TierFrom!.Value + 1, c.Quantity)); // lower tiers are full
                    break;
                case VolumePrice volume:
                    AssertTierBounds(volume.Tiers, breakdown);
                    Assert.All(breakdown.Components, c => Assert.Equal(volume.TierIndexFor(quantity), c.TierIndex));
                    if (quantity > 0)
                    {
                        var all = Assert.Single(breakdown.Components, c => c.Kind == PriceComponentKind.Units);
                        Assert.Equal(quantity, all.Quantity);
                        Assert.True(all.TierFrom <= quantity && (all.TierUpTo is null || quantity <= all.TierUpTo), $"{quantity} is not in {all}");
                    }

                    break;
                case PackagePrice package:
                    var packages = Assert.Single(breakdown.Components);
                    Assert.Equal((PriceComponentKind.Packages, -1, package.PackageAmount.MinorUnits), (packages.Kind, packages.TierIndex, packages.UnitAmount));
                    Assert.True((packages.Quantity - 1) * package.PackageSize < quantity || quantity == 0);
                    Assert.True(packages.Quantity * package.PackageSize >= quantity);
                    break;
            }

            var restored = PriceBreakdown.FromComponents(breakdown.Quantity, price.Currency, breakdown.Components);
            Assert.Equal((breakdown.Quantity, breakdown.Total), (restored.Quantity, restored.Total));
            Assert.Equal(breakdown.Components, restored.Components);
        },
        maxTest: 5_000);
    }

    [Fact]
    public async Task Renewal_usage_lines_from_the_durable_events_carry_quantity_plan_and_tier_breakdown()
    {
        var events = new InMemoryUsageEventStore();
        var charges = new MeteredUsageCharges(events);
        var plan = new Plan
        {
            Id = "plan_usage",
            Name = "Usage",
            Price = new FlatPrice(Usd(0)),
            Interval = BillingInterval.Monthly,
            MeteredPrices =
            [
                new MeteredPrice { Meter = new Meter { Key = "storage" }, Description = "Storage", Price = new VolumePrice(Currency.USD, [PriceTier.Until(100, 10, 500), PriceTier.Unbounded(5, 1_000)]) },
                new MeteredPrice { Meter = new Meter { Key = "seats" }, Price = new PackagePrice(Usd(2_000), 5) },
                new MeteredPrice { Meter = new Meter { Key = "idle" }, Price = new GraduatedPrice(Currency.USD, [PriceTier.Until(10, 0, 300), PriceTier.Unbounded(7)]) },
            ],
        };
        var subscription = new Subscription { Id = "sub_1", CustomerId = "cus_1", PlanId = plan.Id, Quantity = 1, Status = SubscriptionStatus.Active, ScheduleStart = January.Start, AnchorLocal = new DateTime(2025, 1, 1), CurrentPeriod = January };
        await events.AppendAsync(
        [
            Stored("storage", "s1", 80), Stored("storage", "s2", 70),
            Stored("seats", "p1", 11),
        ]);

        var lines = await charges.GetUsageLinesAsync(subscription, plan, January);

        Assert.Equal(["Storage", "seats", "idle"], lines.Select(l => l.Description));
        Assert.All(lines, l => Assert.Equal((InvoiceLineKind.Usage, "plan_usage", January), (l.Kind, l.PlanId!, l.Period!.Value)));
        // storage: 150 units fall in tier 2 (101+): 10.00 flat + 150 × 0.05 = 17.50
        Assert.Equal((150L, Usd(1_750)), (lines[0].Quantity, lines[0].Amount));
        Assert.Equal(
            [(PriceComponentKind.FlatFee, 101L, (long?)null, 1L, 1_000L), (PriceComponentKind.Units, 101L, null, 150L, 750L)],
            lines[0].Breakdown!.Components.Select(c => (c.Kind, c.TierFrom!.Value, c.TierUpTo, c.Quantity, c.Amount.MinorUnits)));
        // seats: 11 units need 3 packages of 5 at 20.00
        Assert.Equal((11L, Usd(6_000), 3L), (lines[1].Quantity, lines[1].Amount, Assert.Single(lines[1].Breakdown!.Components).Quantity));
        // idle: nothing used still bills the first tier's flat fee of 3.00
        Assert.Equal((0L, Usd(300)), (lines[2].Quantity, lines[2].Amount));
        Assert.Equal((PriceComponentKind.FlatFee, 1L, (long?)10L), Assert.Single(lines[2].Breakdown!.Components) is var c ? (c.Kind, c.TierFrom!.Value, c.TierUpTo) : default);
    }

    [Fact]
    public void A_breakdown_rebuilt_from_components_is_checked()
    {
        var good = new PriceComponent(PriceComponentKind.Units, 0, 3, 5, Usd(15)) { TierFrom = 1, TierUpTo = 10 };
        Assert.Equal(Usd(15), PriceBreakdown.FromComponents(3, Currency.USD, [good]).Total);
        Assert.Throws<ArgumentException>(() => PriceBreakdown.FromComponents(3, Currency.USD, [good with { Amount = Usd(16) }]));
        Assert.Throws<ArgumentException>(() => PriceBreakdown.FromComponents(3, Currency.EUR, [good]));
        Assert.Throws<ArgumentException>(() => PriceBreakdown.FromComponents(3, Currency.USD, [good with { Quantity = -3, Amount = Usd(-15) }]));
        Assert.Throws<ArgumentOutOfRangeException>(() => PriceBreakdown.FromComponents(-1, Currency.USD, [good]));
        Assert.Equal(Usd(0), PriceBreakdown.FromComponents(0, Currency.USD, []).Total);
    }

    private static void AssertTierBounds(IReadOnlyList<PriceTier> tiers, PriceBreakdown breakdown) =>
        Assert.All(breakdown.Components, c =>
        {
            var from = c.TierIndex == 0 ? 1 : tiers[c.TierIndex - 1].UpTo!.Value + 1;
            Assert.Equal((from, tiers[c.TierIndex].UpTo), (c.TierFrom!.Value, c.TierUpTo));
        });

    private static StoredUsageEvent Stored(string meter, string key, long quantity) => new()
    {
        Counter = new UsageCounterKey("cus_1", meter, January.Start),
        Quantity = quantity,
        IdempotencyKey = key,
        Timestamp = January.Start.AddDays(3),
        ReceivedAt = January.Start.AddDays(3),
    };
}
