namespace Billing.Catalog;

/// <summary>A feature a plan grants: on/off, a fixed limit, or a limit on a meter.</summary>
public sealed record Entitlement
{
    /// <summary>The feature key checked by <c>CheckEntitlementAsync</c> (same rules as meter keys).</summary>
    public required string Feature { get; init; }

    /// <summary>What it grants.</summary>
    public EntitlementKind Kind { get; init; } = EntitlementKind.Boolean;

    /// <summary>The limit (≥ 0) for <see cref="EntitlementKind.Limit"/> and <see cref="EntitlementKind.MeteredLimit"/>.</summary>
    public long? Limit { get; init; }

    /// <summary>The meter a <see cref="EntitlementKind.MeteredLimit"/> limits (one of the plan's metered prices or any meter key).</summary>
    public string? MeterKey { get; init; }

    /// <summary>Soft or hard, for metered limits.</summary>
    public LimitEnforcement Enforcement { get; init; } = LimitEnforcement.Soft;

    /// <summary>
    /// Extra soft thresholds below the limit (for example 80% of it), each emitting <c>usage.threshold_reached</c>
    /// once per period; the limit itself is always a threshold.
    /// </summary>
    public IReadOnlyList<long> Thresholds { get; init; } = [];
}
