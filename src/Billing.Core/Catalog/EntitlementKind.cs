namespace Billing.Catalog;

/// <summary>What an entitlement grants.</summary>
public enum EntitlementKind
{
    /// <summary>A feature that is on for the plan.</summary>
    Boolean = 0,

    /// <summary>A fixed number the customer may use (for example 5 projects), answered from the plan.</summary>
    Limit = 1,

    /// <summary>A limit on a meter's period aggregate, answered from the current counter.</summary>
    MeteredLimit = 2,
}
