using Billing.EntityFrameworkCore.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>The adapter's own context: the billing tables and nothing else.</summary>
internal sealed class BillingDbContext : DbContext
{
    private readonly string? _schema;

    public BillingDbContext(DbContextOptions options, string? schema)
        : base(options)
    {
        _schema = schema;
    }

    /// <summary>The schema, part of the model cache key: contexts on different schemas get different models.</summary>
    public string? Schema => _schema;

    protected override void OnConfiguring(DbContextOptionsBuilder optionsBuilder) =>
        optionsBuilder.ReplaceService<IModelCacheKeyFactory, SchemaModelCacheKeyFactory>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.ApplyBillingConfiguration(Database, _schema);

    private sealed class SchemaModelCacheKeyFactory : IModelCacheKeyFactory
    {
        public object Create(DbContext context, bool designTime) =>
            (context.GetType(), (context as BillingDbContext)?.Schema, designTime);
    }
}
