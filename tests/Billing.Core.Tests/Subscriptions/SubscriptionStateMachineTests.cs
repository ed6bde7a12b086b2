using Billing.Subscriptions;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Subscriptions;

public sealed class SubscriptionStateMachineTests
{
    /// <summary>Copied by hand from the <c>remarks</c> list of <see cref="SubscriptionStateMachine"/>: a change to the table must change this too.</summary>
    private static readonly Dictionary<(SubscriptionStatus From, SubscriptionTrigger Trigger), SubscriptionStatus> Expected = new()
    {
        // incomplete: payment_succeeded → active; payment_failed → incomplete; cancel → canceled.
        [(SubscriptionStatus.Incomplete, SubscriptionTrigger.PaymentSucceeded)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Incomplete, SubscriptionTrigger.PaymentFailed)] = SubscriptionStatus.Incomplete,
        [(SubscriptionStatus.Incomplete, SubscriptionTrigger.Cancel)] = SubscriptionStatus.Canceled,

        // trialing: trial_ended → active; payment_failed → past_due; change_plan, schedule_cancellation → trialing; pause → paused; cancel → canceled.
        [(SubscriptionStatus.Trialing, SubscriptionTrigger.TrialEnded)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Trialing, SubscriptionTrigger.PaymentFailed)] = SubscriptionStatus.PastDue,
        [(SubscriptionStatus.Trialing, SubscriptionTrigger.ChangePlan)] = SubscriptionStatus.Trialing,
        [(SubscriptionStatus.Trialing, SubscriptionTrigger.ScheduleCancellation)] = SubscriptionStatus.Trialing,
        [(SubscriptionStatus.Trialing, SubscriptionTrigger.Pause)] = SubscriptionStatus.Paused,
        [(SubscriptionStatus.Trialing, SubscriptionTrigger.Cancel)] = SubscriptionStatus.Canceled,

        // active: renew, change_plan, schedule_cancellation, payment_succeeded → active; payment_failed → past_due; pause → paused; cancel → canceled.
        [(SubscriptionStatus.Active, SubscriptionTrigger.Renew)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Active, SubscriptionTrigger.ChangePlan)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Active, SubscriptionTrigger.ScheduleCancellation)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Active, SubscriptionTrigger.PaymentSucceeded)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Active, SubscriptionTrigger.PaymentFailed)] = SubscriptionStatus.PastDue,
        [(SubscriptionStatus.Active, SubscriptionTrigger.Pause)] = SubscriptionStatus.Paused,
        [(SubscriptionStatus.Active, SubscriptionTrigger.Cancel)] = SubscriptionStatus.Canceled,

        // past_due: payment_succeeded → active; payment_failed, renew, change_plan, schedule_cancellation → past_due; mark_unpaid → unpaid; cancel → canceled.
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.PaymentSucceeded)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.PaymentFailed)] = SubscriptionStatus.PastDue,
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.Renew)] = SubscriptionStatus.PastDue,
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.ChangePlan)] = SubscriptionStatus.PastDue,
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.ScheduleCancellation)] = SubscriptionStatus.PastDue,
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.MarkUnpaid)] = SubscriptionStatus.Unpaid,
        [(SubscriptionStatus.PastDue, SubscriptionTrigger.Cancel)] = SubscriptionStatus.Canceled,

        // unpaid: payment_succeeded → active; renew → unpaid; cancel → canceled.
        [(SubscriptionStatus.Unpaid, SubscriptionTrigger.PaymentSucceeded)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Unpaid, SubscriptionTrigger.Renew)] = SubscriptionStatus.Unpaid,
        [(SubscriptionStatus.Unpaid, SubscriptionTrigger.Cancel)] = SubscriptionStatus.Canceled,

        // paused: resume → active; cancel → canceled.
        [(SubscriptionStatus.Paused, SubscriptionTrigger.Resume)] = SubscriptionStatus.Active,
        [(SubscriptionStatus.Paused, SubscriptionTrigger.Cancel)] = SubscriptionStatus.Canceled,

        // canceled: restart → incomplete.
        [(SubscriptionStatus.Canceled, SubscriptionTrigger.Restart)] = SubscriptionStatus.Incomplete,
    };

    private static readonly Dictionary<SubscriptionStatus, string> StateNames = new()
    {
        [SubscriptionStatus.Incomplete] = "incomplete",
        [SubscriptionStatus.Trialing] = "trialing",
        [SubscriptionStatus.Active] = "active",
        [SubscriptionStatus.PastDue] = "past_due",
        [SubscriptionStatus.Unpaid] = "unpaid",
        [SubscriptionStatus.Paused] = "paused",
        [SubscriptionStatus.Canceled] = "canceled",
    };

    private static readonly Dictionary<SubscriptionTrigger, string> TriggerNames = new()
    {
        [SubscriptionTrigger.PaymentSucceeded] = "payment_succeeded",
        [SubscriptionTrigger.PaymentFailed] = "payment_failed",
        [SubscriptionTrigger.TrialEnded] = "trial_ended",
        [SubscriptionTrigger.Renew] = "renew",
        [SubscriptionTrigger.ChangePlan] = "change_plan",
        [SubscriptionTrigger.Pause] = "pause",
        [SubscriptionTrigger.Resume] = "resume",
        [SubscriptionTrigger.Cancel] = "cancel",
        [SubscriptionTrigger.MarkUnpaid] = "mark_unpaid",
        [SubscriptionTrigger.Restart] = "restart",
        [SubscriptionTrigger.ScheduleCancellation] = "schedule_cancellation",
    };

    private static readonly SubscriptionStatus[] AllStates = Enum.GetValues<SubscriptionStatus>();

    private static readonly SubscriptionTrigger[] AllTriggers = Enum.GetValues<SubscriptionTrigger>();

    public static TheoryData<SubscriptionStatus> States => [.. AllStates];

    public sealed record Walk(SubscriptionStatus Start, SubscriptionTrigger[] Triggers)
    {
        public override string ToString() => $"{Start}: [{string.Join(", ", Triggers)}]";
    }

    [Fact]
    public void The_name_tables_of_the_test_cover_every_enum_value()
    {
        Assert.Equal(AllStates.Length, StateNames.Count);
        Assert.Equal(AllTriggers.Length, TriggerNames.Count);
        Assert.All(AllStates, s => Assert.True(StateNames.ContainsKey(s), $"no name for {s}"));
        Assert.All(AllTriggers, t => Assert.True(TriggerNames.ContainsKey(t), $"no name for {t}"));
    }

    [Fact]
    public void The_transition_list_is_exactly_the_documented_table()
    {
        var actual = SubscriptionStateMachine.Transitions.ToDictionary(t => (t.From, t.Trigger), t => t.To);

        Assert.Equal(SubscriptionStateMachine.Transitions.Count, actual.Count);
        Assert.Equal(Expected.OrderBy(kv => kv.Key), actual.OrderBy(kv => kv.Key));
    }

    [Theory]
    [MemberData(nameof(States))]
    public void Every_trigger_either_leads_where_the_table_says_or_throws_a_descriptive_exception(SubscriptionStatus state)
    {
        var expectedAllowed = AllTriggers.Where(t => Expected.ContainsKey((state, t))).ToArray();
        Assert.Equal(expectedAllowed, SubscriptionStateMachine.AllowedTriggers(state));

        foreach (var trigger in AllTriggers)
        {
            var legal = Expected.TryGetValue((state, trigger), out var target);
            Assert.Equal(legal, SubscriptionStateMachine.CanFire(state, trigger));
            if (legal)
            {
                Assert.Equal(target, SubscriptionStateMachine.Next(state, trigger));
                continue;
            }

            var ex = Assert.Throws<InvalidStateTransitionException>(() => SubscriptionStateMachine.Next(state, trigger));
            Assert.Equal("subscription", ex.ObjectType);
            Assert.Equal(StateNames[state], ex.State);
            Assert.Equal(TriggerNames[trigger], ex.Trigger);
            Assert.Equal(expectedAllowed.Select(t => TriggerNames[t]), ex.AllowedTriggers);
            Assert.Contains("subscription", ex.Message, StringComparison.Ordinal);
            Assert.Contains($"'{StateNames[state]}'", ex.Message, StringComparison.Ordinal);
            Assert.Contains($"'{TriggerNames[trigger]}'", ex.Message, StringComparison.Ordinal);
            Assert.All(expectedAllowed, t => Assert.Contains(TriggerNames[t], ex.Message, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void No_subscription_state_is_a_dead_end()
    {
        Assert.All(AllStates, s => Assert.NotEmpty(SubscriptionStateMachine.AllowedTriggers(s)));
    }

    [Fact]
    public void Canceled_allows_only_restart_which_leads_to_incomplete()
    {
        Assert.Equal([SubscriptionTrigger.Restart], SubscriptionStateMachine.AllowedTriggers(SubscriptionStatus.Canceled));
        Assert.Equal(SubscriptionStatus.Incomplete, SubscriptionStateMachine.Next(SubscriptionStatus.Canceled, SubscriptionTrigger.Restart));

        var ex = Assert.Throws<InvalidStateTransitionException>(() => SubscriptionStateMachine.Next(SubscriptionStatus.Canceled, SubscriptionTrigger.Cancel));
        Assert.Equal("A subscription in state 'canceled' cannot take 'cancel'. Allowed in 'canceled': restart.", ex.Message);
        Assert.Equal(["restart"], ex.AllowedTriggers);
    }

    [Fact]
    public void Past_due_refuses_trial_ended_and_lists_what_it_allows()
    {
        var ex = Assert.Throws<InvalidStateTransitionException>(() => SubscriptionStateMachine.Next(SubscriptionStatus.PastDue, SubscriptionTrigger.TrialEnded));

        Assert.Equal("past_due", ex.State);
        Assert.Equal("trial_ended", ex.Trigger);
        Assert.Equal(["payment_succeeded", "payment_failed", "renew", "change_plan", "cancel", "mark_unpaid", "schedule_cancellation"], ex.AllowedTriggers);
    }

    [Fact]
    public void Mark_unpaid_is_refused_outside_past_due()
    {
        var ex = Assert.Throws<InvalidStateTransitionException>(() => SubscriptionStateMachine.Next(SubscriptionStatus.Active, SubscriptionTrigger.MarkUnpaid));

        Assert.IsAssignableFrom<InvalidOperationException>(ex);
        Assert.Equal("active", ex.State);
        Assert.Equal("mark_unpaid", ex.Trigger);
    }

    [Fact]
    public void Subscriptions_start_incomplete_or_trialing()
    {
        Assert.Equal([SubscriptionStatus.Incomplete, SubscriptionStatus.Trialing], SubscriptionStateMachine.InitialStates);
    }

    [Fact]
    public void Every_state_is_reachable_from_the_initial_states()
    {
        Assert.Equal(AllStates.ToHashSet(), Reachable());
    }

    [Fact]
    public void Trialing_cannot_be_reentered_once_left()
    {
        var entersTrialing = SubscriptionStateMachine.Transitions.Where(t => t.To == SubscriptionStatus.Trialing);

        Assert.All(entersTrialing, t => Assert.Equal(SubscriptionStatus.Trialing, t.From));
    }

    [Fact]
    public void Random_trigger_sequences_only_ever_visit_reachable_states()
    {
        var reachable = Reachable();
        var walks =
            from start in Gen.Elements(SubscriptionStateMachine.InitialStates.ToArray())
            from length in Gen.Choose(0, 40)
            from triggers in Gen.ArrayOf(Gen.Elements(AllTriggers), length)
            select new Walk(start, triggers);

        Props.ForAll(
            walks,
            walk =>
            {
                var state = walk.Start;
                Assert.Contains(state, reachable);
                foreach (var trigger in walk.Triggers)
                {
                    if (SubscriptionStateMachine.CanFire(state, trigger))
                    {
                        var next = SubscriptionStateMachine.Next(state, trigger);
                        Assert.Equal(Expected[(state, trigger)], next);
                        state = next;
                    }
                    else
                    {
                        var from = state;
                        var ex = Assert.Throws<InvalidStateTransitionException>(() => SubscriptionStateMachine.Next(from, trigger));
                        Assert.Equal(StateNames[from], ex.State);
                        Assert.Equal(TriggerNames[trigger], ex.Trigger);
                    }

                    Assert.Contains(state, reachable);
                }
            },
            5_000);
    }

    private static HashSet<SubscriptionStatus> Reachable()
    {
        var seen = new HashSet<SubscriptionStatus>(SubscriptionStateMachine.InitialStates);
        var queue = new Queue<SubscriptionStatus>(SubscriptionStateMachine.InitialStates);
        while (queue.TryDequeue(out var state))
        {
            foreach (var t in SubscriptionStateMachine.Transitions.Where(t => t.From == state))
            {
                if (seen.Add(t.To))
                {
                    queue.Enqueue(t.To);
                }
            }
        }

        return seen;
    }
}
