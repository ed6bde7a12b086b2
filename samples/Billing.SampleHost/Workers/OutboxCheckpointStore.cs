using System.Data.Common;
using System.Globalization;
using Billing.SampleHost.Data;

namespace Billing.SampleHost.Workers;

/// <summary>
/// The outbox dispatcher's checkpoint in the host's own table <c>host_outbox_checkpoints</c> (in the billing schema on
/// PostgreSQL), created by <see cref="EnsureSchemaAsync"/> at start: one row per dispatcher name holding the last
/// dispatched outbox position.
/// </summary>
/// <remarks>
/// On PostgreSQL a batch claims the row with <c>SELECT … FOR UPDATE SKIP LOCKED</c> in a transaction that stays open
/// while the batch is dispatched and commits with the new position, so with several host instances exactly one
/// dispatches a given position and the others skip (nothing waits on the lock). SQLite is the single-instance
/// embedded default: the row is read and written without holding a lock across the batch (that would block every
/// writer of the database).
/// </remarks>
internal sealed class OutboxCheckpointStore(HostDatabase database)
{
    public const string DefaultName = "default";

    private string T => database.Table("host_outbox_checkpoints");

    public async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (database.IsPostgreSql)
        {
            // Two hosts starting together must not race on CREATE TABLE.
            await Execute(connection, tx, "SELECT pg_advisory_xact_lock(7244110554)", cancellationToken).ConfigureAwait(false);
        }

        await Execute(connection, tx, $"""
            CREATE TABLE IF NOT EXISTS {T} (
                name TEXT NOT NULL PRIMARY KEY,
                position BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """, cancellationToken).ConfigureAwait(false);
        await Execute(connection, tx, $"INSERT INTO {T} (name, position, updated_at) VALUES ('{DefaultName}', 0, 0) ON CONFLICT (name) DO NOTHING", cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a checkpoint without claiming it.</summary>
    public async Task<long> GetAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.Command($"SELECT position FROM {T} WHERE name = @name", ("name", name));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) ?? 0L, CultureInfo.InvariantCulture);
    }

    /// <summary>Claims the checkpoint for one batch; null when another instance holds it.</summary>
    public async Task<CheckpointClaim?> ClaimAsync(string name, CancellationToken cancellationToken)
    {
        var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        DbTransaction? tx = null;
        try
        {
            if (database.IsPostgreSql)
            {
                tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            }

            var sql = database.IsPostgreSql
                ? $"SELECT position FROM {T} WHERE name = @name FOR UPDATE SKIP LOCKED"
                : $"SELECT position FROM {T} WHERE name = @name";
            await using var command = connection.Command(sql, ("name", name));
            command.Transaction = tx;
            var position = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            if (position is null or DBNull)
            {
                await Release(connection, tx).ConfigureAwait(false);
                return null;
            }

            return new CheckpointClaim(name, Convert.ToInt64(position, CultureInfo.InvariantCulture), connection, tx, T);
        }
        catch
        {
            await Release(connection, tx).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task Release(DbConnection connection, DbTransaction? tx)
    {
        if (tx is not null)
        {
            await tx.DisposeAsync().ConfigureAwait(false);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private static async Task Execute(DbConnection connection, DbTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.Command(sql);
        command.Transaction = tx;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>A claimed checkpoint: <see cref="Position"/> is the last dispatched position. <see cref="CompleteAsync"/>
/// stores the new position and releases the claim; disposing without it releases the claim unchanged.</summary>
internal sealed class CheckpointClaim(string name, long position, DbConnection connection, DbTransaction? tx, string table) : IAsyncDisposable
{
    private bool _done;

    public long Position { get; } = position;

    public async Task CompleteAsync(long newPosition, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        await using (var command = connection.Command($"UPDATE {table} SET position = @position, updated_at = @now WHERE name = @name", ("position", newPosition), ("now", now.ToUnixTimeMilliseconds()), ("name", name)))
        {
            command.Transaction = tx;
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (tx is not null)
        {
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_done)
        {
            return;
        }

        _done = true;
        if (tx is not null)
        {
            await tx.DisposeAsync().ConfigureAwait(false);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }
}
