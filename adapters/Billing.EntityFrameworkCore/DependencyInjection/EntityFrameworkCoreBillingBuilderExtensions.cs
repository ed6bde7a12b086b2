using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Storage;
using Billing.EntityFrameworkCore.Usage;
using Billing.InMemory;
using Billing.Ports;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.EntityFrameworkCore;

/// <summary>Registers the EF Core stores on a <see cref="BillingBuilder"/>.</summary>
public static class EntityFrameworkCoreBillingBuilderExtensions
{
    /// <summary>
    /// Stores billing data with EF Core: <c>.AddEntityFrameworkCore(o =&gt; o.UseNpgsql(cs))</c> or
    /// <c>.AddEntityFrameworkCore(o =&gt; o.UseSqlite(cs))</c>. Replaces the in-memory default store.
    /// </summary>
    /// <remarks>
    /// Registers <see cref="EntityFrameworkBillingStore"/> (as itself and as <see cref="IBillingStore"/>) and its
    /// <see cref="BillingMigrator"/>, both singletons. Apply migrations at start-up with
    /// <c>await services.GetRequiredService&lt;BillingMigrator&gt;().MigrateAsync()</c>; it is idempotent and safe
    /// to run from several processes at once on PostgreSQL.
    /// <para>
    /// Usage metering on the same database (when the options carry a connection string): registers
    /// <see cref="EntityFrameworkUsageEventStore"/> (as itself and as <see cref="IUsageEventStore"/>, replacing the
    /// in-memory default) and <see cref="EntityFrameworkUsageCounter"/> (as itself, and as
    /// <see cref="IUsageCounter"/> in place of the in-memory default <see cref="InMemoryUsageCounter"/>, whose totals
    /// would be per process and lost on restart). A counter registered otherwise is kept: a fast counter such as
    /// Redis (<c>AddRedisUsageCounters</c>, before or after this call) or an instance you registered.
    /// </para>
    /// </remarks>
    /// <param name="builder">The billing builder.</param>
    /// <param name="configure">Chooses and configures the provider.</param>
    /// <param name="schema">The PostgreSQL schema (default <c>billing</c>); ignored on SQLite.</param>
    /// <returns>The builder.</returns>
    public static BillingBuilder AddEntityFrameworkCore(this BillingBuilder builder, Action<DbContextOptionsBuilder> configure, string? schema = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new DbContextOptionsBuilder();
        configure(options);
        if (!options.IsConfigured)
        {
            throw new ArgumentException("Choose a database: call UseNpgsql(...) or UseSqlite(...) on the options builder.", nameof(configure));
        }

        var store = new EntityFrameworkBillingStore(options.Options, schema);
        builder.Services.Replace(ServiceDescriptor.Singleton(store));
        builder.Services.Replace(ServiceDescriptor.Singleton<IBillingStore>(store));
        builder.Services.Replace(ServiceDescriptor.Singleton(store.Migrator));
        if (UsageDatabase.TryFrom(options.Options, schema, store.Migrator) is { } usage)
        {
            var events = new EntityFrameworkUsageEventStore(usage);
            var counter = new EntityFrameworkUsageCounter(usage);
            builder.Services.Replace(ServiceDescriptor.Singleton(events));
            builder.Services.Replace(ServiceDescriptor.Singleton<IUsageEventStore>(events));
            builder.Services.Replace(ServiceDescriptor.Singleton(counter));
            var current = builder.Services.LastOrDefault(d => d.ServiceType == typeof(IUsageCounter));
            if (current is null || current.ImplementationType == typeof(InMemoryUsageCounter))
            {
                builder.Services.RemoveAll<IUsageCounter>();
                builder.Services.AddSingleton<IUsageCounter>(counter);
            }
        }

        return builder;
    }
}
