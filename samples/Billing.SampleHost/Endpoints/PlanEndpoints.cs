using Billing.Engine;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

internal static class PlanEndpoints
{
    public static RouteGroupBuilder MapPlans(this RouteGroupBuilder v1)
    {
        var plans = v1.MapGroup("/plans").WithTags("Plans");

        plans.MapPost("/", async (CreatePlanRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            var plan = await engine.CreatePlanAsync(body.ToNewPlan(), ct).ConfigureAwait(false);
            return TypedResults.Created($"/v1/plans/{plan.Id}", new DataEnvelope<PlanDto>(PlanDto.From(plan)));
        }).RequireAuthorization(Scopes.Write).WithName("CreatePlan").WithSummary("Create a plan");

        plans.MapGet("/", async (HttpRequest request, BillingEngine engine, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            var archived = PlanMapping.ArchivedFilter(errors, request);
            errors.ThrowIfAny();
            var page = await engine.ListPlansAsync(Page.From(request).ToRequest(), archived, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<PlanDto>([.. page.Items.Select(PlanDto.From)], page.HasMore));
        }).RequireAuthorization(Scopes.Read).WithName("ListPlans").WithSummary("List plans, newest first (filter: archived)");

        plans.MapGet("/{id}", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<PlanDto>(PlanDto.From(await engine.GetPlanAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Read).WithName("GetPlan").WithSummary("Get a plan");

        plans.MapPatch("/{id}", async (string id, UpdatePlanRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            body.Validate();
            var plan = await engine.UpdatePlanAsync(id, body.Name, body.Description, body.Metadata, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<PlanDto>(PlanDto.From(plan)));
        }).RequireAuthorization(Scopes.Write).WithName("UpdatePlan").WithSummary("Update a plan's name, description or metadata");

        plans.MapPost("/{id}/archive", async (string id, BillingEngine engine, CancellationToken ct) =>
        {
            var current = await engine.GetPlanAsync(id, ct).ConfigureAwait(false);
            if (current.Archived)
            {
                // The engine archives idempotently; the API reports the wrong state like every other transition.
                throw new InvalidStateTransitionException("plan", "archived", "archive", []);
            }

            var plan = await engine.ArchivePlanAsync(id, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<PlanDto>(PlanDto.From(plan)));
        }).RequireAuthorization(Scopes.Write).WithName("ArchivePlan").WithSummary("Archive a plan (no new subscriptions)");

        return v1;
    }
}
