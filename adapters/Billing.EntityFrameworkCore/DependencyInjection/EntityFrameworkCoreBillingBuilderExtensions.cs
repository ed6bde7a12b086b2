using Billing.EntityFrameworkCore.Migrations;
using Billing.EntityFrameworkCore.Storage;
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
        return builder;
    }
}
