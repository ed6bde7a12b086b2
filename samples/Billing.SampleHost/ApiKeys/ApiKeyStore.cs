using System.Data.Common;
using Billing.SampleHost.Data;

namespace Billing.SampleHost.ApiKeys;

/// <summary>
/// API keys in the host's own table <c>host_api_keys</c> (in the billing schema on PostgreSQL), created by
/// <see cref="EnsureSchemaAsync"/> at start: not a library migration. Instants are Unix milliseconds. Every
/// authentication reads the row, so a revocation or an expiry takes effect on the next request.
/// </summary>
internal sealed class ApiKeyStore(HostDatabase database)
{
    private const string Columns = "id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at, last_used_at";

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

    /// <summary>Finds the key a secret belongs to (by its prefix, then a constant-time hash comparison).</summary>
    public async Task<ApiKey?> FindBySecretAsync(string secret, CancellationToken cancellationToken)
    {
        if (!ApiKeySecrets.IsWellFormed(secret))
        {
            return null;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.Command($"SELECT {Columns} FROM {T} WHERE prefix = @prefix", ("prefix", ApiKeySecrets.PrefixOf(secret)));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        var hash = reader.GetString(3);
        var key = Read(reader);
        return ApiKeySecrets.Matches(secret, hash) ? key : null;
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

    /// <summary>Revokes a key; false when it was revoked already (nothing changes then).</summary>
    public async Task<bool> RevokeAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync($"UPDATE {T} SET revoked_at = @now WHERE id = @id AND revoked_at IS NULL", cancellationToken, ("now", now.ToUnixTimeMilliseconds()), ("id", id)).ConfigureAwait(false) == 1;
    }

    public async Task TouchAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync($"UPDATE {T} SET last_used_at = @now WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @now)", cancellationToken, ("now", now.ToUnixTimeMilliseconds()), ("id", id)).ConfigureAwait(false);
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
