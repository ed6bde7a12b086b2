using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>
/// Turns provider errors into the engine's exceptions: unique violations into <see cref="DuplicateKeyException"/>,
/// stale versions and lock conflicts into <see cref="ConcurrencyConflictException"/>, rejected values (CHECK, NOT
/// NULL, too long, out of range) into <see cref="BillingValidationException"/> naming the field.
/// </summary>
internal static partial class DatabaseErrors
{
    private static readonly Dictionary<string, string> ObjectTypes = new(StringComparer.Ordinal)
    {
        ["customers"] = "customer",
        ["plans"] = "plan",
        ["subscriptions"] = "subscription",
        ["invoices"] = "invoice",
        ["invoice_lines"] = "invoice",
        ["payments"] = "payment",
        ["test_clocks"] = "test_clock",
        ["outbox_events"] = "event",
        ["idempotency_records"] = "idempotency_record",
        ["invoice_number_sequences"] = "invoice_number_sequence",
    };

    // Unique keys by constraint (PostgreSQL) or by table and columns (SQLite): (table, key name).
    private static readonly Dictionary<string, (string Table, string Key)> UniqueKeys = new(StringComparer.Ordinal)
    {
        ["pk_customers"] = ("customers", "id"),
        ["pk_plans"] = ("plans", "id"),
        ["pk_subscriptions"] = ("subscriptions", "id"),
        ["pk_invoices"] = ("invoices", "id"),
        ["pk_invoice_lines"] = ("invoice_lines", "line"),
        ["pk_payments"] = ("payments", "id"),
        ["pk_test_clocks"] = ("test_clocks", "id"),
        ["pk_idempotency_records"] = ("idempotency_records", "scope_key"),
        ["ux_invoices_dedup_key"] = ("invoices", "dedup_key"),
        ["ux_invoices_subscription_period"] = ("invoices", "subscription_period"),
        ["ux_invoices_number"] = ("invoices", "number"),
        ["ux_payments_idempotency_key"] = ("payments", "idempotency_key"),
        ["ux_outbox_events_event_id"] = ("outbox_events", "id"),
        ["customers.id"] = ("customers", "id"),
        ["plans.id"] = ("plans", "id"),
        ["subscriptions.id"] = ("subscriptions", "id"),
        ["invoices.id"] = ("invoices", "id"),
        ["invoice_lines.invoice_id, invoice_lines.line_no"] = ("invoice_lines", "line"),
        ["payments.id"] = ("payments", "id"),
        ["test_clocks.id"] = ("test_clocks", "id"),
        ["idempotency_records.scope, idempotency_records.key"] = ("idempotency_records", "scope_key"),
        ["invoices.dedup_key"] = ("invoices", "dedup_key"),
        ["invoices.subscription_id, invoices.period_start"] = ("invoices", "subscription_period"),
        ["invoices.number"] = ("invoices", "number"),
        ["payments.idempotency_key"] = ("payments", "idempotency_key"),
        ["outbox_events.event_id"] = ("outbox_events", "id"),
    };

    /// <summary>The engine's exception for a provider error, or null when it is not one we translate.</summary>
    public static Exception? Translate(Exception error)
    {
        switch (error)
        {
            case DbUpdateConcurrencyException concurrency:
                var entry = concurrency.Entries.Count > 0 ? concurrency.Entries[0] : null;
                var table = entry?.Metadata.GetTableName() ?? "record";
                var id = entry?.Metadata.FindPrimaryKey()?.Properties.Select(p => entry.Property(p.Name).CurrentValue?.ToString()).FirstOrDefault() ?? "?";
                var expected = entry?.Metadata.FindProperty("Version") is not null && entry.Property("Version").OriginalValue is long v ? v : 0;
                return new ConcurrencyConflictException(ObjectTypes.GetValueOrDefault(table, table), id, expected);
            case DbUpdateException update when update.InnerException is { } inner:
                return FromProvider(inner, update) ?? null;
            default:
                return FromProvider(error, null);
        }
    }

    private static Exception? FromProvider(Exception error, DbUpdateException? update) => error switch
    {
        PostgresException pg => pg.SqlState switch
        {
            PostgresErrorCodes.UniqueViolation => Duplicate(pg.ConstraintName ?? "", KeyFromDetail(pg.Detail) ?? KeyOf(update), error),
            PostgresErrorCodes.CheckViolation => Invalid(FieldOf(pg.ConstraintName, pg.TableName), $"The value of {FieldOf(pg.ConstraintName, pg.TableName)} is not allowed ({pg.ConstraintName}).", error),
            PostgresErrorCodes.NotNullViolation => Invalid(pg.ColumnName ?? "record", $"{pg.ColumnName} is required.", error),
            PostgresErrorCodes.StringDataRightTruncation or PostgresErrorCodes.NumericValueOutOfRange or PostgresErrorCodes.InvalidTextRepresentation or PostgresErrorCodes.CharacterNotInRepertoire or PostgresErrorCodes.UntranslatableCharacter
                => Invalid(pg.ColumnName ?? "record", $"The database rejected a value: {pg.MessageText}", error),
            PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.LockNotAvailable
                => new ConcurrencyConflictException(ObjectTypes.GetValueOrDefault(pg.TableName ?? "", "record"), "?", 0),
            _ => null,
        },
        SqliteException lite when lite.SqliteErrorCode == 19 => lite.SqliteExtendedErrorCode switch
        {
            2067 or 1555 => SqliteUnique(lite.Message, update, error),
            275 => CheckFromSqlite(lite.Message, error),
            1299 => Invalid(NotNullColumn(lite.Message), $"The database rejected a value: {lite.Message}", error),
            _ => null,
        },
        SqliteException { SqliteErrorCode: 5 or 6 } busy => new ConcurrencyConflictException("record", "?", 0), // SQLITE_BUSY / LOCKED after the timeout
        _ => null,
    };

    private static DuplicateKeyException Duplicate(string constraintOrColumns, string key, Exception cause)
    {
        var (table, keyName) = UniqueKeys.TryGetValue(constraintOrColumns, out var k) ? k : ("record", constraintOrColumns);
        return new DuplicateKeyException(ObjectTypes.GetValueOrDefault(table, table), keyName, key);
    }

    private static DuplicateKeyException SqliteUnique(string message, DbUpdateException? update, Exception cause)
    {
        var match = SqliteConstraintPattern().Match(message);
        return Duplicate(match.Success ? match.Groups[1].Value.Trim() : "", KeyOf(update), cause);
    }

    private static BillingValidationException CheckFromSqlite(string message, Exception cause)
    {
        var match = SqliteConstraintPattern().Match(message);
        var constraint = match.Success ? match.Groups[1].Value.Trim() : null;
        var field = FieldOf(constraint, null);
        return Invalid(field, $"The value of {field} is not allowed ({constraint}).", cause);
    }

    private static string NotNullColumn(string message)
    {
        var match = SqliteConstraintPattern().Match(message);
        return match.Success ? match.Groups[1].Value.Trim().Split('.').Last() : "record";
    }

    private static BillingValidationException Invalid(string field, string message, Exception cause) =>
        new(field, message);

    /// <summary>ck_invoices_amount_paid → amount_paid (the constraint names the table and the field).</summary>
    private static string FieldOf(string? constraint, string? table)
    {
        if (string.IsNullOrEmpty(constraint) || !constraint.StartsWith("ck_", StringComparison.Ordinal))
        {
            return constraint ?? "record";
        }

        foreach (var known in ObjectTypes.Keys.OrderByDescending(k => k.Length))
        {
            if (constraint.StartsWith($"ck_{known}_", StringComparison.Ordinal))
            {
                return constraint[(known.Length + 4)..];
            }
        }

        return table is not null && constraint.StartsWith($"ck_{table}_", StringComparison.Ordinal) ? constraint[(table.Length + 4)..] : constraint[3..];
    }

    private static string? KeyFromDetail(string? detail)
    {
        // "Key (dedup_key)=(dk_1) already exists." (only when the connection includes error detail)
        var match = detail is null ? Match.Empty : PostgresKeyPattern().Match(detail);
        return match.Success ? match.Groups[1].Value : null;
    }

    private static string KeyOf(DbUpdateException? update) =>
        update?.Entries is [var single] ? string.Join("/", single.Metadata.FindPrimaryKey()?.Properties.Select(p => single.Property(p.Name).CurrentValue) ?? []) : "?";

    [GeneratedRegex(@"constraint failed: ([^']+?)(?:'|\.?$)")]
    private static partial Regex SqliteConstraintPattern();

    [GeneratedRegex(@"Key \([^)]*\)=\((.*)\) already exists")]
    private static partial Regex PostgresKeyPattern();
}
