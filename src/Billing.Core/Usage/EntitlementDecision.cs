using Billing.Catalog;

namespace Billing.Usage;

/// <summary>The answer of an entitlement check.</summary>
/// <param name="Feature">The feature asked about.</param>
/// <param name="Entitled">Whether the customer may use it now.</param>
/// <param name="Reason">
/// Why not (machine-readable): <c>no_subscription</c>, <c>not_in_plan</c>, <c>subscription_blocked</c> (a dunning
/// state the policy blocks), <c>limit_reached</c>; null when entitled.
/// </param>
/// <param name="Kind">The entitlement's kind, when the plan grants the feature.</param>
/// <param name="Limit">The limit, for limit kinds.</param>
/// <param name="Used">The current period's aggregate, for metered limits.</param>
/// <param name="SubscriptionId">The subscription that answered.</param>
public sealed record EntitlementDecision(string Feature, bool Entitled, string? Reason, EntitlementKind? Kind, long? Limit, long? Used, string? SubscriptionId)
{
    /// <summary>What is left before the limit (never negative); null without a limit.</summary>
    public long? Remaining => Limit is { } limit ? Math.Max(0, limit - (Used ?? 0)) : null;
}
