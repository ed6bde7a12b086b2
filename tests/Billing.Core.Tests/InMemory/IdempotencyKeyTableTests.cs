using Billing.InMemory;
using Billing.Tests.Support;
using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.InMemory;

/// <summary>
/// <see cref="IdempotencyKeyTable"/> answers like a reference dictionary: for any sequence of adds, re-arms, puts,
/// expiries and sweeps (with colliding hash codes, equal keys that are different string instances and clocks that go
/// back and forth), every key is found with exactly the model's expiry and total, and the table holds exactly the
/// model's entries. The model drops the entries expired at a sweep's clock when the table sweeps: on
/// <see cref="IdempotencyKeyTable.Sweep"/>, and on an add into a full table.
/// </summary>
public sealed class IdempotencyKeyTableTests
{
    private const int Keys = 48;

    public enum OpKind
    {
        Record,
        Put,
        Expire,
        Sweep,
    }

    /// <summary>One operation on key <paramref name="Key"/> (a fresh string instance when <paramref name="Copy"/>) at a clock.</summary>
    public sealed record Op(OpKind Kind, int Key, bool Copy, long Now, long Window, long Total, long Token);

    private static readonly string[] Pool = [.. Enumerable.Range(0, Keys).Select(i => $"key_{i}")];

    [Fact]
    public void For_any_operations_the_table_answers_like_a_dictionary_with_colliding_hashes() =>
        Props.ForAll(Sequences(), ops => Check(ops, key => int.Parse(key.AsSpan(4), System.Globalization.CultureInfo.InvariantCulture) % 5, capacity: 0), 500);

    [Fact]
    public void For_any_operations_the_table_answers_like_a_dictionary_with_real_hashes() =>
        Props.ForAll(Sequences(), ops => Check(ops, IdempotencyKeyTable.HashOf, capacity: 20), 500);

    [Fact]
    public void For_any_operations_on_a_monotonic_clock_live_keys_are_exactly_the_models_unexpired_ones()
    {
        // The counter's common case: the clock only moves forward and the model never forgets anything; the table
        // may drop an entry only once it has expired, so the live view is identical.
        var gen = from ops in Sequences()
                  select ops.Select((op, i) => op with { Now = i * 7L, Kind = op.Kind == OpKind.Sweep ? OpKind.Record : op.Kind }).ToArray();
        Props.ForAll(gen, ops =>
        {
            var table = new IdempotencyKeyTable(0);
            var model = new Dictionary<string, (long Expiry, long Total, long Token)>(StringComparer.Ordinal);
            foreach (var op in ops)
            {
                var key = Key(op);
                var hash = IdempotencyKeyTable.HashOf(key);
                var i = table.Find(key, hash);
                var live = i >= 0 && table.ExpiresAtTicks(i) > op.Now;
                var modelLive = model.TryGetValue(key, out var m) && m.Expiry > op.Now;
                Assert.Equal(modelLive, live);
                if (live)
                {
                    Assert.Equal((m.Total, m.Token), (table.Total(i), table.Token(i)));
                    continue;
                }

                var expiry = op.Now + op.Window;
                model[key] = (expiry, op.Total, op.Token);
                if (i >= 0)
                {
                    table.Set(i, expiry, op.Total, op.Token);
                }
                else
                {
                    table.Add(key, hash, expiry, op.Total, op.Token, op.Now);
                }
            }
        });
    }

    [Fact]
    public void The_table_grows_past_its_capacity_and_shrinks_back_when_keys_expire()
    {
        var table = new IdempotencyKeyTable(16);
        for (var i = 0; i < 1000; i++)
        {
            var key = $"k{i}";
            table.Add(key, IdempotencyKeyTable.HashOf(key), 100, i, -i, long.MinValue);
        }

        Assert.Equal(1000, table.Count);
        Assert.Equal(1024, table.Capacity);
        for (var i = 0; i < 1000; i++)
        {
            var key = $"k{i}";
            var index = table.Find(key, IdempotencyKeyTable.HashOf(key));
            Assert.Equal(i, table.Total(index));
            Assert.Equal(-i, table.Token(index));
        }

        table.Sweep(100);
        Assert.Equal(0, table.Count);
        Assert.Equal(16, table.Capacity);
        Assert.Equal(-1, table.Find("k1", IdempotencyKeyTable.HashOf("k1")));
    }

    [Fact]
    public void A_capacity_hint_takes_no_memory_up_front_and_is_a_floor_once_reached()
    {
        var table = new IdempotencyKeyTable(64);
        Assert.Equal(16, table.Capacity);
        for (var i = 0; i < 100; i++)
        {
            var key = $"k{i}";
            table.Add(key, IdempotencyKeyTable.HashOf(key), 100, i, i, long.MinValue);
        }

        Assert.Equal(128, table.Capacity);
        table.Sweep(100);
        Assert.Equal(0, table.Count);
        Assert.Equal(64, table.Capacity);
    }

    [Fact]
    public void A_counter_with_the_largest_hint_allocates_per_key_not_per_hint()
    {
        var counter = new InMemoryUsageCounter(expectedKeysPerCustomer: 1 << 20);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var c = 0; c < 20; c++)
        {
            counter.Record(new Billing.Usage.UsageCounterEvent
            {
                Counter = new Billing.Usage.UsageCounterKey($"cus_{c}", "api_calls", start),
                Aggregation = Billing.Usage.MeterAggregation.Sum,
                Quantity = 1,
                IdempotencyKey = "evt_1",
                Timestamp = start,
                Now = start,
                DedupWindow = TimeSpan.FromDays(35),
            });
        }

        // 20 customers with one key each: a few KB each; the hint's tables would be about 40 MB each.
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 1 << 20);
    }

    private static Gen<Op[]> Sequences()
    {
        var op = from kind in Gen.Frequency((8, Gen.Constant(OpKind.Record)), (2, Gen.Constant(OpKind.Put)), (1, Gen.Constant(OpKind.Expire)), (1, Gen.Constant(OpKind.Sweep)))
                 from key in Gen.Choose(0, Keys - 1)
                 from copy in Gen.Elements(false, true)
                 from now in Gens.Long(0, 200)
                 from window in Gen.Frequency((1, Gen.Constant(0L)), (6, Gens.Long(1, 100)))
                 from total in Gens.Long(0, 1_000_000)
                 from token in Gens.Long(long.MinValue, long.MaxValue)
                 select new Op(kind, key, copy, now, window, total, token);
        return from count in Gen.Choose(1, 300) from ops in Gen.ArrayOf(op, count) select ops;
    }

    private static string Key(Op op) => op.Copy ? new string(Pool[op.Key].AsSpan()) : Pool[op.Key];

    private static void Check(Op[] ops, Func<string, int> hashOf, int capacity)
    {
        var table = new IdempotencyKeyTable(capacity);
        var model = new Dictionary<string, (long Expiry, long Total, long Token)>(StringComparer.Ordinal);
        foreach (var op in ops)
        {
            var key = Key(op);
            var hash = hashOf(key);
            switch (op.Kind)
            {
                case OpKind.Record:
                    var i = table.Find(key, hash);
                    Assert.Equal(model.ContainsKey(key), i >= 0);
                    if (i >= 0)
                    {
                        table.Set(i, op.Now + op.Window, op.Total, op.Token);
                    }
                    else
                    {
                        if (table.Count == table.Capacity)
                        {
                            Sweep(model, op.Now);
                        }

                        table.Add(key, hash, op.Now + op.Window, op.Total, op.Token, op.Now);
                    }

                    model[key] = (op.Now + op.Window, op.Total, op.Token);
                    break;
                case OpKind.Put when hashOf == IdempotencyKeyTable.HashOf:
                    table.Put(key, op.Now + op.Window, op.Total, op.Token);
                    model[key] = (op.Now + op.Window, op.Total, op.Token);
                    break;
                case OpKind.Expire:
                    var e = table.Find(key, hash);
                    if (e >= 0)
                    {
                        table.Set(e, 0, 0, 0);
                        model[key] = (0, 0, 0);
                    }

                    break;
                case OpKind.Sweep:
                    table.Sweep(op.Now);
                    Sweep(model, op.Now);
                    break;
            }

            Assert.Equal(model.Count, table.Count);
            Assert.True(table.Count <= table.Capacity);
            foreach (var k in Pool)
            {
                var index = table.Find(k, hashOf(k));
                Assert.Equal(model.TryGetValue(k, out var m), index >= 0);
                if (index >= 0)
                {
                    Assert.Equal(m, (table.ExpiresAtTicks(index), table.Total(index), table.Token(index)));
                }
            }
        }
    }

    private static void Sweep(Dictionary<string, (long Expiry, long Total, long Token)> model, long now)
    {
        foreach (var (key, entry) in model)
        {
            if (entry.Expiry <= now)
            {
                model.Remove(key);
            }
        }
    }
}
