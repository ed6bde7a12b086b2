using Billing.EntityFrameworkCore.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>The adapter's own context: the billing tables and nothing else.</summary>
/// <remarks>
/// Contexts are pooled per store (<see cref="PooledDbContextFactory{TContext}"/>), so the constructor takes typed
/// options only; the schema is set right after a context is created or rented, before its model is first used.
/// </remarks>
internal sealed class BillingDbContext : DbContext
{
    public BillingDbContext(DbContextOptions<BillingDbContext> options)
        : base(options)
    {
    }

    /// <summary>The schema, part of the model cache key: contexts on different schemas get different models.</summary>
    public string? Schema { get; set; }

    /// <summary>
    /// Typed options for this context from a provider's options: the same extensions, plus the schema-aware model
    /// cache key.
    /// </summary>
    public static DbContextOptions<BillingDbContext> OptionsFrom(DbContextOptions options)
    {
        var typed = new DbContextOptions<BillingDbContext>(options.Extensions.ToDictionary(e => e.GetType()));
        return new DbContextOptionsBuilder<BillingDbContext>(typed)
            .ReplaceService<IModelCacheKeyFactory, SchemaModelCacheKeyFactory>()
            .Options;
    }

    /// <summary>A new, unpooled context on a schema (migrations, probes).</summary>
    public static BillingDbContext Create(DbContextOptions<BillingDbContext> options, string? schema) => new(options) { Schema = schema };

    protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.ApplyBillingConfiguration(Database, Schema);

    private sealed class SchemaModelCacheKeyFactory : IModelCacheKeyFactory
    {
        public object Create(DbContext context, bool designTime) =>
            (context.GetType(), (context as BillingDbContext)?.Schema, designTime);
    }
}
