using Billing.Engine;
using Billing.Invoices;
using Billing.Payments;
using Billing.Proration;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using FsCheck;
using FsCheck.Fluent;
using static Billing.Tests.Engine.EngineHarness;

namespace Billing.Tests.Engine;

public sealed class EnginePropertyTests
{
    public enum OpKind
    {
        Create,
        CreateWithTrial,
        ChangePlan,
        ChangeQuantity,
        CancelNow,
        CancelAtPeriodEnd,
        Reactivate,
        PayLatest,
        FailNext,
        Advance,
    }

    public sealed record Op(OpKind Kind, int Target, int Value, ProrationBehavior Behavior);

    private static Gen<Op> Ops() =>
        from kind in Gen.Frequency(
            (3, Gen.Constant(OpKind.Create)), (1, Gen.Constant(OpKind.CreateWithTrial)), (2, Gen.Constant(OpKind.ChangePlan)),
            (2, Gen.Constant(OpKind.ChangeQuantity)), (1, Gen.Constant(OpKind.CancelNow)), (1, Gen.Constant(OpKind.CancelAtPeriodEnd)),
            (1, Gen.Constant(OpKind.Reactivate)), (1, Gen.Constant(OpKind.PayLatest)), (2, Gen.Constant(OpKind.FailNext)), (5, Gen.Constant(OpKind.Advance)))
        from target in Gen.Choose(0, 9)
        from value in Gen.Choose(1, 40)
        from behavior in Gen.Elements(Enum.GetValues<ProrationBehavior>())
        select new Op(kind, target, value, behavior);

    [Fact]
    public void Random_operation_sequences_keep_every_billing_invariant()
    {
        var sequences = from count in Gen.Choose(1, 30) from ops in Gen.ArrayOf(Ops(), count) select ops;
        Prop.ForAll(sequences.ToArbitrary(), ops => RunAsync(ops).GetAwaiter().GetResult())
            .Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    private static async Task RunAsync(Op[] ops)
    {
        var h = new EngineHarness();
        var plans = new[] { await h.MonthlyPlanAsync(1000, "Basic"), await h.MonthlyPlanAsync(2500, "Pro") };
        var quarterly = await h.Engine.CreatePlanAsync(new NewPlan("Quarterly", new Billing.Pricing.FlatPrice(Usd(5000)), Billing.Periods.BillingInterval.Quarterly));
        var (clock, payer) = await h.ClockCustomerAsync(Utc(2025, 1, 31, 12), FakePaymentGateway.Visa, "America/New_York");
        var decliner = await h.Engine.CreateCustomerAsync(new NewCustomer("Dee", "dee@example.com", Currency.USD) { PaymentMethod = FakePaymentGateway.ChargeDeclinedInsufficientFunds, TestClockId = clock.Id });
        var subscriptions = new List<string>();
        foreach (var op in ops)
        {
            var sub = subscriptions.Count == 0 ? null : subscriptions[op.Target % subscriptions.Count];
            try
            {
                switch (op.Kind)
                {
                    case OpKind.Create or OpKind.CreateWithTrial:
                        var customer = op.Value % 4 == 0 ? decliner : payer;
                        var plan = op.Value % 5 == 0 ? quarterly : plans[op.Value % 2];
                        subscriptions.Add((await h.Engine.CreateSubscriptionAsync(new NewSubscription(customer.Id, plan.Id) { TrialDays = op.Kind == OpKind.CreateWithTrial ? op.Value % 15 : 0, Quantity = 1 + (op.Value % 3) })).Id);
                        break;
                    case OpKind.ChangePlan when sub is not null:
                        await h.Engine.ChangeSubscriptionAsync(sub, new SubscriptionChange { PlanId = op.Value % 7 == 0 ? quarterly.Id : plans[op.Value % 2].Id, ProrationBehavior = op.Behavior, AtPeriodEnd = op.Value % 3 == 0 });
                        break;
                    case OpKind.ChangeQuantity when sub is not null:
                        await h.Engine.ChangeSubscriptionAsync(sub, new SubscriptionChange { Quantity = op.Value, ProrationBehavior = op.Behavior });
                        break;
                    case OpKind.CancelNow when sub is not null:
                        await h.Engine.CancelSubscriptionAsync(sub, prorate: op.Value % 2 == 0);
                        break;
                    case OpKind.CancelAtPeriodEnd when sub is not null:
                        await h.Engine.CancelSubscriptionAsync(sub, atPeriodEnd: true);
                        break;
                    case OpKind.Reactivate when sub is not null:
                        await h.Engine.ReactivateSubscriptionAsync(sub);
                        break;
                    case OpKind.PayLatest when sub is not null:
                        var latest = (await h.Engine.GetSubscriptionAsync(sub)).LatestInvoiceId;
                        if (latest is not null)
                        {
                            await h.Engine.PayInvoiceAsync(latest, FakePaymentGateway.Visa);
                        }

                        break;
                    case OpKind.FailNext:
                        h.Gateway.FailTimes(FakePaymentGateway.Visa, 1 + (op.Value % 3));
                        break;
                    case OpKind.Advance:
                        var now = (await h.Engine.GetTestClockAsync(clock.Id)).FrozenTime;
                        await h.Engine.AdvanceTestClockAsync(clock.Id, now.AddDays(op.Value));
                        break;
                }
            }
            catch (Exception e) when (e is InvalidStateTransitionException or BillingValidationException)
            {
                // Refused operations are expected in random sequences; they must change nothing (checked below).
            }
        }

        await CheckInvariantsAsync(h, subscriptions);
    }

    private static async Task CheckInvariantsAsync(EngineHarness h, List<string> subscriptions)
    {
        var invoices = (await Task.WhenAll(subscriptions.Select(s => h.InvoicesAsync(s)))).SelectMany(x => x).ToArray();
        foreach (var invoice in invoices)
        {
            // Every total is the exact sum of its lines.
            Assert.Equal(invoice.Total.MinorUnits, invoice.Lines.Where(l => !l.IsInclusiveTax).Sum(l => l.Amount.MinorUnits));
            var payments = await h.Engine.ListPaymentsAsync(invoice.Id);
            foreach (var payment in payments)
            {
                // No payment without a finalized (open) invoice.
                Assert.NotEqual(InvoiceStatus.Draft, invoice.Status);
                Assert.True(invoice.FinalizedAt <= payment.CreatedAt, $"payment {payment.Id} before its invoice was finalized");
            }

            // Charged ≤ invoiced, and the invoice records exactly what was charged.
            var charged = payments.Where(p => p.Status == PaymentStatus.Succeeded).Sum(p => p.Amount.MinorUnits);
            Assert.Equal(invoice.AmountPaid.MinorUnits, charged);
            Assert.True(charged <= Math.Max(0, invoice.Total.MinorUnits - invoice.CreditApplied.MinorUnits));
            Assert.True(payments.Count(p => p.Status == PaymentStatus.Succeeded) <= 1);
        }

        // No two invoices for the same subscription period (final invoices bill a stretch, not a period: no plan line).
        var periodInvoices = invoices.Where(i => i.DedupKey.Contains("/period/", StringComparison.Ordinal) && i.Lines.Any(l => l.Kind == InvoiceLineKind.Plan)).ToArray();
        Assert.Equal(periodInvoices.Length, periodInvoices.Select(i => (i.SubscriptionId, i.Period!.Value.Start)).Distinct().Count());
        Assert.Equal(invoices.Length, invoices.Select(i => i.DedupKey).Distinct().Count());

        // Numbers are gap-free over all finalized invoices.
        var numbers = invoices.Where(i => i.Number is not null).Select(i => int.Parse(i.Number!["INV-".Length..], System.Globalization.CultureInfo.InvariantCulture)).Order().ToArray();
        Assert.Equal(Enumerable.Range(1, numbers.Length), numbers);

        // Every status change went through the transition table.
        var transitions = SubscriptionStateMachine.Transitions.Select(t => (Naming(t.From), Naming(t.To))).ToHashSet();
        transitions.UnionWith(SubscriptionStateMachine.InitialStates.Select(s => ("(new)", Naming(s))));
        foreach (var e in (await h.EventsAsync()).Where(e => e.ObjectType == "subscription" && e.Data.ContainsKey("status") && e.Data.ContainsKey("previous_status")))
        {
            Assert.Contains((e.Data["previous_status"], e.Data["status"]), transitions);
        }

        foreach (var id in subscriptions)
        {
            var subscription = await h.Engine.GetSubscriptionAsync(id);
            Assert.True(subscription.Status != SubscriptionStatus.Canceled || subscription.NextActionAt is null);
            Assert.True(subscription.Quantity >= 1);
        }
    }

    private static string Naming(SubscriptionStatus status) => status switch
    {
        SubscriptionStatus.PastDue => "past_due",
        _ => status.ToString().ToLowerInvariant(),
    };
}
