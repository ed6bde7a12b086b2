using Billing.SampleHost.Composition;
using Billing.SampleHost.Endpoints;
using Billing.SampleHost.Http;
using Billing.SampleHost.Idempotency;

var builder = WebApplication.CreateBuilder(args);
builder.AddSampleHost();
builder.AddHardening();
builder.AddForwardedHeaders();

var app = builder.Build();
app.UseHostForwardedHeaders();
app.UseMiddleware<SecurityHeadersMiddleware>();
app.UseMiddleware<RequestIdMiddleware>();
app.UseMiddleware<ErrorHandlingMiddleware>();
app.UseMiddleware<RequestBodyLimitMiddleware>();
app.UseHostCors();
app.UseAuthentication();
app.UseHostRateLimiting();
app.UseAuthorization();
app.UseMiddleware<JsonContentTypeMiddleware>();
app.UseMiddleware<IdempotencyMiddleware>();

app.MapOpenApi();
app.MapHealth();
var v1 = app.MapGroup("/v1")
    .ProducesProblem(StatusCodes.Status400BadRequest)
    .ProducesProblem(StatusCodes.Status401Unauthorized)
    .ProducesProblem(StatusCodes.Status403Forbidden)
    .ProducesProblem(StatusCodes.Status404NotFound)
    .ProducesProblem(StatusCodes.Status409Conflict)
    .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
    .ProducesProblem(StatusCodes.Status429TooManyRequests);
v1.MapPlans();
v1.MapCustomers();
v1.MapSubscriptions();
v1.MapInvoices();
v1.MapUsage();
v1.MapTestClocks();
v1.MapApiKeys();
app.MapBenchmarkEndpoints();

await app.RunAsync().ConfigureAwait(false);

/// <summary>The entry point (public for <c>WebApplicationFactory&lt;Program&gt;</c>).</summary>
public partial class Program;
