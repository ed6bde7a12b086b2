using Billing.Engine;
using Billing.Ports;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Composition;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

/// <summary>POST /v1/test_clocks: <c>frozenTime</c> (required), <c>name</c>.</summary>
internal sealed class CreateTestClockRequest
{
    public DateTimeOffset? FrozenTime { get; init; }

    public string? Name { get; init; }

    public void Validate()
    {
        var errors = new FieldErrors();
        errors.Check(FrozenTime is not null, "frozenTime", "frozenTime is required: the clock's starting instant (ISO 8601).");
        Validation.Name(errors, "name", Name, required: false);
        errors.ThrowIfAny();
    }
}

/// <summary>POST /v1/test_clocks/{id}/advance: <c>frozenTime</c>, not before the clock's time and at most
/// <see cref="MaxAdvance"/> ahead.</summary>
internal sealed class AdvanceTestClockRequest
{
    public static readonly TimeSpan MaxAdvance = TimeSpan.FromDays(2 * 366);

    public DateTimeOffset? FrozenTime { get; init; }

    public void Validate()
    {
        var errors = new FieldErrors();
        errors.Check(FrozenTime is not null, "frozenTime", "frozenTime is required: the instant to move the clock to.");
        errors.ThrowIfAny();
    }
}

/// <summary>A test clock: customers attached to it (at creation, with <c>testClockId</c>) live on its time.</summary>
internal sealed record TestClockDto(string Id, string Object, string? Name, DateTimeOffset FrozenTime)
{
    public static TestClockDto From(TestClock c) => new(c.Id, "test_clock", c.Name, c.FrozenTime);
}

internal static class TestClockEndpoints
{
    public static RouteGroupBuilder MapTestClocks(this RouteGroupBuilder v1)
    {
        var clocks = v1.MapGroup("/test_clocks").WithTags("Test clocks").AddEndpointFilter(async (context, next) =>
        {
            if (!context.HttpContext.RequestServices.GetRequiredService<HostFeatures>().TestClocksEnabled)
            {
                await Problems.WriteAsync(context.HttpContext, StatusCodes.Status404NotFound, ErrorCodes.NotFound, "Test clocks are disabled on this host (Billing:TestClocks:Enabled).").ConfigureAwait(false);
                return Results.Empty;
            }

            return await next(context).ConfigureAwait(false);
        });

        clocks.MapPost("/", async (CreateTestClockRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            body.Validate();
            var clock = await engine.CreateTestClockAsync(body.FrozenTime!.Value, body.Name, ct).ConfigureAwait(false);
            return TypedResults.Created($"/v1/test_clocks/{clock.Id}", new DataEnvelope<TestClockDto>(TestClockDto.From(clock)));
        }).RequireAuthorization(Scopes.Write).WithName("CreateTestClock")
            .WithSummary("Create a test clock (attach customers by creating them with testClockId)");

        clocks.MapGet("/{id}", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<TestClockDto>(TestClockDto.From(await engine.GetTestClockAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Read).WithName("GetTestClock").WithSummary("Get a test clock");

        clocks.MapGet("/{id}/customers", async (string id, BillingEngine engine, IBillingStore store, CancellationToken ct) =>
        {
            _ = await engine.GetTestClockAsync(id, ct).ConfigureAwait(false);
            await using var session = await store.BeginAsync(ct).ConfigureAwait(false);
            var customers = await session.Customers.ListByTestClockAsync(id, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<CustomerDto>([.. customers.Select(CustomerDto.From)], false));
        }).RequireAuthorization(Scopes.Read).WithName("ListTestClockCustomers").WithSummary("List the customers attached to a test clock");

        clocks.MapPost("/{id}/advance", async (string id, AdvanceTestClockRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            body.Validate();
            var current = await engine.GetTestClockAsync(id, ct).ConfigureAwait(false);
            if (body.FrozenTime!.Value - current.FrozenTime > AdvanceTestClockRequest.MaxAdvance)
            {
                throw RequestValidationException.For("frozenTime", $"A clock moves at most {AdvanceTestClockRequest.MaxAdvance.TotalDays:0} days per call.");
            }

            var clock = await engine.AdvanceTestClockAsync(id, body.FrozenTime.Value, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<TestClockDto>(TestClockDto.From(clock)));
        }).RequireAuthorization(Scopes.Write).WithName("AdvanceTestClock")
            .WithSummary("Move a test clock forward: renewals, trial ends, invoices, payments and dunning due by then run now");

        return v1;
    }
}
