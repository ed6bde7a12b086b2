using Billing.Engine;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Data;
using Billing.SampleHost.Http;
using Billing.Subscriptions;

namespace Billing.SampleHost.Endpoints;

internal static class SubscriptionEndpoints
{
    public static RouteGroupBuilder MapSubscriptions(this RouteGroupBuilder v1)
    {
        var subscriptions = v1.MapGroup("/subscriptions").WithTags("Subscriptions");

        subscriptions.MapPost("/", async (CreateSubscriptionRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            var subscription = await engine.CreateSubscriptionAsync(body.ToNewSubscription(), ct).ConfigureAwait(false);
            return TypedResults.Created($"/v1/subscriptions/{subscription.Id}", new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(subscription)));
        }).RequireAuthorization(Scopes.Write).WithName("CreateSubscription")
            .WithSummary("Create a subscription (trialing with a trial; otherwise its first invoice is charged at once)");

        subscriptions.MapGet("/", async (HttpRequest request, ResourceLister lister, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            var customer = SubscriptionMapping.Filter(errors, request, "customer");
            var status = SubscriptionMapping.StatusFilter<SubscriptionStatus>(errors, request);
            errors.ThrowIfAny();
            var (items, hasMore) = await lister.ListSubscriptionsAsync(Page.From(request), customer, status, ct).ConfigureAwait(false);
            return TypedResults.Ok(new ListEnvelope<SubscriptionDto>([.. items.Select(SubscriptionDto.From)], hasMore));
        }).RequireAuthorization(Scopes.Read).WithName("ListSubscriptions")
            .WithSummary("List subscriptions, newest first (filters: customer, status)");

        subscriptions.MapGet("/{id}", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(await engine.GetSubscriptionAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Read).WithName("GetSubscription").WithSummary("Get a subscription");

        subscriptions.MapPost("/{id}/cancel", async (string id, CancelSubscriptionRequest? body, BillingEngine engine, CancellationToken ct) =>
        {
            body?.Validate();
            var subscription = await engine.CancelSubscriptionAsync(id, body?.AtPeriodEnd ?? false, body?.Prorate ?? false, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(subscription)));
        }).RequireAuthorization(Scopes.Write).WithName("CancelSubscription").WithSummary("Cancel now or at the end of the period");

        subscriptions.MapPost("/{id}/reactivate", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(await engine.ReactivateSubscriptionAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Write).WithName("ReactivateSubscription")
            .WithSummary("Undo a cancel at period end, or restart a canceled subscription (new period, charged now)");

        subscriptions.MapPost("/{id}/pause", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(await engine.PauseSubscriptionAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Write).WithName("PauseSubscription").WithSummary("Pause billing");

        subscriptions.MapPost("/{id}/resume", async (string id, BillingEngine engine, CancellationToken ct) =>
            TypedResults.Ok(new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(await engine.ResumeSubscriptionAsync(id, ct).ConfigureAwait(false)))))
            .RequireAuthorization(Scopes.Write).WithName("ResumeSubscription").WithSummary("Resume a paused subscription (new period, charged now)");

        subscriptions.MapPost("/{id}/change", async (string id, ChangeSubscriptionRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            var subscription = await engine.ChangeSubscriptionAsync(id, body.ToChange(preview: false), ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<SubscriptionDto>(SubscriptionDto.From(subscription)));
        }).RequireAuthorization(Scopes.Write).WithName("ChangeSubscription")
            .WithSummary("Change plan and/or quantity, now (prorated) or at the end of the period");

        subscriptions.MapPost("/{id}/change_preview", async (string id, ChangeSubscriptionRequest body, BillingEngine engine, CancellationToken ct) =>
        {
            var preview = await engine.PreviewChangeAsync(id, body.ToChange(preview: true), ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<ProrationPreviewDto>(ProrationPreviewDto.From(preview)));
        }).RequireAuthorization(Scopes.Read).WithName("PreviewSubscriptionChange")
            .WithSummary("Preview the proration of an immediate change (changes nothing)");

        return v1;
    }
}
