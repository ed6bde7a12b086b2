using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Billing.SampleHost.Endpoints;

/// <summary>A health answer: <c>healthy</c> or <c>unhealthy</c>, per check.</summary>
internal sealed record HealthDto(string Status, IReadOnlyDictionary<string, HealthCheckDto> Checks);

internal sealed record HealthCheckDto(string Status, string? Description);

internal static class HealthEndpoints
{
    /// <summary><c>/health/live</c>: the process answers. <c>/health/ready</c>: the database (and Redis when
    /// configured) answer; 503 otherwise. Neither needs an API key; neither shows exception text. Plain endpoints
    /// (not <c>MapHealthChecks</c>) so the OpenAPI document describes them.</summary>
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        var health = app.MapGroup("/health").WithTags("Health");
        health.MapGet("/live", () => TypedResults.Ok(new HealthDto("healthy", new Dictionary<string, HealthCheckDto>())))
            .WithName("Live").WithSummary("Liveness: the process answers");
        health.MapGet("/ready", async (HealthCheckService checks, CancellationToken ct) =>
        {
            var report = await checks.CheckHealthAsync(c => c.Tags.Contains("ready"), ct).ConfigureAwait(false);
            var dto = new HealthDto(Name(report.Status), report.Entries.ToDictionary(e => e.Key, e => new HealthCheckDto(Name(e.Value.Status), e.Value.Description)));
            return report.Status == HealthStatus.Healthy ? Results.Json(dto) : Results.Json(dto, statusCode: StatusCodes.Status503ServiceUnavailable);
        }).WithName("Ready").WithSummary("Readiness: the database (and Redis when configured) answer").Produces<HealthDto>().Produces<HealthDto>(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    private static string Name(HealthStatus status) => status == HealthStatus.Healthy ? "healthy" : "unhealthy";
}
