namespace Billing.Ports;

/// <summary>Creates object ids such as <c>cus_…</c> and <c>in_…</c>.</summary>
public interface IBillingIdGenerator
{
    /// <summary>Creates a new unique id with a prefix.</summary>
    /// <param name="prefix">The object's prefix without underscore (<c>cus</c>, <c>sub</c>, <c>in</c>, <c>pay</c>, <c>evt</c>…).</param>
    /// <returns>The id, for example <c>cus_3f2a…</c>.</returns>
    string NewId(string prefix);
}

/// <summary>The default id generator: the prefix and 32 hex digits of a random GUID.</summary>
public sealed class RandomIdGenerator : IBillingIdGenerator
{
    /// <inheritdoc />
    public string NewId(string prefix) => $"{prefix}_{Guid.NewGuid():N}";
}
