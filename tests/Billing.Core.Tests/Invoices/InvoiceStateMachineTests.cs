using Billing.Invoices;

namespace Billing.Tests.Invoices;

public sealed class InvoiceStateMachineTests
{
    /// <summary>draft → open → paid | void | uncollectible; uncollectible → paid | void; paid and void are final.</summary>
    private static readonly Dictionary<(InvoiceStatus From, InvoiceTrigger Trigger), InvoiceStatus> Expected = new()
    {
        [(InvoiceStatus.Draft, InvoiceTrigger.Finalize)] = InvoiceStatus.Open,
        [(InvoiceStatus.Open, InvoiceTrigger.Pay)] = InvoiceStatus.Paid,
        [(InvoiceStatus.Open, InvoiceTrigger.Void)] = InvoiceStatus.Void,
        [(InvoiceStatus.Open, InvoiceTrigger.MarkUncollectible)] = InvoiceStatus.Uncollectible,
        [(InvoiceStatus.Uncollectible, InvoiceTrigger.Pay)] = InvoiceStatus.Paid,
        [(InvoiceStatus.Uncollectible, InvoiceTrigger.Void)] = InvoiceStatus.Void,
    };

    private static readonly Dictionary<InvoiceStatus, string> StateNames = new()
    {
        [InvoiceStatus.Draft] = "draft",
        [InvoiceStatus.Open] = "open",
        [InvoiceStatus.Paid] = "paid",
        [InvoiceStatus.Void] = "void",
        [InvoiceStatus.Uncollectible] = "uncollectible",
    };

    private static readonly Dictionary<InvoiceTrigger, string> TriggerNames = new()
    {
        [InvoiceTrigger.Finalize] = "finalize",
        [InvoiceTrigger.Pay] = "pay",
        [InvoiceTrigger.Void] = "void",
        [InvoiceTrigger.MarkUncollectible] = "mark_uncollectible",
    };

    private static readonly InvoiceStatus[] AllStates = Enum.GetValues<InvoiceStatus>();

    private static readonly InvoiceTrigger[] AllTriggers = Enum.GetValues<InvoiceTrigger>();

    public static TheoryData<InvoiceStatus> States => [.. AllStates];

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
        var actual = InvoiceStateMachine.Transitions.ToDictionary(t => (t.From, t.Trigger), t => t.To);

        Assert.Equal(InvoiceStateMachine.Transitions.Count, actual.Count);
        Assert.Equal(Expected.OrderBy(kv => kv.Key), actual.OrderBy(kv => kv.Key));
    }

    [Theory]
    [MemberData(nameof(States))]
    public void Every_trigger_either_leads_where_the_table_says_or_throws_a_descriptive_exception(InvoiceStatus state)
    {
        var expectedAllowed = AllTriggers.Where(t => Expected.ContainsKey((state, t))).ToArray();
        Assert.Equal(expectedAllowed, InvoiceStateMachine.AllowedTriggers(state));

        foreach (var trigger in AllTriggers)
        {
            var legal = Expected.TryGetValue((state, trigger), out var target);
            Assert.Equal(legal, InvoiceStateMachine.CanFire(state, trigger));
            if (legal)
            {
                Assert.Equal(target, InvoiceStateMachine.Next(state, trigger));
                continue;
            }

            var ex = Assert.Throws<InvalidStateTransitionException>(() => InvoiceStateMachine.Next(state, trigger));
            Assert.Equal("invoice", ex.ObjectType);
            Assert.Equal(StateNames[state], ex.State);
            Assert.Equal(TriggerNames[trigger], ex.Trigger);
            Assert.Equal(expectedAllowed.Select(t => TriggerNames[t]), ex.AllowedTriggers);
            Assert.Contains("invoice", ex.Message, StringComparison.Ordinal);
            Assert.Contains($"'{StateNames[state]}'", ex.Message, StringComparison.Ordinal);
            Assert.Contains($"'{TriggerNames[trigger]}'", ex.Message, StringComparison.Ordinal);
            if (expectedAllowed.Length == 0)
            {
                Assert.Contains("nothing (final state)", ex.Message, StringComparison.Ordinal);
            }
            else
            {
                Assert.DoesNotContain("final state", ex.Message, StringComparison.Ordinal);
                Assert.All(expectedAllowed, t => Assert.Contains(TriggerNames[t], ex.Message, StringComparison.Ordinal));
            }
        }
    }

    [Theory]
    [InlineData(InvoiceStatus.Paid)]
    [InlineData(InvoiceStatus.Void)]
    public void Paid_and_void_are_final(InvoiceStatus state)
    {
        Assert.Empty(InvoiceStateMachine.AllowedTriggers(state));
        Assert.All(AllTriggers, t => Assert.False(InvoiceStateMachine.CanFire(state, t)));

        var ex = Assert.Throws<InvalidStateTransitionException>(() => InvoiceStateMachine.Next(state, InvoiceTrigger.Pay));
        Assert.Empty(ex.AllowedTriggers);
        Assert.Contains($"in state '{StateNames[state]}' cannot take 'pay'.", ex.Message, StringComparison.Ordinal);
        Assert.EndsWith($"Allowed in '{StateNames[state]}': nothing (final state).", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_paid_and_void_are_final()
    {
        var final = AllStates.Where(s => InvoiceStateMachine.AllowedTriggers(s).Count == 0);

        Assert.Equal([InvoiceStatus.Paid, InvoiceStatus.Void], final);
    }

    [Fact]
    public void A_draft_must_be_finalized_before_it_can_be_paid()
    {
        var ex = Assert.Throws<InvalidStateTransitionException>(() => InvoiceStateMachine.Next(InvoiceStatus.Draft, InvoiceTrigger.Pay));

        Assert.Equal("draft", ex.State);
        Assert.Equal("pay", ex.Trigger);
        Assert.Equal(["finalize"], ex.AllowedTriggers);
    }

    [Fact]
    public void An_uncollectible_invoice_can_still_be_paid_or_voided_but_not_finalized_again()
    {
        Assert.Equal(InvoiceStatus.Paid, InvoiceStateMachine.Next(InvoiceStatus.Uncollectible, InvoiceTrigger.Pay));
        Assert.Equal(InvoiceStatus.Void, InvoiceStateMachine.Next(InvoiceStatus.Uncollectible, InvoiceTrigger.Void));

        var ex = Assert.Throws<InvalidStateTransitionException>(() => InvoiceStateMachine.Next(InvoiceStatus.Uncollectible, InvoiceTrigger.MarkUncollectible));
        Assert.Equal("uncollectible", ex.State);
        Assert.Equal("mark_uncollectible", ex.Trigger);
        Assert.Equal(["pay", "void"], ex.AllowedTriggers);
    }

    [Fact]
    public void Every_path_from_draft_ends_in_a_final_state()
    {
        // The graph is acyclic: a depth-first walk from draft terminates and every leaf is paid or void.
        var leaves = new List<InvoiceStatus>();
        Visit(InvoiceStatus.Draft, depth: 0, leaves);

        Assert.Equal([InvoiceStatus.Paid, InvoiceStatus.Void], leaves.Distinct().Order());
    }

    private static void Visit(InvoiceStatus state, int depth, List<InvoiceStatus> leaves)
    {
        Assert.True(depth <= AllStates.Length, $"cycle through {state}");
        var allowed = InvoiceStateMachine.AllowedTriggers(state);
        if (allowed.Count == 0)
        {
            leaves.Add(state);
            return;
        }

        foreach (var trigger in allowed)
        {
            Visit(InvoiceStateMachine.Next(state, trigger), depth + 1, leaves);
        }
    }
}
