using Billing.Redis;
using Billing.SampleHost.Data;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Billing.SampleHost.Health;

/// <summary>Ready when the database answers <c>SELECT 1</c>.</summary>
internal sealed class DatabaseHealthCheck(HostDatabase database) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var command = connection.Command("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy(database.IsPostgreSql ? "postgresql" : "sqlite");
        }
#pragma warning disable CA1031 // A health check reports any failure as unhealthy.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return HealthCheckResult.Unhealthy("The database does not answer.", e);
        }
    }
}

/// <summary>Ready when Redis answers PING.</summary>
internal sealed class RedisHealthCheck(RedisUsageCounterConnection connection) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var multiplexer = await connection.GetMultiplexerAsync(cancellationToken).ConfigureAwait(false);
            var latency = await multiplexer.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:0.0} ms");
        }
#pragma warning disable CA1031 // A health check reports any failure as unhealthy.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return HealthCheckResult.Unhealthy("Redis does not answer.", e);
        }
    }
}
