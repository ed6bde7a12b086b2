using Billing.Engine;
using Billing.Ports;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Http;
using Billing.Usage;

namespace Billing.SampleHost.Endpoints;

internal static class UsageEndpoints
{
    public static RouteGroupBuilder MapUsage(this RouteGroupBuilder v1)
    {
        var usage = v1.MapGroup("/usage").WithTags("Usage");

        usage.MapPost("/", async (UsageEventRequest body, UsageMeteringService metering, IBillingStore store, TimeProvider time, HttpContext context, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            body.Check(errors, string.Empty);
            errors.ThrowIfAny();
            UsageEventInput input;
            await using (var clock = new UsageClock(store, time))
            {
                input = body.ToInput(await clock.TimestampAsync(body, ct).ConfigureAwait(false));
            }

            var result = await metering.RecordAsync(input, ct).ConfigureAwait(false);
            if (result.Status == UsageIngestStatus.Rejected)
            {
                await WriteRejectionAsync(context, result).ConfigureAwait(false);
                return Results.Empty;
            }

            var dto = new DataEnvelope<UsageResultDto>(UsageResultDto.From(0, result));
            return result.Status == UsageIngestStatus.Accepted ? Results.Json(dto, statusCode: StatusCodes.Status201Created) : Results.Json(dto);
        }).RequireAuthorization(Scopes.Write).WithName("RecordUsage")
            .Produces<DataEnvelope<UsageResultDto>>(StatusCodes.Status201Created)
            .Produces<DataEnvelope<UsageResultDto>>()
            .WithSummary("Record one usage event (201 accepted, 200 duplicate; a rejection is a problem naming the field)");

        usage.MapPost("/batch", async (UsageBatchRequest body, UsageMeteringService metering, IBillingStore store, TimeProvider time, CancellationToken ct) =>
        {
            const int max = 1_000;
            var errors = new FieldErrors();
            if (errors.Check(body.Events is { Count: >= 1 and <= max }, "events", $"events is required: 1 to {max} events."))
            {
                for (var i = 0; i < body.Events!.Count; i++)
                {
                    // The field names are built only for an event that fails (most batches have none).
                    if (body.Events[i] is not { } e)
                    {
                        errors.Add($"events[{i}]", "An event is required.");
                    }
                    else if (!e.IsValid())
                    {
                        e.Check(errors, $"events[{i}].");
                    }
                }
            }

            errors.ThrowIfAny();
            var inputs = new List<UsageEventInput>(body.Events!.Count);
            await using (var clock = new UsageClock(store, time))
            {
                await clock.PreloadAsync(body.Events!, ct).ConfigureAwait(false);
                foreach (var e in body.Events!)
                {
                    inputs.Add(e!.ToInput(await clock.TimestampAsync(e, ct).ConfigureAwait(false)));
                }
            }

            var results = await metering.RecordBatchAsync(inputs, ct).ConfigureAwait(false);
            var dtos = new UsageResultDto[results.Count];
            for (var i = 0; i < dtos.Length; i++)
            {
                dtos[i] = UsageResultDto.From(i, results[i]);
            }

            return TypedResults.Ok(new ListEnvelope<UsageResultDto>(dtos, false));
        }).RequireAuthorization(Scopes.Write).WithName("RecordUsageBatch")
            .WithSummary("Record up to 1,000 usage events; each gets its own result (accepted, duplicate or rejected)");

        usage.MapGet("/summary", async (HttpRequest request, BillingEngine engine, UsageMeteringService metering, CancellationToken ct) =>
        {
            var errors = new FieldErrors();
            var subscriptionId = SubscriptionMapping.Filter(errors, request, "subscription");
            errors.Check(subscriptionId is not null || errors.Any, "subscription", "subscription is required.");
            var meter = request.Query["meter"];
            errors.Check(meter.Count == 0 || (meter.Count == 1 && Meter.IsValidKey(meter[0])), "meter", "meter is a meter key.");
            DateTimeOffset? periodStart = null;
            var rawStart = request.Query["period_start"];
            if (rawStart.Count > 0)
            {
                var parsed = default(DateTimeOffset);
                var ok = rawStart.Count == 1 && DateTimeOffset.TryParse(rawStart[0], System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out parsed);
                errors.Check(ok, "period_start", "period_start is an ISO 8601 instant: the start of a billing period.");
                periodStart = ok ? parsed.ToUniversalTime() : null;
            }

            errors.ThrowIfAny();
            var subscription = await engine.GetSubscriptionAsync(subscriptionId!, ct).ConfigureAwait(false);
            var plan = await engine.GetPlanAsync(subscription.PlanId, ct).ConfigureAwait(false);
            var meters = plan.MeteredPrices.Select(m => m.Meter).Where(m => meter.Count == 0 || m.Key == meter[0]).ToList();
            if (meter.Count == 1 && meters.Count == 0)
            {
                throw RequestValidationException.For("meter", $"The subscription's plan has no meter '{Validation.Truncate(meter[0]!)}'.");
            }

            var start = periodStart ?? subscription.CurrentPeriod.Start;
            var rows = new List<MeterUsageDto>(meters.Count);
            foreach (var m in meters)
            {
                var key = new UsageCounterKey(subscription.CustomerId, m.Key, start);
                var durable = await metering.GetDurableTotalAsync(key, m.Aggregation, ct).ConfigureAwait(false);
                var counter = await metering.GetTotalAsync(key, ct).ConfigureAwait(false);
                rows.Add(new MeterUsageDto(m.Key, PlanMapping.Snake(m.Aggregation.ToString()), durable, counter));
            }

            var end = periodStart is null || periodStart == subscription.CurrentPeriod.Start ? subscription.CurrentPeriod.End : (DateTimeOffset?)null;
            return TypedResults.Ok(new DataEnvelope<UsageSummaryDto>(new UsageSummaryDto("usage_summary", subscription.Id, subscription.CustomerId, start, end, rows)));
        }).RequireAuthorization(Scopes.Read).WithName("GetUsageSummary")
            .WithSummary("Usage per meter of a subscription in a period (default: the current one; period_start picks another)");

        v1.MapGet("/customers/{id}/entitlements/{feature}", async (string id, string feature, UsageMeteringService metering, CancellationToken ct) =>
        {
            if (!Meter.IsValidKey(feature))
            {
                throw RequestValidationException.For("feature", $"A feature key has 1 to {Meter.MaxKeyLength} characters: a-z, 0-9, '_', '-', '.'.");
            }

            var decision = await metering.CheckEntitlementAsync(id, feature, ct).ConfigureAwait(false);
            return TypedResults.Ok(new DataEnvelope<EntitlementDecisionDto>(EntitlementDecisionDto.From(id, decision)));
        }).RequireAuthorization(Scopes.Read).WithTags("Usage").WithName("CheckEntitlement")
            .WithSummary("Whether a customer may use a feature now (limits against the live usage counter)");

        return v1;
    }

    /// <summary>A rejected single event as a problem: bad input 400 naming the field, unknown customer or
    /// subscription 404, no live subscription for the meter or a closed period 409 <c>invalid_state_transition</c>,
    /// a hard limit 409 <c>conflict</c>.</summary>
    private static Task WriteRejectionAsync(HttpContext context, UsageIngestResult result)
    {
        var field = result.Field is null ? "body" : ErrorHandlingMiddleware.JsonField(result.Field);
        var message = result.Message ?? "The event was rejected.";
        return result.Reason switch
        {
            "customer_not_found" or "subscription_not_found" => Problems.WriteAsync(context, 404, ErrorCodes.NotFound, message),
            "no_subscription_for_meter" or "period_closed" => Problems.WriteAsync(context, 409, ErrorCodes.InvalidStateTransition, message),
            "over_limit" => Problems.WriteAsync(context, 409, ErrorCodes.Conflict, message),
            _ => Problems.WriteAsync(context, 400, ErrorCodes.ValidationError, message, new Dictionary<string, string[]> { [field] = [message] }),
        };
    }
}
