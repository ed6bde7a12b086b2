namespace Billing;

/// <summary>Shared empty values.</summary>
internal static class Empty
{
    public static readonly IReadOnlyDictionary<string, string> Metadata = new Dictionary<string, string>();
}
