using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Billing.EntityFrameworkCore.Model;

/// <summary>The database engines the billing tables are mapped for.</summary>
public enum BillingDatabaseProvider
{
    /// <summary>PostgreSQL through Npgsql: the production store; many processes may share it.</summary>
    PostgreSql,

    /// <summary>SQLite (Microsoft.Data.Sqlite): the embedded, single-process default.</summary>
    Sqlite,
}

/// <summary>Maps the billing tables into an EF Core model: the adapter's own context, or a host's.</summary>
public static class BillingModelBuilderExtensions
{
    /// <summary>The default PostgreSQL schema of the billing tables.</summary>
    public const string DefaultSchema = "billing";

    /// <summary>
    /// Adds the billing tables (snake_case, in <paramref name="schema"/> on PostgreSQL) to a model, for use inside
    /// a host's own <see cref="DbContext"/>: call it from <c>OnModelCreating</c> with the context's
    /// <c>Database</c>.
    /// </summary>
    /// <remarks>
    /// The tables themselves are created by <see cref="Migrations.BillingMigrator"/> (checked-in SQL scripts), not by
    /// EF Core migrations: do not let a host's migrations create or alter them. SQLite has no schemas, so
    /// <paramref name="schema"/> is ignored there. Instants are <c>timestamptz</c> on PostgreSQL (UTC, microsecond
    /// precision) and UTC ticks on SQLite; nested values are <c>jsonb</c> on PostgreSQL and JSON text on SQLite.
    /// </remarks>
    /// <param name="modelBuilder">The model builder.</param>
    /// <param name="database">The context's database facade, to tell the provider.</param>
    /// <param name="schema">The PostgreSQL schema; null for <see cref="DefaultSchema"/>.</param>
    /// <returns>The model builder.</returns>
    public static ModelBuilder ApplyBillingConfiguration(this ModelBuilder modelBuilder, DatabaseFacade database, string? schema = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        return modelBuilder.ApplyBillingConfiguration(ProviderOf(database), schema);
    }

    /// <summary>Adds the billing tables to a model for the given provider (see the other overload).</summary>
    /// <param name="modelBuilder">The model builder.</param>
    /// <param name="provider">The database provider.</param>
    /// <param name="schema">The PostgreSQL schema; null for <see cref="DefaultSchema"/>.</param>
    /// <returns>The model builder.</returns>
    public static ModelBuilder ApplyBillingConfiguration(this ModelBuilder modelBuilder, BillingDatabaseProvider provider, string? schema = null)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        var pg = provider == BillingDatabaseProvider.PostgreSql;
        var s = pg ? SchemaName.Validate(schema ?? DefaultSchema) : null;

        Table<CustomerRow>(modelBuilder, "customers", s, pg, e => e.HasKey(r => r.Id), "TaxRates", "Metadata");
        Table<PlanRow>(modelBuilder, "plans", s, pg, e => e.HasKey(r => r.Id), "Price", "Metadata", "MeteredPrices", "Entitlements");
        Table<SubscriptionRow>(modelBuilder, "subscriptions", s, pg, e => e.HasKey(r => r.Id), "PendingChange", "PendingLines", "Discount");
        Table<InvoiceRow>(modelBuilder, "invoices", s, pg, e =>
        {
            e.HasKey(r => r.Id);
            e.HasMany(r => r.Lines).WithOne().HasForeignKey(l => l.InvoiceId).OnDelete(DeleteBehavior.Cascade);
            e.Navigation(r => r.Lines).AutoInclude(false);
        }, "Dunning", "Coupon");
        Table<InvoiceLineRow>(modelBuilder, "invoice_lines", s, pg, e => e.HasKey(r => new { r.InvoiceId, r.LineNo }), "Proration", "TaxRate", "Breakdown");
        Table<PaymentRow>(modelBuilder, "payments", s, pg, e => e.HasKey(r => r.Id), "Result");
        Table<TestClockRow>(modelBuilder, "test_clocks", s, pg, e => e.HasKey(r => r.Id));
        Table<OutboxEventRow>(modelBuilder, "outbox_events", s, pg, e =>
        {
            e.HasKey(r => r.Id);
            e.Property(r => r.Id).ValueGeneratedOnAdd();
        }, "Data");
        Table<IdempotencyRecordRow>(modelBuilder, "idempotency_records", s, pg, e => e.HasKey(r => new { r.Scope, r.Key }));
        Table<UsageEventRow>(modelBuilder, "usage_events", s, pg, e => e.HasKey(r => new { r.CustomerId, r.IdempotencyKey }), "Properties");
        Table<UsageCounterRow>(modelBuilder, "usage_counters", s, pg, e => e.HasKey(r => new { r.CustomerId, r.MeterKey, r.PeriodStart }));

        foreach (var type in new[] { typeof(CustomerRow), typeof(PlanRow), typeof(SubscriptionRow), typeof(InvoiceRow), typeof(PaymentRow), typeof(TestClockRow) })
        {
            modelBuilder.Entity(type).Property(nameof(CustomerRow.Version)).IsConcurrencyToken();
        }

        modelBuilder.Entity<SubscriptionRow>().Property(r => r.AnchorLocal).HasColumnType(pg ? "timestamp without time zone" : "INTEGER");
        return modelBuilder;
    }

    internal static BillingDatabaseProvider ProviderOf(DatabaseFacade database) =>
        database.ProviderName switch
        {
            "Npgsql.EntityFrameworkCore.PostgreSQL" => BillingDatabaseProvider.PostgreSql,
            "Microsoft.EntityFrameworkCore.Sqlite" => BillingDatabaseProvider.Sqlite,
            var other => throw new NotSupportedException($"The billing tables are mapped for PostgreSQL (Npgsql) and SQLite; this context uses '{other}'."),
        };

    private static void Table<T>(ModelBuilder modelBuilder, string table, string? schema, bool pg, Action<EntityTypeBuilder<T>> configure, params string[] jsonColumns)
        where T : class
    {
        var entity = modelBuilder.Entity<T>();
        entity.ToTable(table, schema);
        configure(entity);
        foreach (var property in entity.Metadata.GetDeclaredProperties())
        {
            property.SetColumnName(Snake(property.Name));
            var clr = Nullable.GetUnderlyingType(property.ClrType) ?? property.ClrType;
            if (!pg && clr == typeof(DateTimeOffset))
            {
                property.SetValueConverter(property.ClrType == typeof(DateTimeOffset) ? UtcTicks : NullableUtcTicks);
                property.SetColumnType("INTEGER");
            }
            else if (!pg && clr == typeof(DateTime))
            {
                property.SetValueConverter(LocalTicks);
                property.SetColumnType("INTEGER");
            }
        }

        foreach (var json in jsonColumns)
        {
            entity.Property(json).HasColumnType(pg ? "jsonb" : "TEXT");
        }
    }

    private static readonly ValueConverter<DateTimeOffset, long> UtcTicks =
        new(v => v.UtcTicks, v => new DateTimeOffset(v, TimeSpan.Zero));

    private static readonly ValueConverter<DateTimeOffset?, long?> NullableUtcTicks =
        new(v => v.HasValue ? v.Value.UtcTicks : null, v => v.HasValue ? new DateTimeOffset(v.Value, TimeSpan.Zero) : null);

    private static readonly ValueConverter<DateTime, long> LocalTicks =
        new(v => v.Ticks, v => new DateTime(v, DateTimeKind.Unspecified));

    internal static string Snake(string name)
    {
        var sb = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c))
            {
                if (i > 0)
                {
                    sb.Append('_');
                }

                sb.Append(char.ToLowerInvariant(c));
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }
}

/// <summary>Validates schema names before they go into SQL text.</summary>
internal static class SchemaName
{
    public static string Validate(string schema)
    {
        if (schema.Length is 0 or > 63 || !(char.IsAsciiLetterLower(schema[0]) || schema[0] == '_') || !schema.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
        {
            throw new ArgumentException($"The schema name '{schema}' must be 1-63 characters of a-z, 0-9 and _, starting with a letter or _.", nameof(schema));
        }

        return schema;
    }
}
