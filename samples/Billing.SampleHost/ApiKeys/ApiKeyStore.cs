using System.Collections.Concurrent;
using System.Data.Common;
using Billing.SampleHost.Composition;
using Billing.SampleHost.Data;

namespace Billing.SampleHost.ApiKeys;

/// <summary>
/// API keys in the host's own table <c>host_api_keys</c> (in the billing schema on PostgreSQL), created by
/// <see cref="EnsureSchemaAsync"/> at start: not a library migration. Instants are Unix milliseconds.
/// </summary>
/// <remarks>
/// <para>Authentication (<see cref="AuthenticateAsync"/>) reuses a key row it read for
/// <see cref="ApiKeySettings.CacheDuration"/> (default one second), so a busy instance reads each key about once a
/// second instead of once a request. The secret is still hashed and compared with the stored hash in constant time on
/// every request; only existing rows are kept (an unknown prefix goes to the database every time, so a new key works
/// at once); concurrent misses of one key share one read.</para>
/// <para>Bounds: an expiry is checked against the clock on every request (immediate). A revocation through this
/// instance (<see cref="RevokeAsync"/>) drops the key's row and any read in flight, so this instance refuses the key
/// from the next request on. A revocation through another instance, or in the database, is seen here at most
/// <see cref="ApiKeySettings.CacheDuration"/> after it committed.</para>
/// <para>The last-used time is written at most once a minute per key and instance (<see cref="TouchIfDueAsync"/>):
/// one request claims the write, concurrent ones do not repeat it.</para>
/// </remarks>
internal sealed class ApiKeyStore(HostDatabase database, TimeProvider time, ApiKeySettings settings)
{
    private const string Columns = "id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at, last_used_at";
    private static readonly TimeSpan TouchInterval = TimeSpan.FromMinutes(1);

    /// <summary>Rows read for authentication, by prefix, with the time of their read.</summary>
    private readonly ConcurrentDictionary<string, CachedKey> _cache = new(StringComparer.Ordinal);

    /// <summary>Reads in flight, by prefix: concurrent misses wait for the same read.</summary>
    private readonly ConcurrentDictionary<string, Lazy<Task<StoredKey?>>> _reads = new(StringComparer.Ordinal);

    /// <summary>Per key id: the Unix millisecond before which this instance does not write the last-used time again.</summary>
    private readonly ConcurrentDictionary<string, long> _nextTouch = new(StringComparer.Ordinal);

    /// <summary>Bumped by every revocation through this instance: a read that began before it is not kept.</summary>
    private long _generation;

    private string T => database.Table("host_api_keys");

    public async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (database.IsPostgreSql)
        {
            // Two hosts starting together must not race on CREATE TABLE.
            await Execute(connection, tx, "SELECT pg_advisory_xact_lock(7244110553)", cancellationToken).ConfigureAwait(false);
        }

        await Execute(connection, tx, $"""
            CREATE TABLE IF NOT EXISTS {T} (
                id TEXT NOT NULL PRIMARY KEY,
                name TEXT NOT NULL,
                prefix TEXT NOT NULL UNIQUE,
                secret_hash TEXT NOT NULL,
                scopes TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NULL,
                revoked_at BIGINT NULL,
                last_used_at BIGINT NULL
            )
            """, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<ApiKey> CreateAsync(string secret, string name, IReadOnlyList<string> scopes, DateTimeOffset now, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        var key = new ApiKey
        {
            Id = ApiKeySecrets.NewId(),
            Name = name,
            Prefix = ApiKeySecrets.PrefixOf(secret),
            Scopes = scopes,
            CreatedAt = Truncate(now),
            ExpiresAt = expiresAt is { } expires ? Truncate(expires) : null,
        };
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await connection.ExecuteAsync(
                $"INSERT INTO {T} (id, name, prefix, secret_hash, scopes, created_at, expires_at) VALUES (@id, @name, @prefix, @hash, @scopes, @created, @expires)",
                cancellationToken,
                ("id", key.Id),
                ("name", name),
                ("prefix", key.Prefix),
                ("hash", ApiKeySecrets.Hash(secret)),
                ("scopes", string.Join(' ', scopes)),
                ("created", key.CreatedAt.ToUnixTimeMilliseconds()),
                ("expires", key.ExpiresAt?.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        }
        catch (DbException e) when (IsUniqueViolation(e))
        {
            throw new DuplicateKeyException("api_key", "prefix", key.Prefix);
        }

        return key;
    }

    /// <summary>Finds the key a secret belongs to (by its prefix, then a constant-time hash comparison), reading the
    /// database.</summary>
    public async Task<ApiKey?> FindBySecretAsync(string secret, CancellationToken cancellationToken)
    {
        if (!ApiKeySecrets.IsWellFormed(secret))
        {
            return null;
        }

        var stored = await ReadByPrefixAsync(ApiKeySecrets.PrefixOf(secret), cancellationToken).ConfigureAwait(false);
        return stored is not null && ApiKeySecrets.Matches(secret, stored.Hash) ? stored.Key : null;
    }

    /// <summary>
    /// Finds the key a secret belongs to for authentication: like <see cref="FindBySecretAsync"/>, but a row read
    /// less than <see cref="ApiKeySettings.CacheDuration"/> ago is reused (see the remarks of the class). The caller
    /// checks revocation and expiry on the returned key.
    /// </summary>
    public async ValueTask<ApiKey?> AuthenticateAsync(string secret, CancellationToken cancellationToken)
    {
        if (!ApiKeySecrets.IsWellFormed(secret))
        {
            return null;
        }

        var prefix = ApiKeySecrets.PrefixOf(secret);
        StoredKey? stored;
        if (settings.CacheDuration <= TimeSpan.Zero)
        {
            stored = await ReadByPrefixAsync(prefix, cancellationToken).ConfigureAwait(false);
        }
        else if (_cache.TryGetValue(prefix, out var cached) && time.GetUtcNow() - cached.ReadAt is var age && age >= TimeSpan.Zero && age < settings.CacheDuration)
        {
            stored = cached.Stored;
        }
        else
        {
            Lazy<Task<StoredKey?>>? mine = null;
            mine = new Lazy<Task<StoredKey?>>(() => ReadForCacheAsync(prefix, mine!));
            stored = await _reads.GetOrAdd(prefix, mine).Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return stored is not null && ApiKeySecrets.Matches(secret, stored.Hash) ? stored.Key : null;
    }

    /// <summary>
    /// Writes the key's last-used time when it is unset or a minute old and no other request of this instance wrote
    /// it in the last minute; otherwise does nothing.
    /// </summary>
    public async Task TouchIfDueAsync(ApiKey key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.LastUsedAt is { } last && now - last < TouchInterval)
        {
            return;
        }

        var nowMs = now.ToUnixTimeMilliseconds();
        var claimedUntil = nowMs + (long)TouchInterval.TotalMilliseconds;
        while (true)
        {
            if (_nextTouch.TryGetValue(key.Id, out var next))
            {
                if (nowMs < next)
                {
                    return; // another request of this instance wrote it (or is writing it) within the minute
                }

                if (_nextTouch.TryUpdate(key.Id, claimedUntil, next))
                {
                    break;
                }
            }
            else if (_nextTouch.TryAdd(key.Id, claimedUntil))
            {
                break;
            }
        }

        try
        {
            await TouchAsync(key.Id, now, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The write did not happen: let the next request try it.
            _nextTouch.TryUpdate(key.Id, 0, claimedUntil);
            throw;
        }
    }

    public async Task<ApiKey?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.Command($"SELECT {Columns} FROM {T} WHERE id = @id", ("id", id));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    public async Task<long> CountAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.Command($"SELECT COUNT(*) FROM {T}");
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Newest first; <paramref name="startingAfter"/> must be an existing key id.</summary>
    public async Task<(IReadOnlyList<ApiKey> Keys, bool HasMore)> ListAsync(int limit, string? startingAfter, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var sql = startingAfter is null
            ? $"SELECT {Columns} FROM {T} ORDER BY created_at DESC, id DESC LIMIT @take"
            : $"SELECT {Columns} FROM {T} WHERE created_at < (SELECT created_at FROM {T} WHERE id = @after) OR (created_at = (SELECT created_at FROM {T} WHERE id = @after) AND id < @after) ORDER BY created_at DESC, id DESC LIMIT @take";
        await using var command = startingAfter is null
            ? connection.Command(sql, ("take", limit + 1))
            : connection.Command(sql, ("take", limit + 1), ("after", startingAfter));
        var keys = new List<ApiKey>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            keys.Add(Read(reader));
        }

        var hasMore = keys.Count > limit;
        return (hasMore ? keys[..limit] : keys, hasMore);
    }

    /// <summary>Revokes a key; false when it was revoked already (nothing changes then). Either way this instance
    /// forgets what it read of the key, so its next authentication reads the row.</summary>
    public async Task<bool> RevokeAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
            return await connection.ExecuteAsync($"UPDATE {T} SET revoked_at = @now WHERE id = @id AND revoked_at IS NULL", cancellationToken, ("now", now.ToUnixTimeMilliseconds()), ("id", id)).ConfigureAwait(false) == 1;
        }
        finally
        {
            Forget(id);
        }
    }

    private async Task TouchAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync($"UPDATE {T} SET last_used_at = @now WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @now)", cancellationToken, ("now", now.ToUnixTimeMilliseconds()), ("id", id)).ConfigureAwait(false);
    }

    /// <summary>Drops the cached row of key <paramref name="id"/> and every read in flight (which may have begun before
    /// the change that calls this).</summary>
    private void Forget(string id)
    {
        Interlocked.Increment(ref _generation);
        _reads.Clear();
        foreach (var (prefix, cached) in _cache)
        {
            if (string.Equals(cached.Stored.Key.Id, id, StringComparison.Ordinal))
            {
                _cache.TryRemove(new KeyValuePair<string, CachedKey>(prefix, cached));
            }
        }
    }

    /// <summary>The shared read behind <see cref="AuthenticateAsync"/>: not cancelled by any one request, kept in the
    /// cache unless a revocation through this instance happened meanwhile.</summary>
    private async Task<StoredKey?> ReadForCacheAsync(string prefix, Lazy<Task<StoredKey?>> self)
    {
        var generation = Interlocked.Read(ref _generation);
        var readAt = time.GetUtcNow();
        try
        {
            var stored = await ReadByPrefixAsync(prefix, CancellationToken.None).ConfigureAwait(false);
            if (stored is null)
            {
                _cache.TryRemove(prefix, out _);
                return null;
            }

            var entry = new CachedKey(stored, readAt);
            _cache[prefix] = entry;
            if (Interlocked.Read(ref _generation) != generation)
            {
                // A revocation ran while this read was in flight: the row may predate it, so it is not kept.
                _cache.TryRemove(new KeyValuePair<string, CachedKey>(prefix, entry));
            }

            return stored;
        }
        finally
        {
            // Only this read (a later one for the same prefix may have replaced it after a revocation).
            _reads.TryRemove(new KeyValuePair<string, Lazy<Task<StoredKey?>>>(prefix, self));
        }
    }

    private async Task<StoredKey?> ReadByPrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.Command($"SELECT {Columns} FROM {T} WHERE prefix = @prefix", ("prefix", prefix));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? new StoredKey(Read(reader), reader.GetString(3)) : null;
    }

    private static ApiKey Read(DbDataReader reader) => new()
    {
        Id = reader.GetString(0),
        Name = reader.GetString(1),
        Prefix = reader.GetString(2),
        Scopes = reader.GetString(4).Split(' ', StringSplitOptions.RemoveEmptyEntries),
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)),
        ExpiresAt = reader.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(6)),
        RevokedAt = reader.IsDBNull(7) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7)),
        LastUsedAt = reader.IsDBNull(8) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(8)),
    };

    private static DateTimeOffset Truncate(DateTimeOffset value) => DateTimeOffset.FromUnixTimeMilliseconds(value.ToUnixTimeMilliseconds());

    private static bool IsUniqueViolation(DbException e) => e.SqlState == "23505" || (e is Microsoft.Data.Sqlite.SqliteException s && s.SqliteErrorCode == 19);

    private static async Task Execute(DbConnection connection, DbTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.Command(sql);
        command.Transaction = tx;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>A key row with its secret hash.</summary>
internal sealed record StoredKey(ApiKey Key, string Hash);

/// <summary>A key row kept for authentication, with the time of its read (it counts as stale if the clock is set back
/// before that time).</summary>
internal sealed record CachedKey(StoredKey Stored, DateTimeOffset ReadAt);
