using Billing.Catalog;
using Billing.Invoices;
using Billing.Periods;
using Billing.Pricing;
using Billing.Proration;

namespace Billing.Engine;

/// <summary>What a new plan is made of.</summary>
/// <param name="Name">The name shown on invoices.</param>
/// <param name="Price">The price per period.</param>
/// <param name="Interval">How often it bills.</param>
public sealed record NewPlan(string Name, Price Price, BillingInterval Interval)
{
    /// <summary>Free trial days for new subscriptions (0 to 730).</summary>
    public int TrialDays { get; init; }

    /// <summary>An optional description.</summary>
    public string? Description { get; init; }

    /// <summary>Free-form key/value data.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>Usage-based prices (at most 20, one per meter key, in the plan's currency).</summary>
    public IReadOnlyList<MeteredPrice>? MeteredPrices { get; init; }

    /// <summary>Features the plan grants (at most 100, one per feature key).</summary>
    public IReadOnlyList<Entitlement>? Entitlements { get; init; }
}

/// <summary>What a new customer is made of.</summary>
/// <param name="Name">The customer's name.</param>
/// <param name="Email">The customer's email address.</param>
/// <param name="Currency">The currency of everything billed to the customer.</param>
public sealed record NewCustomer(string Name, string Email, Currency Currency)
{
    /// <summary>The IANA time zone; null uses <see cref="BillingOptions.DefaultTimeZoneId"/>.</summary>
    public string? TimeZoneId { get; init; }

    /// <summary>The default payment method token.</summary>
    public string? PaymentMethod { get; init; }

    /// <summary>Tax rates for the customer's invoices.</summary>
    public IReadOnlyList<TaxRate>? TaxRates { get; init; }

    /// <summary>The test clock to attach the customer to (its time drives the customer's billing).</summary>
    public string? TestClockId { get; init; }

    /// <summary>Free-form key/value data.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}

/// <summary>What a new subscription is made of.</summary>
/// <param name="CustomerId">The customer.</param>
/// <param name="PlanId">The plan.</param>
public sealed record NewSubscription(string CustomerId, string PlanId)
{
    /// <summary>The quantity (seats), 1 or more. Default 1.</summary>
    public long Quantity { get; init; } = 1;

    /// <summary>Trial days, overriding the plan's; 0 for no trial.</summary>
    public int? TrialDays { get; init; }

    /// <summary>The payment method token, overriding the customer's default.</summary>
    public string? PaymentMethod { get; init; }

    /// <summary>A coupon to apply from the first invoice.</summary>
    public Coupon? Coupon { get; init; }
}

/// <summary>A change of plan and/or quantity.</summary>
public sealed record SubscriptionChange
{
    /// <summary>The new plan, or null to keep the plan.</summary>
    public string? PlanId { get; init; }

    /// <summary>The new quantity, or null to keep it.</summary>
    public long? Quantity { get; init; }

    /// <summary>Apply at the end of the current period instead of now (no proration).</summary>
    public bool AtPeriodEnd { get; init; }

    /// <summary>What to do with the proration of an immediate change. Default <see cref="ProrationBehavior.CreateProrations"/>.</summary>
    public ProrationBehavior ProrationBehavior { get; init; } = ProrationBehavior.CreateProrations;

    /// <summary>A pinned proration instant (as previewed), or null for the customer's current time.</summary>
    public DateTimeOffset? ProrationDate { get; init; }
}

/// <summary>What a billing run did.</summary>
/// <param name="SubscriptionsProcessed">Subscription steps done (trial ends, renewals, cancellations, notices).</param>
/// <param name="InvoicesCreated">Invoices created.</param>
/// <param name="InvoicesFinalized">Invoices finalized.</param>
/// <param name="PaymentsAttempted">Gateway charges attempted.</param>
/// <param name="Skipped">Items another worker got to first (a conflict or duplicate at commit).</param>
public sealed record BillingRunResult(int SubscriptionsProcessed, int InvoicesCreated, int InvoicesFinalized, int PaymentsAttempted, int Skipped);
