using Billing.Catalog;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Tests.Engine;
using Billing.Usage;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Usage;

public sealed class UsageMeteringServiceTests
{
    private static readonly DateTimeOffset Start = Utc(2025, 1, 1);

    private readonly InMemoryUsageCounter _counter = new();
    private readonly InMemoryUsageEventStore _events;
    private readonly EngineHarness _h;
    private readonly UsageMeteringService _metering;

    public UsageMeteringServiceTests() => (_h, _events, _metering) = MeteringHarness.Create(_counter);

    private static MeteredPrice ApiCalls => UsagePrices.GraduatedApiCalls;

    private async Task<(string ClockId, string CustomerId, Subscription Subscription)> SubscribeAsync(params Entitlement[] entitlements)
    {
        var plan = await _h.Engine.CreatePlanAsync(new NewPlan("Pro", new FlatPrice(Usd(1_000)), BillingInterval.Monthly)
        {
            MeteredPrices = [ApiCalls, new MeteredPrice { Meter = new Meter { Key = "users", Aggregation = MeterAggregation.UniqueCount, UniqueProperty = "user" }, Price = new PerUnitPrice(Usd(100)) }],
            Entitlements = entitlements,
        });
        var (clock, customer) = await _h.ClockCustomerAsync(Start);
        var subscription = await _h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id));
        return (clock.Id, customer.Id, subscription);
    }

    private static UsageEventInput Call(string customer, string key, long quantity, DateTimeOffset at) =>
        new() { CustomerId = customer, MeterKey = "api_calls", Quantity = quantity, Timestamp = at, IdempotencyKey = key };

    [Fact]
    public async Task A_metered_graduated_price_bills_exactly_the_hand_computed_usage_line_despite_late_duplicate_and_out_of_order_events()
    {
        var (clock, customer, subscription) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 25));
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "e1", 800, Utc(2025, 1, 5)))).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "e2", 1_500, Utc(2025, 1, 20)))).Status);
        var duplicate = await _metering.RecordAsync(Call(customer, "e1", 9_999, Utc(2025, 1, 5)));
        Assert.Equal((UsageIngestStatus.Duplicate, 800L), (duplicate.Status, duplicate.Total!.Value));
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "e3", 700, Utc(2025, 1, 10)))).Status); // out of order
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 31, 23));
        var late = await _metering.RecordAsync(Call(customer, "e4", 500, Utc(2025, 1, 2))); // late: the period's oldest usage, sent last
        Assert.Equal((UsageIngestStatus.Accepted, 3_500L), (late.Status, late.Total!.Value));
        var future = await _metering.RecordAsync(Call(customer, "e5", 1, Utc(2025, 1, 31, 23, 6)));
        Assert.Equal("timestamp_in_future", future.Reason);

        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 1, 2));
        var renewal = (await _h.InvoicesAsync(subscription.Id)).Single(i => i.Period!.Value.Start == Utc(2025, 2, 1));
        var usage = Assert.Single(renewal.Lines, l => l.Kind == InvoiceLineKind.Usage && l.MeterKey == "api_calls");
        // 1,000 free, then 2,500 at 2 cents: 5,000 cents.
        Assert.Equal((3_500L, Usd(5_000), new BillingPeriod(Utc(2025, 1, 1), Utc(2025, 2, 1))), (usage.Quantity, usage.Amount, usage.Period!.Value));
        Assert.Equal(Usd(1_000 + 5_000), renewal.Total);
        Assert.Equal(3_500, await _metering.GetDurableTotalAsync(new UsageCounterKey(customer, "api_calls", Utc(2025, 1, 1)), MeterAggregation.Sum));
    }

    [Fact]
    public async Task Events_past_the_grace_window_are_rejected_and_late_ones_within_it_go_to_the_closed_period()
    {
        var (clock, customer, _) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 1, 20));
        var withinGrace = await _metering.RecordAsync(Call(customer, "late", 5, Utc(2025, 1, 31, 23)));
        Assert.Equal(UsageIngestStatus.Accepted, withinGrace.Status);
        Assert.Equal(Utc(2025, 1, 1), withinGrace.Counter!.Value.PeriodStart);
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 2, 2, 1));
        var tooOld = await _metering.RecordAsync(Call(customer, "too-late", 5, Utc(2025, 1, 31, 23)));
        Assert.Equal(("timestamp_too_old", UsageIngestStatus.Rejected), (tooOld.Reason, tooOld.Status));
        var current = await _metering.RecordAsync(Call(customer, "now", 5, Utc(2025, 2, 2)));
        Assert.Equal(Utc(2025, 2, 1), current.Counter!.Value.PeriodStart);
    }

    [Fact]
    public async Task A_batch_gives_every_event_its_own_result_and_a_bad_event_drops_no_other()
    {
        var (clock, customer, _) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10));
        var results = await _metering.RecordBatchAsync(
        [
            Call(customer, "b1", 10, Utc(2025, 1, 9)),
            Call(customer, "b2", -1, Utc(2025, 1, 9)),
            Call(customer, "b1", 10, Utc(2025, 1, 9)),
            Call(customer, "b3", 5, Utc(2025, 1, 9)) with { MeterKey = "unknown_meter" },
            Call("cus_missing", "b4", 5, Utc(2025, 1, 9)),
            new UsageEventInput { CustomerId = customer, MeterKey = "users", Timestamp = Utc(2025, 1, 9), IdempotencyKey = "u1" },
            new UsageEventInput { CustomerId = customer, MeterKey = "users", Timestamp = Utc(2025, 1, 9), IdempotencyKey = "u2", Properties = new Dictionary<string, string> { ["user"] = "ada" } },
            Call(customer, "b5", 1, Utc(2025, 1, 9)),
            Call(customer, "b6\0", 1, Utc(2025, 1, 9)),
            Call(customer, "b7", 1, Utc(2025, 1, 9)) with { Properties = new Dictionary<string, string> { ["region"] = "eu\0" } },
        ]);
        Assert.Equal(
            ["accepted", "validation_error:quantity", "duplicate", "no_subscription_for_meter:meter", "customer_not_found:customer", "validation_error:properties.user", "accepted", "accepted", "validation_error:idempotency_key", "validation_error:properties"],
            results.Select(r => r.Status switch
            {
                UsageIngestStatus.Accepted => "accepted",
                UsageIngestStatus.Duplicate => "duplicate",
                _ => $"{r.Reason}:{r.Field}",
            }));
        Assert.Equal(11, await _metering.GetTotalAsync(new UsageCounterKey(customer, "api_calls", Utc(2025, 1, 1))));
        Assert.Equal(11, await _metering.GetDurableTotalAsync(new UsageCounterKey(customer, "api_calls", Utc(2025, 1, 1)), MeterAggregation.Sum));
        await Assert.ThrowsAsync<BillingValidationException>(() => _metering.RecordBatchAsync([]));
        await Assert.ThrowsAsync<BillingValidationException>(() => _metering.RecordBatchAsync([.. Enumerable.Range(0, 1_001).Select(i => Call(customer, $"x{i}", 1, Utc(2025, 1, 9)))]));
    }

    [Fact]
    public async Task A_hard_limit_rejects_without_counting_or_taking_the_key_and_a_soft_limit_notifies_once()
    {
        var (clock, customer, subscription) = await SubscribeAsync(
            new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 100, Enforcement = LimitEnforcement.Hard },
            new Entitlement { Feature = "api_soft", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 50, Thresholds = [40] });
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10));
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "a", 45, Utc(2025, 1, 9)))).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "b", 10, Utc(2025, 1, 9)))).Status);
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "c", 10, Utc(2025, 1, 9)))).Status);
        var over = await _metering.RecordAsync(Call(customer, "d", 40, Utc(2025, 1, 9)));
        Assert.Equal(("over_limit", 65L), (over.Reason, over.Total!.Value));
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "d", 35, Utc(2025, 1, 9)))).Status); // the key stayed free
        Assert.Equal(100, await _metering.GetDurableTotalAsync(new UsageCounterKey(customer, "api_calls", Utc(2025, 1, 1)), MeterAggregation.Sum));

        var thresholds = (await _h.EventsAsync()).Where(e => e.Type == "usage.threshold_reached").Select(e => (e.ObjectId, e.Data["feature"], e.Data["threshold"])).ToList();
        (string, string, string)[] expected = [(subscription.Id, "api_soft", "50"), (subscription.Id, "api_soft", "40")]; // a hard limit rejects instead
        Assert.Equal(expected.Order(), thresholds.Order());
        Assert.Equal(thresholds.Count, thresholds.Distinct().Count());

        var decision = await _metering.CheckEntitlementAsync(customer, "api");
        Assert.Equal((false, "limit_reached", 100L, 100L, 0L), (decision.Entitled, decision.Reason, decision.Limit!.Value, decision.Used!.Value, decision.Remaining!.Value));
    }

    [Fact]
    public async Task Entitlements_answer_from_the_plan_the_counters_and_the_dunning_state()
    {
        var (clock, customer, subscription) = await SubscribeAsync(
            new Entitlement { Feature = "sso" },
            new Entitlement { Feature = "projects", Kind = EntitlementKind.Limit, Limit = 5 },
            new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 100, Enforcement = LimitEnforcement.Hard });
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10));
        await _metering.RecordAsync(Call(customer, "a", 30, Utc(2025, 1, 9)));
        Assert.True((await _metering.CheckEntitlementAsync(customer, "sso")).Entitled);
        var projects = await _metering.CheckEntitlementAsync(customer, "projects");
        Assert.Equal((true, 5L, EntitlementKind.Limit), (projects.Entitled, projects.Limit!.Value, projects.Kind!.Value));
        var api = await _metering.CheckEntitlementAsync(customer, "api");
        Assert.Equal((true, 30L, 70L), (api.Entitled, api.Used!.Value, api.Remaining!.Value));
        Assert.Equal("not_in_plan", (await _metering.CheckEntitlementAsync(customer, "audit_log")).Reason);

        await using (var session = await _h.Store.BeginAsync())
        {
            var current = (await session.Subscriptions.GetAsync(subscription.Id))!;
            session.Subscriptions.Update(current with { Status = SubscriptionStatus.Unpaid });
            await session.CommitAsync();
        }

        Assert.Equal((false, "subscription_blocked"), Decision(await _metering.CheckEntitlementAsync(customer, "sso")));
        await _h.Engine.CancelSubscriptionAsync(subscription.Id);
        Assert.Equal((false, "no_subscription"), Decision(await _metering.CheckEntitlementAsync(customer, "sso")));
        await Assert.ThrowsAsync<BillingNotFoundException>(() => _metering.CheckEntitlementAsync("cus_missing", "sso"));

        static (bool, string?) Decision(EntitlementDecision d) => (d.Entitled, d.Reason);
    }

    [Fact]
    public async Task After_the_counters_are_lost_a_rebuild_brings_the_totals_back_and_a_replayed_event_stays_a_duplicate()
    {
        var (clock, customer, _) = await SubscribeAsync();
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10));
        await _metering.RecordBatchAsync([.. Enumerable.Range(0, 50).Select(i => Call(customer, $"r{i}", i, Utc(2025, 1, 9)))]);
        var lost = new InMemoryUsageCounter(); // a flushed Redis
        var fresh = new UsageMeteringService(_h.Store, lost, _events, _h.Time, new MeteringOptions());
        var key = new UsageCounterKey(customer, "api_calls", Utc(2025, 1, 1));
        Assert.Equal(0, await fresh.GetTotalAsync(key));
        var replay = await fresh.RecordAsync(Call(customer, "r7", 7, Utc(2025, 1, 9)));
        Assert.Equal(UsageIngestStatus.Duplicate, replay.Status); // the durable key caught it, and the counter was rebuilt
        Assert.Equal(1_225, await fresh.GetTotalAsync(key));
        Assert.Equal(1, await fresh.RebuildCountersAsync(Utc(2025, 1, 1), _ => MeterAggregation.Sum));
        Assert.Equal(1_225, await fresh.GetTotalAsync(key));
    }

    [Fact]
    public async Task After_a_rebuild_a_test_clock_customers_keys_stay_taken_so_a_replay_at_the_limit_is_a_duplicate_not_over_limit()
    {
        // The customer's clock (2025) is far ahead of the service's clock (2020): the rebuilt keys must expire on the
        // customer's clock, or a replay would be counted again (or refused as over the limit although it was counted).
        var (clock, customer, _) = await SubscribeAsync(
            new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 100, Enforcement = LimitEnforcement.Hard });
        await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, 1, 10));
        Assert.Equal(UsageIngestStatus.Accepted, (await _metering.RecordAsync(Call(customer, "a", 60, Utc(2025, 1, 9)))).Status);
        Assert.Equal(1, await _metering.RebuildCountersAsync(Utc(2025, 1, 1), _ => MeterAggregation.Sum));

        var replay = await _metering.RecordAsync(Call(customer, "a", 60, Utc(2025, 1, 9)));
        Assert.Equal((UsageIngestStatus.Duplicate, 60L), (replay.Status, replay.Total!.Value));
        Assert.Equal(60, await _metering.GetTotalAsync(new UsageCounterKey(customer, "api_calls", Utc(2025, 1, 1))));
    }

    [Fact]
    public async Task The_memory_of_sent_thresholds_stays_bounded_as_periods_roll_and_each_threshold_is_still_emitted_once()
    {
        var metering = new UsageMeteringService(_h.Store, _counter, _events, _h.Time, new MeteringOptions()) { MaxRememberedThresholds = 3 };
        var (clock, customer, subscription) = await SubscribeAsync(
            new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 30, Thresholds = [10, 20] });
        for (var month = 1; month <= 6; month++)
        {
            // Day 3 of each month: the previous month's usage closed (grace 24 h), so its thresholds are forgotten.
            await _h.Engine.AdvanceTestClockAsync(clock, Utc(2025, month, 3));
            for (var i = 0; i < 4; i++)
            {
                var result = await metering.RecordAsync(Call(customer, $"m{month}-{i}", 11, Utc(2025, month, 2)));
                Assert.Equal(UsageIngestStatus.Accepted, result.Status);
            }

            Assert.InRange(metering.RememberedThresholds, 1, 3);
        }

        // Another service (a second process, or one whose memory was cleared) crossing the same thresholds again emits nothing new.
        var other = new UsageMeteringService(_h.Store, new InMemoryUsageCounter(), _events, _h.Time, new MeteringOptions()) { MaxRememberedThresholds = 1 };
        await other.RecordAsync(Call(customer, "x1", 100, Utc(2025, 6, 2)));
        Assert.InRange(other.RememberedThresholds, 0, 1);

        var sent = (await _h.EventsAsync()).Where(e => e.Type == "usage.threshold_reached").Select(e => (e.ObjectId, e.Data["period_start"], e.Data["threshold"])).ToList();
        Assert.Equal(6 * 3, sent.Count); // 10, 20 and the soft limit 30, once per month
        Assert.Equal(sent.Count, sent.Distinct().Count());
        Assert.All(sent, e => Assert.Equal(subscription.Id, e.ObjectId));
    }

    [Fact]
    public void Invalid_plans_and_options_are_rejected_with_the_field()
    {
        var meter = new Meter { Key = "api_calls" };
        Assert.Equal("metered_prices[1].meter.key", Assert.Throws<BillingValidationException>(() => PlanUsageRules.Validate(Currency.USD, [ApiCalls, ApiCalls], [])).Field);
        Assert.Equal("metered_prices[0].price", Assert.Throws<BillingValidationException>(() => PlanUsageRules.Validate(Currency.EUR, [ApiCalls], [])).Field);
        Assert.Equal("meter.unique_property", Assert.Throws<BillingValidationException>(() => (meter with { Aggregation = MeterAggregation.UniqueCount }).Validate()).Field);
        Assert.Equal("meter.key", Assert.Throws<BillingValidationException>(() => (meter with { Key = "API Calls" }).Validate()).Field);
        Assert.Equal("entitlements[0].meter_key", Assert.Throws<BillingValidationException>(() => PlanUsageRules.Validate(Currency.USD, [], [new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 5 }])).Field);
        Assert.Equal("entitlements[0].limit", Assert.Throws<BillingValidationException>(() => PlanUsageRules.Validate(Currency.USD, [], [new Entitlement { Feature = "sso", Limit = 5 }])).Field);
        Assert.Equal("entitlements[1].feature", Assert.Throws<BillingValidationException>(() => PlanUsageRules.Validate(Currency.USD, [], [new Entitlement { Feature = "sso" }, new Entitlement { Feature = "sso" }])).Field);
        Assert.Equal("entitlements[0].thresholds", Assert.Throws<BillingValidationException>(() => PlanUsageRules.Validate(Currency.USD, [ApiCalls], [new Entitlement { Feature = "api", Kind = EntitlementKind.MeteredLimit, MeterKey = "api_calls", Limit = 5, Thresholds = [5] }])).Field);
        Assert.Equal("DedupWindow", Assert.Throws<BillingValidationException>(() => new MeteringOptions { DedupWindow = TimeSpan.FromMinutes(1) }.Validate()).Field);
        Assert.Equal("MaxBatchSize", Assert.Throws<BillingValidationException>(() => new MeteringOptions { MaxBatchSize = 0 }.Validate()).Field);
    }
}
