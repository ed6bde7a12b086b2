using System.Data.Common;
using Billing.SampleHost.Data;

namespace Billing.SampleHost.Idempotency;

/// <summary>What a first request with an <c>Idempotency-Key</c> answered: replayed as is to a retry.</summary>
internal sealed record StoredResponse(int Status, string? ContentType, string? Location, byte[] Body);

/// <summary>The state of an (API key, Idempotency-Key) pair when a request tried to claim it.</summary>
internal abstract record IdempotencyClaim
{
    /// <summary>The pair was free (or expired): this request runs and must complete or release it.</summary>
    public sealed record Claimed : IdempotencyClaim;

    /// <summary>Another request with the same key and body is still running.</summary>
    public sealed record InProgress : IdempotencyClaim;

    /// <summary>The key was used with another request (method, path or body).</summary>
    public sealed record Mismatch : IdempotencyClaim;

    /// <summary>The first request finished: replay its response.</summary>
    public sealed record Completed(StoredResponse Response) : IdempotencyClaim;
}

/// <summary>
/// Idempotency records in the host's own table <c>host_idempotency</c> (next to <c>host_api_keys</c>), created at
/// start. The library's <c>IIdempotencyStore</c> only adds and reads finished records: it cannot hold a
/// "still running" marker that is completed or released later, which concurrent duplicates need, so the host keeps
/// its own table. A row is claimed by its insert (the primary key makes one of two concurrent inserts fail), then
/// completed with the response, or deleted when the request failed with a server error (so a retry runs again).
/// Rows live 24 hours; a claim that was never completed (a crashed process) is taken over after
/// <see cref="AbandonedAfter"/>.
/// </summary>
internal sealed class IdempotencyStore(HostDatabase database)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(24);
    public static readonly TimeSpan AbandonedAfter = TimeSpan.FromMinutes(10);

    private string T => database.Table("host_idempotency");

    public async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (database.IsPostgreSql)
        {
            await Execute(connection, tx, "SELECT pg_advisory_xact_lock(7244110554)", cancellationToken).ConfigureAwait(false);
        }

        var blob = database.IsPostgreSql ? "BYTEA" : "BLOB";
        await Execute(connection, tx, $"""
            CREATE TABLE IF NOT EXISTS {T} (
                api_key_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                completed BIGINT NOT NULL,
                status BIGINT NULL,
                content_type TEXT NULL,
                location TEXT NULL,
                body {blob} NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (api_key_id, idempotency_key)
            )
            """, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Claims the pair for this request, or says why not.</summary>
    public async Task<IdempotencyClaim> ClaimAsync(string apiKeyId, string key, string requestHash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                await connection.ExecuteAsync(
                    $"INSERT INTO {T} (api_key_id, idempotency_key, request_hash, completed, created_at, expires_at) VALUES (@k, @i, @h, @zero, @now, @expires)",
                    cancellationToken,
                    ("k", apiKeyId),
                    ("i", key),
                    ("h", requestHash),
                    ("zero", 0L),
                    ("now", now.ToUnixTimeMilliseconds()),
                    ("expires", (now + Lifetime).ToUnixTimeMilliseconds())).ConfigureAwait(false);
                return new IdempotencyClaim.Claimed();
            }
            catch (DbException e) when (IsUniqueViolation(e))
            {
                // Someone has the pair: look at it below.
            }

            await using (var command = connection.Command(
                $"SELECT request_hash, completed, status, content_type, location, body, created_at, expires_at FROM {T} WHERE api_key_id = @k AND idempotency_key = @i",
                ("k", apiKeyId),
                ("i", key)))
            {
                await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var completed = reader.GetInt64(1) != 0;
                    var createdAt = reader.GetInt64(6);
                    var expiresAt = reader.GetInt64(7);
                    var stale = expiresAt <= now.ToUnixTimeMilliseconds() || (!completed && createdAt + (long)AbandonedAfter.TotalMilliseconds <= now.ToUnixTimeMilliseconds());
                    if (!stale)
                    {
                        if (!string.Equals(reader.GetString(0), requestHash, StringComparison.Ordinal))
                        {
                            return new IdempotencyClaim.Mismatch();
                        }

                        if (!completed)
                        {
                            return new IdempotencyClaim.InProgress();
                        }

                        return new IdempotencyClaim.Completed(new StoredResponse(
                            (int)reader.GetInt64(2),
                            reader.IsDBNull(3) ? null : reader.GetString(3),
                            reader.IsDBNull(4) ? null : reader.GetString(4),
                            (byte[])reader.GetValue(5)));
                    }
                }
                else
                {
                    // Deleted between our insert and read: try the insert again.
                    continue;
                }
            }

            // Expired or abandoned: forget it (only if it is still that row) and claim again.
            await connection.ExecuteAsync(
                $"DELETE FROM {T} WHERE api_key_id = @k AND idempotency_key = @i AND (expires_at <= @now OR (completed = 0 AND created_at <= @abandoned))",
                cancellationToken,
                ("k", apiKeyId),
                ("i", key),
                ("now", now.ToUnixTimeMilliseconds()),
                ("abandoned", (now - AbandonedAfter).ToUnixTimeMilliseconds())).ConfigureAwait(false);
        }

        return new IdempotencyClaim.InProgress();
    }

    public async Task CompleteAsync(string apiKeyId, string key, StoredResponse response, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(
            $"UPDATE {T} SET completed = @one, status = @status, content_type = @type, location = @location, body = @body WHERE api_key_id = @k AND idempotency_key = @i",
            cancellationToken,
            ("one", 1L),
            ("status", (long)response.Status),
            ("type", response.ContentType),
            ("location", response.Location),
            ("body", response.Body),
            ("k", apiKeyId),
            ("i", key)).ConfigureAwait(false);
    }

    /// <summary>Forgets an unfinished claim (the request failed without changing anything): a retry runs again.</summary>
    public async Task ReleaseAsync(string apiKeyId, string key, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync($"DELETE FROM {T} WHERE api_key_id = @k AND idempotency_key = @i AND completed = @zero", cancellationToken, ("k", apiKeyId), ("i", key), ("zero", 0L)).ConfigureAwait(false);
    }

    /// <summary>Deletes expired rows (a housekeeping step; expired rows are ignored anyway).</summary>
    public async Task<int> PurgeExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync($"DELETE FROM {T} WHERE expires_at <= @now", cancellationToken, ("now", now.ToUnixTimeMilliseconds())).ConfigureAwait(false);
    }

    private static bool IsUniqueViolation(DbException e) => e.SqlState == "23505" || (e is Microsoft.Data.Sqlite.SqliteException s && s.SqliteErrorCode == 19);

    private static async Task Execute(DbConnection connection, DbTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.Command(sql);
        command.Transaction = tx;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
