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

    public Table(string objectType, Func<T, string> id, Func<T, long> version, Func<T, long, T> withVersion, params (string Name, Func<T, string?> Key)[] uniques)
    {
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

    public T? GetByUnique(int index, string key) =>
        _indexes[index].TryGetValue(key, out var id) ? _rows[id] : null;

    /// <summary>Throws if applying these changes would break a rule; changes nothing.</summary>
    public void Validate(IReadOnlyCollection<Pending<T>> changes)
    {
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
            if (_rows.TryGetValue(id, out var old))
            {
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
            for (var i = 0; i < _uniques.Length; i++)
            {
                if (_uniques[i].Key(stored) is { } key)
                {
                    _indexes[i][key] = id;
                }
            }
        }
    }
}

/// <summary>A buffered write: the new value, whether it is an insert, and the version it was read at.</summary>
internal readonly record struct Pending<T>(T Value, bool IsNew, long ReadVersion);
