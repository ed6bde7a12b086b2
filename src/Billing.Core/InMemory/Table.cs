namespace Billing.InMemory;

/// <summary>Committed rows of one kind with their unique indexes. Guarded by the store's lock.</summary>
internal sealed class Table<T>
    where T : class
{
    private readonly Func<T, string> _id;
    private readonly Func<T, long> _version;
    private readonly Func<T, long, T> _withVersion;
    private readonly (string Name, Func<T, string?> Key)[] _uniques;
    private readonly Dictionary<string, T> _rows = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string>[] _indexes;
    private readonly Func<T, DateTimeOffset?>? _due;
    private readonly Func<T, string?>? _clock;
    private readonly Dictionary<string, SortedSet<(long Ticks, string Id)>> _dueIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _claims = new(StringComparer.Ordinal);

    public Table(string objectType, Func<T, string> id, Func<T, long> version, Func<T, long, T> withVersion, params (string Name, Func<T, string?> Key)[] uniques)
        : this(objectType, id, version, withVersion, null, null, uniques)
    {
    }

    /// <summary>A table with a due-time index per clock (rows whose due time is null are not indexed).</summary>
    public Table(string objectType, Func<T, string> id, Func<T, long> version, Func<T, long, T> withVersion, Func<T, DateTimeOffset?>? due, Func<T, string?>? clock, params (string Name, Func<T, string?> Key)[] uniques)
    {
        _due = due;
        _clock = clock;
        ObjectType = objectType;
        _id = id;
        _version = version;
        _withVersion = withVersion;
        _uniques = uniques;
        _indexes = [.. uniques.Select(_ => new Dictionary<string, string>(StringComparer.Ordinal))];
    }

    public string ObjectType { get; }

    public IEnumerable<T> Rows => _rows.Values;

    public int Count => _rows.Count;

    public string IdOf(T row) => _id(row);

    public T? Get(string id) => _rows.GetValueOrDefault(id);

    /// <summary>Committed rows due at or before <paramref name="now"/> on a clock, earliest first (ties by id).</summary>
    public IEnumerable<T> Due(DateTimeOffset now, string? clock, DateTimeOffset? unclaimedAt = null)
    {
        if (!_dueIndex.TryGetValue(clock ?? string.Empty, out var index))
        {
            yield break;
        }

        foreach (var (ticks, id) in index)
        {
            if (ticks > now.UtcTicks)
            {
                yield break;
            }

            if (unclaimedAt is { } at && _claims.TryGetValue(id, out var until) && until > at)
            {
                continue;
            }

            yield return _rows[id];
        }
    }

    /// <summary>Claims a row until the given time; an update of the row clears the claim.</summary>
    public void Claim(string id, DateTimeOffset until) => _claims[id] = until;

    public T? GetByUnique(int index, string key) =>
        _indexes[index].TryGetValue(key, out var id) ? _rows[id] : null;

    /// <summary>Throws if applying these changes would break a rule; changes nothing.</summary>
    public void Validate(IReadOnlyCollection<Pending<T>> changes)
    {
        if (changes.Count == 0)
        {
            return;
        }

        var newKeys = _uniques.Select(_ => new HashSet<string>(StringComparer.Ordinal)).ToArray();
        foreach (var change in changes)
        {
            var id = _id(change.Value);
            if (change.IsNew)
            {
                if (_rows.ContainsKey(id))
                {
                    throw new DuplicateKeyException(ObjectType, "id", id);
                }
            }
            else if (!_rows.TryGetValue(id, out var current) || _version(current) != change.ReadVersion)
            {
                throw new ConcurrencyConflictException(ObjectType, id, change.ReadVersion);
            }

            for (var i = 0; i < _uniques.Length; i++)
            {
                var key = _uniques[i].Key(change.Value);
                if (key is null)
                {
                    continue;
                }

                if ((_indexes[i].TryGetValue(key, out var owner) && owner != id) || !newKeys[i].Add(key))
                {
                    throw new DuplicateKeyException(ObjectType, _uniques[i].Name, key);
                }
            }
        }
    }

    /// <summary>Applies validated changes; the store sets versions (1 on add, +1 on update).</summary>
    public void Apply(IReadOnlyCollection<Pending<T>> changes)
    {
        foreach (var change in changes)
        {
            var id = _id(change.Value);
            _claims.Remove(id);
            if (_rows.TryGetValue(id, out var old))
            {
                Unindex(old, id);
                for (var i = 0; i < _uniques.Length; i++)
                {
                    if (_uniques[i].Key(old) is { } oldKey)
                    {
                        _indexes[i].Remove(oldKey);
                    }
                }
            }

            var stored = _withVersion(change.Value, change.IsNew ? 1 : change.ReadVersion + 1);
            _rows[id] = stored;
            Index(stored, id);
            for (var i = 0; i < _uniques.Length; i++)
            {
                if (_uniques[i].Key(stored) is { } key)
                {
                    _indexes[i][key] = id;
                }
            }
        }
    }

    private void Index(T row, string id)
    {
        if (_due?.Invoke(row) is not { } due)
        {
            return;
        }

        var key = _clock?.Invoke(row) ?? string.Empty;
        if (!_dueIndex.TryGetValue(key, out var index))
        {
            _dueIndex[key] = index = new SortedSet<(long, string)>(DueOrder.Instance);
        }

        index.Add((due.UtcTicks, id));
    }

    private void Unindex(T row, string id)
    {
        if (_due?.Invoke(row) is { } due && _dueIndex.TryGetValue(_clock?.Invoke(row) ?? string.Empty, out var index))
        {
            index.Remove((due.UtcTicks, id));
        }
    }
}

/// <summary>Orders (due ticks, id) pairs: time first, then id by ordinal.</summary>
internal sealed class DueOrder : IComparer<(long Ticks, string Id)>
{
    public static readonly DueOrder Instance = new();

    public int Compare((long Ticks, string Id) x, (long Ticks, string Id) y)
    {
        var byTime = x.Ticks.CompareTo(y.Ticks);
        return byTime != 0 ? byTime : string.CompareOrdinal(x.Id, y.Id);
    }
}

/// <summary>A buffered write: the new value, whether it is an insert, and the version it was read at.</summary>
internal readonly record struct Pending<T>(T Value, bool IsNew, long ReadVersion);
