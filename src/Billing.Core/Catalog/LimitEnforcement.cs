namespace Billing.Catalog;

/// <summary>What happens at a metered limit.</summary>
public enum LimitEnforcement
{
    /// <summary>Usage past the limit is allowed; <c>usage.threshold_reached</c> is emitted once per threshold per period.</summary>
    Soft = 0,

    /// <summary>An event that would take the aggregate past the limit is rejected and counts nothing.</summary>
    Hard = 1,
}
