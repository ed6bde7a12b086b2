using System.Text.Json;
using System.Text.Json.Serialization;
using Billing.EntityFrameworkCore;
using Billing.InMemory;
using Billing.Payments;
using Billing.Ports;
using Billing.Redis;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Data;
using Billing.SampleHost.Health;
using Billing.Testing.Payments;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;

namespace Billing.SampleHost.Composition;

/// <summary>What the host decided from its configuration, for endpoints and start-up.</summary>
internal sealed record HostFeatures(bool TestClocksEnabled, string? BootstrapApiKey);

/// <summary>The composition root: the only place that picks implementations (and the only use of
/// <see cref="TimeProvider.System"/>).</summary>
internal static class HostComposition
{
    public static WebApplicationBuilder AddSampleHost(this WebApplicationBuilder builder)
    {
        var settings = builder.Configuration.GetSection(SampleHostOptions.Section).Get<SampleHostOptions>() ?? new SampleHostOptions();
        var services = builder.Services;

        // The real clock, registered before AddBilling so the engine and the host share it (tests replace it).
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<IPaymentGateway, FakePaymentGateway>();

        var billing = services.AddBilling(o => builder.Configuration.GetSection(SampleHostOptions.Section + ":Engine").Bind(o));
        // Usage ingestion: the host reuses what it read to resolve events for 1 s unless configured (Billing:Metering).
        billing.ConfigureMetering(o =>
        {
            o.ResolutionCacheDuration = TimeSpan.FromSeconds(1);
            builder.Configuration.GetSection(SampleHostOptions.Section + ":Metering").Bind(o);
        });
        var redis = settings.Redis.Configuration;
        var counters = settings.UsageCounters.Trim().ToLowerInvariant();
        if (string.IsNullOrWhiteSpace(redis))
        {
            switch (counters)
            {
                case "memory":
                    // An instance registration: the EF Core adapter keeps it instead of putting its own counter in.
                    services.AddSingleton<IUsageCounter>(new InMemoryUsageCounter());
                    break;
                case "database":
                    break;
                default:
                    throw new InvalidOperationException($"Billing:UsageCounters must be 'memory' or 'database', not '{settings.UsageCounters}'.");
            }
        }

        var provider = settings.Database.Provider.Trim().ToLowerInvariant();
        HostDatabase database;
        switch (provider)
        {
            case "sqlite":
            {
                var connectionString = string.IsNullOrWhiteSpace(settings.Database.ConnectionString) ? "Data Source=data/billing.db" : settings.Database.ConnectionString;
                EnsureSqliteDirectory(connectionString);
                billing.AddEntityFrameworkCore(o => o.UseSqlite(connectionString));
                database = HostDatabase.ForSqlite(connectionString);
                break;
            }

            case "postgresql":
            {
                var connectionString = settings.Database.ConnectionString;
                if (string.IsNullOrWhiteSpace(connectionString))
                {
                    throw new InvalidOperationException("Billing:Database:ConnectionString is required when Billing:Database:Provider is 'postgresql'.");
                }

                var schema = string.IsNullOrWhiteSpace(settings.Database.Schema) ? "billing" : settings.Database.Schema;
                billing.AddEntityFrameworkCore(o => o.UseNpgsql(TunedNpgsql(connectionString)), schema);
                // The host's own queries (API keys, idempotency records, lists) get the same tuning as the store's.
                database = HostDatabase.ForPostgreSql(TunedNpgsql(connectionString), schema);
                break;
            }

            default:
                throw new InvalidOperationException($"Billing:Database:Provider must be 'sqlite' or 'postgresql', not '{settings.Database.Provider}'.");
        }

        services.AddSingleton(database);
        var health = services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
        if (!string.IsNullOrWhiteSpace(redis))
        {
            billing.AddRedisUsageCounters(o => o.ConfigurationString = redis);
            health.AddCheck<RedisHealthCheck>("redis", tags: ["ready"]);
        }

        if (settings.BootstrapApiKey is { Length: > 0 } bootstrap && !ApiKeySecrets.IsWellFormed(bootstrap))
        {
            throw new InvalidOperationException($"Billing:BootstrapApiKey must start with 'sk_' and have {ApiKeySecrets.MinimumLength} to 200 letters, digits or '_'.");
        }

        var workerErrors = settings.Workers.Validate().Concat(settings.ApiKeys.Validate()).ToList();
        if (workerErrors.Count > 0)
        {
            throw new InvalidOperationException(string.Join(" ", workerErrors));
        }

        services.AddSingleton(settings.Workers);
        services.AddSingleton(settings.ApiKeys);
        services.AddSingleton<Workers.WorkerStatus>();
        services.AddSingleton<Workers.OutboxCheckpointStore>();
        services.TryAddSingleton<Workers.IOutboxSink, Workers.LoggingOutboxSink>();
        services.AddSingleton(new HostFeatures(settings.TestClocks.Enabled ?? builder.Environment.IsDevelopment(), settings.BootstrapApiKey));
        services.AddSingleton<ResourceLister>();
        services.AddSingleton<Idempotency.IdempotencyStore>();
        services.AddSingleton(new BootstrapKeyOutput(Console.Out));
        services.AddSingleton<ApiKeyBootstrapper>();
        services.AddApiKeyAuthentication();
        services.AddHostedService<StartupTasks>();

        // After StartupTasks: hosted services start in order, so the workers find the schema migrated.
        if (settings.Workers.BillingRun.Enabled)
        {
            services.AddHostedService<Workers.BillingRunWorker>();
        }

        if (settings.Workers.Outbox.Enabled)
        {
            services.AddHostedService<Workers.OutboxDispatcher>();
        }

        services.Configure<JsonOptions>(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
            o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
            o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        });

        // Unreadable bodies throw (and become problems) in every environment, not only in Development.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddOpenApi(o => o.AddApiKeySecurity().AddOperationTransformer((operation, context, _) =>
        {
            // Every POST takes an optional Idempotency-Key (see IdempotencyMiddleware).
            if (string.Equals(context.Description.HttpMethod, "POST", StringComparison.OrdinalIgnoreCase))
            {
                operation.Parameters ??= [];
                operation.Parameters.Add(new Microsoft.OpenApi.OpenApiParameter
                {
                    Name = Idempotency.IdempotencyMiddleware.Header,
                    In = Microsoft.OpenApi.ParameterLocation.Header,
                    Required = false,
                    Description = "Makes a retry safe: the first answer is replayed for 24 hours to the same key, path and body (per API key).",
                    Schema = new Microsoft.OpenApi.OpenApiSchema { Type = Microsoft.OpenApi.JsonSchemaType.String, MinLength = 1, MaxLength = Idempotency.IdempotencyMiddleware.MaxKeyLength },
                });
            }

            return Task.CompletedTask;
        }));
        return builder;
    }

    private static void EnsureSqliteDirectory(string connectionString)
    {
        var source = new SqliteConnectionStringBuilder(connectionString).DataSource;
        if (string.IsNullOrEmpty(source) || source == ":memory:" || source.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(source));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }
    }

    /// <summary>The adapter's recommended Npgsql settings (auto-prepare, no reset on close) unless the string sets them.</summary>
    private static string TunedNpgsql(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.MaxAutoPrepare == 0)
        {
            builder.MaxAutoPrepare = 32;
            builder.AutoPrepareMinUsages = 2;
        }

        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("No Reset On Close") && !given.ContainsKey("NoResetOnClose"))
        {
            builder.NoResetOnClose = true;
        }

        return builder.ConnectionString;
    }
}

/// <summary>At start, before the server listens: migrations, the host's own table, the bootstrap admin key.</summary>
internal sealed partial class StartupTasks(IServiceProvider services, HostFeatures features, ILogger<StartupTasks> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (services.GetService<Billing.EntityFrameworkCore.Storage.EntityFrameworkBillingStore>() is { } store)
        {
            var applied = await store.MigrateAsync(cancellationToken).ConfigureAwait(false);
            if (applied.Count > 0)
            {
                var versions = string.Join(", ", applied);
                LogMigrated(logger, versions);
            }
        }

        await services.GetRequiredService<ApiKeyStore>().EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await services.GetRequiredService<Idempotency.IdempotencyStore>().EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await services.GetRequiredService<Workers.OutboxCheckpointStore>().EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await services.GetRequiredService<ApiKeyBootstrapper>().RunAsync(features.BootstrapApiKey, cancellationToken).ConfigureAwait(false);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Applied billing migrations {Versions}")]
    private static partial void LogMigrated(ILogger logger, string versions);
}
