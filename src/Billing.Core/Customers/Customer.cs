using Billing.Invoices;

namespace Billing.Customers;

/// <summary>A customer: who is billed, in which currency and time zone, and how.</summary>
public sealed record Customer
{
    /// <summary>The customer's id (<c>cus_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The customer's name.</summary>
    public required string Name { get; init; }

    /// <summary>The customer's email address.</summary>
    public required string Email { get; init; }

    /// <summary>The currency every subscription and invoice of the customer uses.</summary>
    public required Currency Currency { get; init; }

    /// <summary>The IANA time zone on whose calendar periods are computed (for example <c>Europe/Berlin</c>).</summary>
    public required string TimeZoneId { get; init; }

    /// <summary>The default payment method reference (a gateway token), or null.</summary>
    public string? DefaultPaymentMethod { get; init; }

    /// <summary>Credit available to pay future invoices (zero or positive), applied before charging.</summary>
    public required Money CreditBalance { get; init; }

    /// <summary>The tax rates applied to the customer's invoices (all exclusive or all inclusive).</summary>
    public IReadOnlyList<TaxRate> TaxRates { get; init; } = [];

    /// <summary>The external payment-provider customer id (for example Stripe's <c>cus_…</c>), or null.</summary>
    public string? ExternalId { get; init; }

    /// <summary>The test clock the customer is attached to, or null for real time.</summary>
    public string? TestClockId { get; init; }

    /// <summary>Free-form key/value data.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = Empty.Metadata;

    /// <summary>When the customer was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>The optimistic-concurrency version.</summary>
    public long Version { get; init; }
}
