namespace Billing.SampleHost.Endpoints;

/// <summary>
/// Endpoints for load measurements only, mapped when <c>Billing:Benchmarks:BareEndpoints</c> is <c>true</c> (off by
/// default): <c>POST /benchmarks/bare/usage/batch</c> reads and parses the same JSON as <c>POST /v1/usage/batch</c> (into
/// the same request model, with the host's JSON options) and answers <c>{"count":n}</c> without authentication, checks
/// or storage, so a load test can set the ingestion path against the cost of HTTP and JSON alone in the same process.
/// </summary>
internal static class BenchmarkEndpoints
{
    /// <summary>The configuration flag that maps the bare endpoints.</summary>
    public const string BareEndpointsFlag = "Billing:Benchmarks:BareEndpoints";

    public static WebApplication MapBenchmarkEndpoints(this WebApplication app)
    {
        if (!app.Configuration.GetValue<bool>(BareEndpointsFlag))
        {
            return app;
        }

        app.MapPost("/benchmarks/bare/usage/batch", (UsageBatchRequest body) => TypedResults.Ok(new BareCount(body.Events?.Count ?? 0)))
            .ExcludeFromDescription();
        return app;
    }
}

/// <summary>The bare endpoint's answer: how many events the body held.</summary>
internal sealed record BareCount(int Count);
