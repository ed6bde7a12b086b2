namespace Billing.Usage;

/// <summary>One counter: a customer's usage of one meter in one billing period.</summary>
/// <param name="CustomerId">The customer (<c>cus_…</c>); every key of a customer shares a Redis Cluster slot.</param>
/// <param name="MeterKey">The meter.</param>
/// <param name="PeriodStart">The start of the billing period the usage belongs to (UTC).</param>
public readonly record struct UsageCounterKey(string CustomerId, string MeterKey, DateTimeOffset PeriodStart);
