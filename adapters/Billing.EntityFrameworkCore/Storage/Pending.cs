namespace Billing.EntityFrameworkCore.Storage;

/// <summary>A session's buffered writes of one aggregate type, read back by the session before commit.</summary>
/// <typeparam name="T">The domain record.</typeparam>
internal sealed class PendingWrites<T>
    where T : class
{
    private readonly string _objectType;
    private readonly Func<T, string> _id;
    private Dictionary<string, PendingWrite<T>>? _changes;

    public PendingWrites(string objectType, Func<T, string> id)
    {
        _objectType = objectType;
        _id = id;
    }

    public bool IsEmpty => _changes is null || _changes.Count == 0;

    public int Count => _changes?.Count ?? 0;

    public IEnumerable<PendingWrite<T>> Changes => _changes?.Values ?? Enumerable.Empty<PendingWrite<T>>();

    public bool TryGet(string id, out T? value)
    {
        if (_changes is not null && _changes.TryGetValue(id, out var pending))
        {
            value = pending.Value;
            return true;
        }

        value = null;
        return false;
    }

    public bool Contains(string id) => _changes is not null && _changes.ContainsKey(id);

    public void Add(T value, long version)
    {
        ArgumentNullException.ThrowIfNull(value);
        var id = _id(value);
        _changes ??= new Dictionary<string, PendingWrite<T>>(StringComparer.Ordinal);
        if (_changes.ContainsKey(id))
        {
            throw new DuplicateKeyException(_objectType, "id", id);
        }

        _ = version; // whatever version is passed, a new record is stored at version 1
        _changes[id] = new PendingWrite<T>(value, IsNew: true, ReadVersion: 0);
    }

    public void Update(T value, long readVersion)
    {
        ArgumentNullException.ThrowIfNull(value);
        var id = _id(value);
        _changes ??= new Dictionary<string, PendingWrite<T>>(StringComparer.Ordinal);
        _changes[id] = _changes.TryGetValue(id, out var earlier)
            ? earlier with { Value = value }
            : new PendingWrite<T>(value, IsNew: false, ReadVersion: readVersion);
    }

    /// <summary>Committed rows overlaid with this session's writes: changed rows replaced, matching new rows added.</summary>
    public List<T> Overlay(IEnumerable<T> committed, Func<T, bool> matches)
    {
        var result = new List<T>();
        foreach (var row in committed)
        {
            if (!Contains(_id(row)))
            {
                result.Add(row);
            }
        }

        foreach (var change in Changes)
        {
            if (matches(change.Value))
            {
                result.Add(change.Value);
            }
        }

        return result;
    }
}

internal readonly record struct PendingWrite<T>(T Value, bool IsNew, long ReadVersion);
