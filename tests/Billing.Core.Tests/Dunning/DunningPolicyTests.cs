using Billing.Dunning;
using Billing.Payments;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Dunning;

public sealed class DunningPolicyTests
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 10, 9, 30, 0, TimeSpan.Zero);

    private static readonly DunningPolicy Policy = DunningPolicy.Default;

    private static PaymentResult Soft() => PaymentResult.Declined(DeclineType.Soft, "insufficient_funds", "Your card has insufficient funds.");

    private static PaymentResult Hard() => PaymentResult.Declined(DeclineType.Hard, "fraudulent", "The payment was declined as fraudulent.");

    private static PaymentResult Paid() => PaymentResult.Succeeded("pi_123");

    private static DateTimeOffset Day(double days) => T0 + TimeSpan.FromDays(days);

    [Fact]
    public void The_default_policy_is_version_1_retrying_after_1_3_5_and_7_days_then_cancels()
    {
        Assert.Equal(1, Policy.Version);
        Assert.Equal([TimeSpan.FromDays(1), TimeSpan.FromDays(3), TimeSpan.FromDays(5), TimeSpan.FromDays(7)], Policy.RetrySchedule);
        Assert.Equal(DunningFinalAction.Cancel, Policy.FinalAction);
        Assert.True(Policy.MarkInvoiceUncollectible);
    }

    [Fact]
    public void Soft_declines_are_retried_on_schedule_from_the_first_failure_then_exhausted()
    {
        var first = Policy.Decide(DunningState.Initial(1), Soft(), T0);
        Assert.Equal(DunningDecisionKind.RetryScheduled, first.Kind);
        Assert.Equal(Day(1), first.NextAttemptAt);
        Assert.Equal(["dunning.started", "dunning.retry_scheduled"], first.Events);
        Assert.Equal(new DunningState(1, 1, T0, Day(1), false), first.State);
        Assert.Null(first.FinalAction);
        Assert.False(first.MarkInvoiceUncollectible);
        Assert.True(first.State.InProgress);

        var second = Policy.Decide(first.State, Soft(), Day(1));
        Assert.Equal(DunningDecisionKind.RetryScheduled, second.Kind);
        Assert.Equal(Day(3), second.NextAttemptAt);
        Assert.Equal(["dunning.retry_scheduled"], second.Events);
        Assert.Equal(2, second.State.FailedAttempts);
        Assert.Equal(T0, second.State.FirstFailureAt);

        var third = Policy.Decide(second.State, Soft(), Day(3));
        Assert.Equal(DunningDecisionKind.RetryScheduled, third.Kind);
        Assert.Equal(Day(5), third.NextAttemptAt);
        Assert.Equal(["dunning.retry_scheduled"], third.Events);

        var fourth = Policy.Decide(third.State, Soft(), Day(5));
        Assert.Equal(DunningDecisionKind.RetryScheduled, fourth.Kind);
        Assert.Equal(Day(7), fourth.NextAttemptAt);
        Assert.Equal(["dunning.retry_scheduled"], fourth.Events);
        Assert.Equal(4, fourth.State.FailedAttempts);

        var fifth = Policy.Decide(fourth.State, Soft(), Day(7));
        Assert.Equal(DunningDecisionKind.Exhausted, fifth.Kind);
        Assert.Equal(DunningFinalAction.Cancel, fifth.FinalAction);
        Assert.True(fifth.MarkInvoiceUncollectible);
        Assert.Equal(["dunning.exhausted"], fifth.Events);
        Assert.Null(fifth.NextAttemptAt);
        Assert.Equal(5, fifth.State.FailedAttempts);
        Assert.True(fifth.State.Exhausted);
        Assert.False(fifth.State.InProgress);
        Assert.Equal(T0, fifth.State.FirstFailureAt);
        Assert.Equal(1, fifth.State.PolicyVersion);
    }

    [Fact]
    public void A_hard_decline_on_the_first_failure_exhausts_dunning_at_once()
    {
        var decision = Policy.Decide(DunningState.Initial(1), Hard(), T0);

        Assert.Equal(DunningDecisionKind.Exhausted, decision.Kind);
        Assert.Equal(["dunning.started", "dunning.exhausted"], decision.Events);
        Assert.Equal(DunningFinalAction.Cancel, decision.FinalAction);
        Assert.True(decision.MarkInvoiceUncollectible);
        Assert.Null(decision.NextAttemptAt);
        Assert.Equal(new DunningState(1, 1, T0, null, true), decision.State);
    }

    [Fact]
    public void A_hard_decline_during_retries_exhausts_dunning_without_using_the_remaining_retries()
    {
        var first = Policy.Decide(DunningState.Initial(1), Soft(), T0);

        var decision = Policy.Decide(first.State, Hard(), Day(1));

        Assert.Equal(DunningDecisionKind.Exhausted, decision.Kind);
        Assert.Equal(["dunning.exhausted"], decision.Events);
        Assert.Equal(2, decision.State.FailedAttempts);
        Assert.Null(decision.NextAttemptAt);
    }

    [Fact]
    public void Success_after_failures_resolves_dunning_with_an_event()
    {
        var first = Policy.Decide(DunningState.Initial(1), Soft(), T0);
        var second = Policy.Decide(first.State, Soft(), Day(1));

        var decision = Policy.Decide(second.State, Paid(), Day(3));

        Assert.Equal(DunningDecisionKind.Resolved, decision.Kind);
        Assert.Equal(["dunning.resolved"], decision.Events);
        Assert.Null(decision.NextAttemptAt);
        Assert.Null(decision.FinalAction);
        Assert.False(decision.MarkInvoiceUncollectible);
        Assert.False(decision.State.Exhausted);
    }

    [Fact]
    public void Success_without_a_prior_failure_resolves_silently()
    {
        var state = DunningState.Initial(1);

        var decision = Policy.Decide(state, Paid(), T0);

        Assert.Equal(DunningDecisionKind.Resolved, decision.Kind);
        Assert.Empty(decision.Events);
        Assert.Null(decision.NextAttemptAt);
        Assert.Equal(0, decision.State.FailedAttempts);
        Assert.False(decision.State.InProgress);
    }

    [Fact]
    public void A_resolved_state_is_no_longer_in_progress_and_does_not_resolve_twice()
    {
        var failed = Policy.Decide(DunningState.Initial(1), Soft(), T0);

        var resolved = Policy.Decide(failed.State, Paid(), Day(1));
        Assert.False(resolved.State.InProgress);

        var again = Policy.Decide(resolved.State, Paid(), Day(2));
        Assert.Empty(again.Events);
        Assert.True(resolved.State.Resolved);
        Assert.Throws<InvalidOperationException>(() => Policy.Decide(resolved.State, Soft(), Day(3)));
    }

    public static TheoryData<string> RetriedFailures => ["soft", "retryable", "requires_action"];

    private static PaymentResult Failure(string kind) => kind switch
    {
        "soft" => Soft(),
        "retryable" => PaymentResult.FailedRetryable("Gateway timed out."),
        "requires_action" => PaymentResult.RequiresAction("pi_456", "pi_456_secret_abc"),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [MemberData(nameof(RetriedFailures))]
    public void Retryable_failures_and_required_authentication_are_retried_like_soft_declines(string kind)
    {
        var state = DunningState.Initial(1);
        var times = new[] { T0, Day(1), Day(3), Day(5) };
        var expectedNext = new[] { Day(1), Day(3), Day(5), Day(7) };
        for (var i = 0; i < times.Length; i++)
        {
            var decision = Policy.Decide(state, Failure(kind), times[i]);
            Assert.Equal(DunningDecisionKind.RetryScheduled, decision.Kind);
            Assert.Equal(expectedNext[i], decision.NextAttemptAt);
            Assert.Equal(i == 0 ? ["dunning.started", "dunning.retry_scheduled"] : ["dunning.retry_scheduled"], decision.Events);
            state = decision.State;
        }

        var last = Policy.Decide(state, Failure(kind), Day(7));
        Assert.Equal(DunningDecisionKind.Exhausted, last.Kind);
        Assert.Equal(["dunning.exhausted"], last.Events);
        Assert.Equal(5, last.State.FailedAttempts);
    }

    [Fact]
    public void A_failure_after_exhaustion_throws()
    {
        var exhausted = Policy.Decide(DunningState.Initial(1), Hard(), T0).State;

        Assert.Throws<InvalidOperationException>(() => Policy.Decide(exhausted, Soft(), Day(1)));
        Assert.Throws<InvalidOperationException>(() => Policy.Decide(exhausted, Hard(), Day(1)));
        Assert.Throws<InvalidOperationException>(() => Policy.Decide(exhausted, PaymentResult.FailedRetryable("timeout"), Day(1)));
    }

    [Fact]
    public void A_success_after_exhaustion_resolves_without_an_event()
    {
        var exhausted = Policy.Decide(DunningState.Initial(1), Hard(), T0).State;

        var decision = Policy.Decide(exhausted, Paid(), Day(20));

        Assert.Equal(DunningDecisionKind.Resolved, decision.Kind);
        Assert.Empty(decision.Events);
        Assert.Null(decision.NextAttemptAt);
        Assert.Null(decision.FinalAction);
        Assert.False(decision.MarkInvoiceUncollectible);
    }

    [Fact]
    public void A_retry_processed_late_is_scheduled_no_earlier_than_now()
    {
        var first = Policy.Decide(DunningState.Initial(1), Soft(), T0);

        // The retry due on day 1 only ran on day 4: the day-3 retry is already in the past.
        var late = Policy.Decide(first.State, Soft(), Day(4));
        Assert.Equal(DunningDecisionKind.RetryScheduled, late.Kind);
        Assert.Equal(Day(4), late.NextAttemptAt);

        // Not late: back on the schedule counted from the first failure.
        var onTime = Policy.Decide(late.State, Soft(), Day(4.5));
        Assert.Equal(Day(5), onTime.NextAttemptAt);
        Assert.Equal(T0, onTime.State.FirstFailureAt);
    }

    [Fact]
    public void The_policy_version_is_fixed_when_dunning_starts()
    {
        var v2 = new DunningPolicy(2, [TimeSpan.FromDays(2), TimeSpan.FromDays(4)], DunningFinalAction.MarkUnpaid, markInvoiceUncollectible: false);

        var started = v2.Decide(DunningState.Initial(1), Soft(), T0);
        Assert.Equal(2, started.State.PolicyVersion);

        var later = Policy.Decide(started.State, Soft(), Day(2));
        Assert.Equal(2, later.State.PolicyVersion);
        Assert.Equal(DunningDecisionKind.RetryScheduled, later.Kind);

        var exhausted = v2.Decide(Policy.Decide(DunningState.Initial(1), Soft(), T0).State, Hard(), Day(1));
        Assert.Equal(1, exhausted.State.PolicyVersion);
        Assert.Equal(DunningFinalAction.MarkUnpaid, exhausted.FinalAction);
        Assert.False(exhausted.MarkInvoiceUncollectible);
    }

    [Fact]
    public void A_policy_that_marks_unpaid_reports_it_on_exhaustion()
    {
        var policy = new DunningPolicy(3, [TimeSpan.FromHours(12)], DunningFinalAction.MarkUnpaid, markInvoiceUncollectible: false);

        var first = policy.Decide(DunningState.Initial(3), Soft(), T0);
        Assert.Equal(T0 + TimeSpan.FromHours(12), first.NextAttemptAt);

        var last = policy.Decide(first.State, Soft(), T0 + TimeSpan.FromHours(12));
        Assert.Equal(DunningDecisionKind.Exhausted, last.Kind);
        Assert.Equal(DunningFinalAction.MarkUnpaid, last.FinalAction);
        Assert.False(last.MarkInvoiceUncollectible);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void A_version_below_1_is_rejected(int version)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DunningPolicy(version, [TimeSpan.FromDays(1)], DunningFinalAction.Cancel, true));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-24")]
    [InlineData("24,0")]
    [InlineData("24,24")]
    [InlineData("72,24")]
    [InlineData("24,48,48")]
    [InlineData("24,72,48,96")]
    public void A_non_positive_or_non_ascending_schedule_is_rejected(string hours)
    {
        var schedule = hours.Split(',').Select(h => TimeSpan.FromHours(int.Parse(h, System.Globalization.CultureInfo.InvariantCulture))).ToArray();

        var ex = Assert.Throws<ArgumentException>(() => new DunningPolicy(1, schedule, DunningFinalAction.Cancel, true));
        Assert.Equal("retrySchedule", ex.ParamName);
    }

    [Fact]
    public void A_null_schedule_is_rejected()
    {
        Assert.Throws<ArgumentNullException>(() => new DunningPolicy(1, null!, DunningFinalAction.Cancel, true));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(2)]
    [InlineData(99)]
    public void An_undefined_final_action_is_rejected(int action)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new DunningPolicy(1, [TimeSpan.FromDays(1)], (DunningFinalAction)action, true));
        Assert.Equal("finalAction", ex.ParamName);
    }

    [Fact]
    public void The_schedule_is_copied_so_the_caller_cannot_change_it_later()
    {
        var schedule = new List<TimeSpan> { TimeSpan.FromDays(1), TimeSpan.FromDays(2) };
        var policy = new DunningPolicy(1, schedule, DunningFinalAction.Cancel, true);

        schedule[0] = TimeSpan.FromDays(-5);
        schedule.Add(TimeSpan.FromDays(3));

        Assert.Equal([TimeSpan.FromDays(1), TimeSpan.FromDays(2)], policy.RetrySchedule);
    }

    [Fact]
    public void With_an_empty_schedule_the_first_soft_failure_exhausts_dunning()
    {
        var policy = new DunningPolicy(4, [], DunningFinalAction.MarkUnpaid, markInvoiceUncollectible: true);

        var decision = policy.Decide(DunningState.Initial(4), Soft(), T0);

        Assert.Equal(DunningDecisionKind.Exhausted, decision.Kind);
        Assert.Equal(["dunning.started", "dunning.exhausted"], decision.Events);
        Assert.Equal(DunningFinalAction.MarkUnpaid, decision.FinalAction);
        Assert.True(decision.MarkInvoiceUncollectible);
        Assert.Equal(new DunningState(4, 1, T0, null, true), decision.State);
    }

    [Fact]
    public void Null_arguments_are_rejected()
    {
        Assert.Throws<ArgumentNullException>(() => Policy.Decide(null!, Soft(), T0));
        Assert.Throws<ArgumentNullException>(() => Policy.Decide(DunningState.Initial(1), null!, T0));
    }

    public sealed record SoftRun(int Version, int[] ScheduleHours, DunningFinalAction FinalAction, bool Uncollectible, DateTimeOffset[] Times, int[] Kinds)
    {
        public override string ToString() =>
            $"v{Version} schedule=[{string.Join(", ", ScheduleHours)}]h final={FinalAction} uncollectible={Uncollectible} " +
            $"times=[{string.Join(", ", Times.Select(t => t.ToString("O")))}] kinds=[{string.Join(", ", Kinds)}]";
    }

    private static readonly string[] FailureKinds = ["soft", "retryable", "requires_action"];

    private static Gen<SoftRun> SoftRuns() =>
        from version in Gen.Choose(1, 9)
        from count in Gen.Choose(1, 6)
        from gaps in Gen.ArrayOf(Gen.Choose(1, 96), count)
        from finalAction in Gen.Elements(DunningFinalAction.Cancel, DunningFinalAction.MarkUnpaid)
        from uncollectible in Gen.Elements(true, false)
        from startMinutes in Gen.Choose(0, 60 * 24 * 365)
        from steps in Gen.ArrayOf(
            Gen.Frequency(
                (1, Gen.Constant(0)),
                (4, Gen.Choose(1, 60 * 24)),
                (3, Gen.Choose(60 * 24, 60 * 24 * 6))),
            count + 1)
        from kinds in Gen.ArrayOf(Gen.Choose(0, FailureKinds.Length - 1), count + 1)
        select new SoftRun(version, Cumulative(gaps), finalAction, uncollectible, Times(startMinutes, steps), kinds);

    private static int[] Cumulative(int[] gaps)
    {
        var sums = new int[gaps.Length];
        var sum = 0;
        for (var i = 0; i < gaps.Length; i++)
        {
            sum += gaps[i];
            sums[i] = sum;
        }

        return sums;
    }

    private static DateTimeOffset[] Times(int startMinutes, int[] stepMinutes)
    {
        var times = new DateTimeOffset[stepMinutes.Length];
        var t = T0 + TimeSpan.FromMinutes(startMinutes);
        for (var i = 0; i < stepMinutes.Length; i++)
        {
            // The first failure happens at the start; each later one some minutes (possibly none) after the previous.
            t += i == 0 ? TimeSpan.Zero : TimeSpan.FromMinutes(stepMinutes[i]);
            times[i] = t;
        }

        return times;
    }

    [Fact]
    public void Soft_failures_use_every_retry_of_the_schedule_then_exhaust_and_never_mutate_the_input()
    {
        Props.ForAll(
            SoftRuns(),
            run =>
            {
                var schedule = run.ScheduleHours.Select(h => TimeSpan.FromHours(h)).ToArray();
                var policy = new DunningPolicy(run.Version, schedule, run.FinalAction, run.Uncollectible);
                var state = DunningState.Initial(run.Version);
                var first = run.Times[0];
                var retries = 0;
                DunningDecision? decision = null;

                for (var k = 0; k < run.Times.Length; k++)
                {
                    var now = run.Times[k];
                    var before = state with { };
                    decision = policy.Decide(state, Failure(FailureKinds[run.Kinds[k]]), now);
                    Assert.Equal(before, state);

                    Assert.Equal(k + 1, decision.State.FailedAttempts);
                    Assert.Equal(first, decision.State.FirstFailureAt);
                    Assert.Equal(run.Version, decision.State.PolicyVersion);
                    if (decision.Kind == DunningDecisionKind.Exhausted)
                    {
                        break;
                    }

                    Assert.Equal(DunningDecisionKind.RetryScheduled, decision.Kind);
                    var due = first + schedule[k];
                    Assert.Equal(due > now ? due : now, decision.NextAttemptAt);
                    Assert.False(decision.State.Exhausted);
                    Assert.Null(decision.FinalAction);
                    Assert.Equal(k == 0 ? ["dunning.started", "dunning.retry_scheduled"] : ["dunning.retry_scheduled"], decision.Events);
                    retries++;
                    state = decision.State;
                }

                Assert.Equal(schedule.Length, retries);
                Assert.NotNull(decision);
                Assert.Equal(DunningDecisionKind.Exhausted, decision.Kind);
                Assert.Equal(schedule.Length + 1, decision.State.FailedAttempts);
                Assert.True(decision.State.Exhausted);
                Assert.Null(decision.NextAttemptAt);
                Assert.Equal(run.FinalAction, decision.FinalAction);
                Assert.Equal(run.Uncollectible, decision.MarkInvoiceUncollectible);
                Assert.Equal(["dunning.exhausted"], decision.Events);

                var exhausted = decision.State;
                var snapshot = exhausted with { };
                Assert.Throws<InvalidOperationException>(() => policy.Decide(exhausted, Soft(), run.Times[^1]));
                var resolved = policy.Decide(exhausted, Paid(), run.Times[^1]);
                Assert.Equal(DunningDecisionKind.Resolved, resolved.Kind);
                Assert.Empty(resolved.Events);
                Assert.Equal(snapshot, exhausted);
            },
            2_000);
    }
}
