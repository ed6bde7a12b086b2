namespace Billing.Ports;

/// <summary>
/// One page of a list: at most the requested number of items, newest first, and whether more items follow.
/// </summary>
/// <typeparam name="T">The listed record.</typeparam>
/// <param name="Items">The items, newest first (by creation time, ties by id, both descending).</param>
/// <param name="HasMore">Whether at least one more item follows the last one.</param>
public sealed record ListPage<T>(IReadOnlyList<T> Items, bool HasMore);

/// <summary>
/// Which page of a newest-first list to read: at most <see cref="Limit"/> items after the cursor
/// <see cref="StartingAfter"/> (the id of the last item of the previous page; null for the first page).
/// </summary>
/// <remarks>
/// Lists are ordered by creation time, newest first, ties broken by id (ordinal, descending), so the order is total
/// and stable: walking the pages from the first until <see cref="ListPage{T}.HasMore"/> is false yields every item
/// that existed throughout the walk exactly once. The cursor is a position, not a filter: it must name an existing
/// record of the listed kind, but it may be one that the list's filters leave out.
/// </remarks>
public sealed record PageRequest
{
    /// <summary>The default page size (20).</summary>
    public const int DefaultLimit = 20;

    /// <summary>The largest page size (100).</summary>
    public const int MaxLimit = 100;

    /// <summary>At most this many items, 1 to <see cref="MaxLimit"/>.</summary>
    public int Limit { get; init; } = DefaultLimit;

    /// <summary>The id of the item the page starts after, or null for the first page.</summary>
    public string? StartingAfter { get; init; }

    /// <summary>Throws <see cref="BillingValidationException"/> (field <c>limit</c> or <c>starting_after</c>) when the
    /// request is out of range.</summary>
    /// <exception cref="BillingValidationException">The limit is not 1 to 100, or the cursor is empty.</exception>
    public void Validate()
    {
        if (Limit is < 1 or > MaxLimit)
        {
            throw new BillingValidationException("limit", $"The limit must be 1 to {MaxLimit}.");
        }

        if (StartingAfter is { Length: 0 })
        {
            throw new BillingValidationException("starting_after", "The cursor must be an id, or null for the first page.");
        }
    }
}

/// <summary>
/// The newest-first order of lists (creation time descending, then id descending by ordinal comparison) and the page
/// cut, shared by the store adapters so every store pages exactly alike.
/// </summary>
public static class NewestFirst
{
    /// <summary>Compares two items in list order: negative when <paramref name="x"/> comes first.</summary>
    /// <param name="x">The first item's (creation time, id).</param>
    /// <param name="y">The second item's (creation time, id).</param>
    /// <returns>Negative, zero or positive.</returns>
    public static int Compare((DateTimeOffset CreatedAt, string Id) x, (DateTimeOffset CreatedAt, string Id) y)
    {
        var byTime = y.CreatedAt.UtcTicks.CompareTo(x.CreatedAt.UtcTicks);
        return byTime != 0 ? byTime : string.CompareOrdinal(y.Id, x.Id);
    }

    /// <summary>
    /// Cuts a page out of candidates: keeps those after the cursor, orders them newest first and takes at most
    /// <paramref name="limit"/>, noting whether more remain.
    /// </summary>
    /// <typeparam name="T">The record.</typeparam>
    /// <param name="candidates">Every item that may be on the page (items before the cursor are dropped; ids must be distinct).</param>
    /// <param name="key">An item's (creation time, id).</param>
    /// <param name="limit">The page size (at least 1).</param>
    /// <param name="after">The cursor item's (creation time, id), or null for the first page.</param>
    /// <returns>The page.</returns>
    /// <remarks>
    /// A store that reads candidates from a database reads, after the cursor and in list order,
    /// <c>limit + 1</c> rows plus one per pending write of the session that may displace a row, so that the
    /// page and <see cref="ListPage{T}.HasMore"/> are exact after its pending writes are overlaid.
    /// </remarks>
    public static ListPage<T> Page<T>(IEnumerable<T> candidates, Func<T, (DateTimeOffset CreatedAt, string Id)> key, int limit, (DateTimeOffset CreatedAt, string Id)? after)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var sorted = candidates
            .Select(item => (Item: item, Key: key(item)))
            .Where(x => after is not { } cursor || Compare(x.Key, cursor) > 0)
            .ToList();
        sorted.Sort((a, b) => Compare(a.Key, b.Key));
        var hasMore = sorted.Count > limit;
        return new ListPage<T>([.. sorted.Take(limit).Select(x => x.Item)], hasMore);
    }
}
