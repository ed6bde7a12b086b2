using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using Billing.EntityFrameworkCore.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>
/// Writes a session's rows on PostgreSQL as one <see cref="NpgsqlBatch"/>: one round trip, atomic by itself.
/// </summary>
/// <remarks>
/// <para>
/// Without an open transaction, PostgreSQL runs the statements of a batch (one Sync message) as one implicit
/// transaction: either all of them commit or none does, so a renewal's invoice, subscription update and outbox rows
/// need no BEGIN or COMMIT round trip. With a transaction already open (a number taken, work claimed) the batch runs
/// inside it and the session commits it.
/// </para>
/// <para>
/// Optimistic concurrency stays exact: an update matches the row's id and the version the session read, and
/// <c>expect_current_version</c> (migration 4) raises SQLSTATE 40001 unless exactly one row matched, which aborts the
/// batch before anything commits and surfaces as <see cref="ConcurrencyConflictException"/>. Statements are the
/// same text every time with positional parameters, so Npgsql's automatic preparation applies and nothing is parsed
/// on the client. Parameters are built by the model's own type mappings, so values are written exactly as EF Core
/// writes them.
/// </para>
/// </remarks>
internal sealed class PostgreSqlWriter
{
    private static readonly NpgsqlCommand ParameterFactory = new();

    private PostgreSqlWriter(IModel model, string schema)
    {
        Customers = new Table<CustomerRow>(model, schema, "customer");
        Plans = new Table<PlanRow>(model, schema, "plan");
        Subscriptions = new Table<SubscriptionRow>(model, schema, "subscription");
        Invoices = new Table<InvoiceRow>(model, schema, "invoice");
        Lines = new Table<InvoiceLineRow>(model, schema, "invoice");
        Payments = new Table<PaymentRow>(model, schema, "payment");
        Clocks = new Table<TestClockRow>(model, schema, "test_clock");
        Events = new Table<OutboxEventRow>(model, schema, "event");
        Records = new Table<IdempotencyRecordRow>(model, schema, "idempotency_record");
        DeleteLines = $"DELETE FROM {schema}.invoice_lines WHERE invoice_id = $1";
    }

    public Table<CustomerRow> Customers { get; }

    public Table<PlanRow> Plans { get; }

    public Table<SubscriptionRow> Subscriptions { get; }

    public Table<InvoiceRow> Invoices { get; }

    public Table<InvoiceLineRow> Lines { get; }

    public Table<PaymentRow> Payments { get; }

    public Table<TestClockRow> Clocks { get; }

    public Table<OutboxEventRow> Events { get; }

    public Table<IdempotencyRecordRow> Records { get; }

    public string DeleteLines { get; }

    /// <summary>The message of <c>expect_current_version</c> (migration 4) for a row.</summary>
    public static string StaleWriteMessage(string objectType, string id, long expectedVersion) =>
        string.Create(CultureInfo.InvariantCulture, $"stale write: {objectType} {id} is no longer at version {expectedVersion}");

    /// <summary>The writer of a store's model (built once per store).</summary>
    public static PostgreSqlWriter For(DbContext context, string schema) => new(context.Model, schema);

    /// <summary>The statements of one table: an insert of every column but generated ones, and a version-checked update.</summary>
    internal sealed class Table<TRow>
        where TRow : class
    {
        private readonly Column[] _insert;
        private readonly Column[] _set;
        private readonly Column? _id;
        private readonly Column? _version;

        public Table(IModel model, string schema, string objectType)
        {
            var entity = model.FindEntityType(typeof(TRow)) ?? throw new InvalidOperationException($"{typeof(TRow).Name} is not in the model.");
            var table = $"{schema}.{entity.GetTableName()}";
            var store = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());
            var columns = entity.GetProperties()
                .Where(p => p.PropertyInfo is not null)
                .Select(p => new Column(p.GetColumnName(store)!, p.GetRelationalTypeMapping(), p.IsNullable, Getter(p.PropertyInfo!), p.ValueGenerated == ValueGenerated.OnAdd))
                .ToArray();
            ObjectType = objectType;
            _insert = [.. columns.Where(c => !c.Generated)];
            InsertSql = $"INSERT INTO {table} ({string.Join(", ", _insert.Select(c => c.Name))}) VALUES ({string.Join(", ", _insert.Select((_, i) => $"${i + 1}"))})";
            _id = columns.FirstOrDefault(c => c.Name == "id");
            _version = columns.FirstOrDefault(c => c.Name == "version");
            if (_id is not null && _version is not null)
            {
                _set = [.. columns.Where(c => c != _id && c != _version && !c.Generated)];
                var assignments = string.Join(", ", _set.Select((c, i) => $"{c.Name} = ${i + 1}"));
                int versionAt = _set.Length + 1, idAt = _set.Length + 2, readAt = _set.Length + 3;
                UpdateSql = $"""
                    WITH u AS (UPDATE {table} SET {assignments}, version = ${versionAt} WHERE id = ${idAt} AND version = ${readAt} RETURNING 1)
                    SELECT {schema}.expect_current_version((SELECT count(*) FROM u), '{objectType}', ${idAt}, ${readAt})
                    """;
            }
            else
            {
                _set = [];
            }
        }

        /// <summary>The object type named in errors about this table's rows.</summary>
        public string ObjectType { get; }

        public string InsertSql { get; }

        public string? UpdateSql { get; }

        /// <summary>An insert of <paramref name="row"/>.</summary>
        public NpgsqlBatchCommand Insert(TRow row)
        {
            var command = new NpgsqlBatchCommand(InsertSql);
            foreach (var column in _insert)
            {
                // A new row starts at version 1, whatever the record says.
                command.Parameters.Add(column == _version ? column.Value(1L) : column.Parameter(row));
            }

            return command;
        }

        /// <summary>An update of <paramref name="row"/> from version <paramref name="readVersion"/> to the next one.</summary>
        public NpgsqlBatchCommand Update(TRow row, long readVersion)
        {
            var command = new NpgsqlBatchCommand(UpdateSql ?? throw new InvalidOperationException($"{typeof(TRow).Name} rows are not updated."));
            foreach (var column in _set)
            {
                command.Parameters.Add(column.Parameter(row));
            }

            command.Parameters.Add(_version!.Value(checked(readVersion + 1)));
            command.Parameters.Add(_id!.Parameter(row));
            command.Parameters.Add(_version.Value(readVersion));
            return command;
        }

        /// <summary>The id of <paramref name="row"/> as errors name it.</summary>
        public string IdOf(TRow row) => _id is null ? "?" : Convert.ToString(_id.Get(row), CultureInfo.InvariantCulture) ?? "?";

        private static Func<object, object?> Getter(PropertyInfo property)
        {
            var instance = Expression.Parameter(typeof(object), "row");
            var body = Expression.Convert(Expression.Property(Expression.Convert(instance, typeof(TRow)), property), typeof(object));
            return Expression.Lambda<Func<object, object?>>(body, instance).Compile();
        }
    }

    /// <summary>A mapped column: its name, the model's type mapping and a compiled getter.</summary>
    private sealed record Column(string Name, RelationalTypeMapping Mapping, bool Nullable, Func<object, object?> Get, bool Generated)
    {
        public NpgsqlParameter Parameter(object row) => Value(Get(row));

        public NpgsqlParameter Value(object? value) =>
            (NpgsqlParameter)Mapping.CreateParameter(ParameterFactory, string.Empty, value, Nullable);
    }
}
