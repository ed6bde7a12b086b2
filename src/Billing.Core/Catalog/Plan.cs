using Billing.Periods;
using Billing.Pricing;

namespace Billing.Catalog;

/// <summary>A plan: one price, billed every interval, with an optional free trial.</summary>
/// <remarks>
/// A plan's price is never edited once created: a new price is a new plan. Only the name, description and metadata
/// change. An archived plan takes no new subscriptions; existing subscriptions keep billing on it.
/// </remarks>
public sealed record Plan
{
    /// <summary>The plan's id (<c>plan_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The name shown on invoices.</summary>
    public required string Name { get; init; }

    /// <summary>An optional description.</summary>
    public string? Description { get; init; }

    /// <summary>The price for one period; its currency is the plan's currency.</summary>
    public required Price Price { get; init; }

    /// <summary>How often the plan bills.</summary>
    public required BillingInterval Interval { get; init; }

    /// <summary>Usage-based prices billed in arrears, one usage line each per period (empty for none).</summary>
    public IReadOnlyList<MeteredPrice> MeteredPrices { get; init; } = [];

    /// <summary>The features the plan grants.</summary>
    public IReadOnlyList<Entitlement> Entitlements { get; init; } = [];

    /// <summary>Free trial length in days for new subscriptions (0 for none).</summary>
    public int TrialDays { get; init; }

    /// <summary>Whether the plan is archived (no new subscriptions).</summary>
    public bool Archived { get; init; }

    /// <summary>Free-form key/value data.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = Empty.Metadata;

    /// <summary>When the plan was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>The optimistic-concurrency version; the store increments it on every update.</summary>
    public long Version { get; init; }

    /// <summary>The plan's currency.</summary>
    public Currency Currency => Price.Currency;
}
