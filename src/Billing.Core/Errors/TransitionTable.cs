using System.Collections.Frozen;

namespace Billing;

/// <summary>One table of transitions <c>(from, trigger) → to</c>; anything not in it is illegal.</summary>
internal sealed class TransitionTable<TState, TTrigger>
    where TState : struct, Enum
    where TTrigger : struct, Enum
{
    private readonly string _objectType;
    private readonly FrozenDictionary<(TState, TTrigger), TState> _next;

    public TransitionTable(string objectType, IEnumerable<(TState From, TTrigger Trigger, TState To)> transitions)
    {
        _objectType = objectType;
        _next = transitions.ToFrozenDictionary(t => (t.From, t.Trigger), t => t.To);
    }

    public IEnumerable<(TState From, TTrigger Trigger, TState To)> Transitions =>
        _next.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value));

    public bool CanFire(TState from, TTrigger trigger) => _next.ContainsKey((from, trigger));

    public TState Fire(TState from, TTrigger trigger) =>
        _next.TryGetValue((from, trigger), out var to)
            ? to
            : throw new InvalidStateTransitionException(_objectType, Name(from), Name(trigger), [.. Allowed(from).Select(Name)]);

    public IEnumerable<TTrigger> Allowed(TState from) =>
        Enum.GetValues<TTrigger>().Where(t => _next.ContainsKey((from, t)));

    private static string Name<T>(T value)
        where T : struct, Enum => Naming.SnakeCase(value.ToString());
}

/// <summary>Names as the API shows them (<c>PastDue</c> → <c>past_due</c>).</summary>
internal static class Naming
{
    public static string SnakeCase(string pascal)
    {
        var builder = new System.Text.StringBuilder(pascal.Length + 4);
        for (var i = 0; i < pascal.Length; i++)
        {
            var c = pascal[i];
            if (char.IsUpper(c))
            {
                if (i > 0)
                {
                    builder.Append('_');
                }

                builder.Append(char.ToLowerInvariant(c));
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
