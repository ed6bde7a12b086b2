using Billing.EntityFrameworkCore.Model;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>The few statements EF Core cannot express, per provider, with the schema filled in once.</summary>
internal sealed class SqlDialect
{
    private SqlDialect(BillingDatabaseProvider provider, string? schema)
    {
        Provider = provider;
        Schema = schema;
        var p = provider == BillingDatabaseProvider.PostgreSql ? $"{schema}." : string.Empty;
        var skipLocked = provider == BillingDatabaseProvider.PostgreSql ? " FOR UPDATE SKIP LOCKED" : string.Empty;

        // Claims: the due rows nobody holds, earliest first; PostgreSQL skips rows another run is claiming right now.
        string Claim(string table, bool clock) => $"""
            UPDATE {p}{table} SET claim_expires_at = @until
            WHERE id IN (
                SELECT id FROM {p}{table}
                WHERE next_action_at IS NOT NULL AND next_action_at <= @now AND {(clock ? "test_clock_id = @clock" : "test_clock_id IS NULL")}
                  AND (claim_expires_at IS NULL OR claim_expires_at <= @lease_start)
                ORDER BY next_action_at, id
                LIMIT @limit{skipLocked})
            RETURNING *
            """;
        ClaimSubscriptions = Claim("subscriptions", clock: false);
        ClaimSubscriptionsOnClock = Claim("subscriptions", clock: true);
        ClaimInvoices = Claim("invoices", clock: false);
        ClaimInvoicesOnClock = Claim("invoices", clock: true);

        NextNumber = $"""
            INSERT INTO {p}invoice_number_sequences AS s (sequence, last_number) VALUES (@sequence, 1)
            ON CONFLICT (sequence) DO UPDATE SET last_number = s.last_number + 1
            RETURNING last_number
            """;

        DeleteInvoiceLines = $"DELETE FROM {p}invoice_lines WHERE invoice_id = @id";

        // Publishing gives committed, unpublished outbox rows the next positions, in id order. PostgreSQL takes a
        // transaction-scoped advisory lock so that publishers run one at a time. SQLite publishes on insert (a trigger).
        var publish = $"""
            UPDATE {p}outbox_events SET position = n.position
            FROM (
                SELECT u.id, (SELECT COALESCE(MAX(position), 0) FROM {p}outbox_events) + ROW_NUMBER() OVER (ORDER BY u.id) AS position
                FROM (SELECT id FROM {p}outbox_events WHERE position IS NULL ORDER BY id LIMIT 10000) u) AS n
            WHERE {p}outbox_events.id = n.id
            """;
        PublishOutbox = provider == BillingDatabaseProvider.PostgreSql ? $"SELECT pg_advisory_xact_lock({OutboxLockKey(schema!)});\n{publish}" : null;
        HasUnpublished = $"SELECT EXISTS (SELECT 1 FROM {p}outbox_events WHERE position IS NULL)";
    }

    public BillingDatabaseProvider Provider { get; }

    public string? Schema { get; }

    public bool IsPostgreSql => Provider == BillingDatabaseProvider.PostgreSql;

    public string ClaimSubscriptions { get; }

    public string ClaimSubscriptionsOnClock { get; }

    public string ClaimInvoices { get; }

    public string ClaimInvoicesOnClock { get; }

    public string NextNumber { get; }

    public string DeleteInvoiceLines { get; }

    /// <summary>Null on SQLite, where rows are published as they are inserted.</summary>
    public string? PublishOutbox { get; }

    public string HasUnpublished { get; }

    public static SqlDialect For(BillingDatabaseProvider provider, string? schema) =>
        new(provider, provider == BillingDatabaseProvider.PostgreSql ? SchemaName.Validate(schema ?? BillingModelBuilderExtensions.DefaultSchema) : null);

    /// <summary>A stable 63-bit key per schema and purpose for <c>pg_advisory_xact_lock</c> (FNV-1a).</summary>
    public static long LockKey(string purpose, string schema)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in $"billing:{purpose}:{schema}")
        {
            hash = unchecked((hash ^ c) * 1099511628211UL);
        }

        return (long)(hash >> 1);
    }

    private static long OutboxLockKey(string schema) => LockKey("outbox", schema);
}
