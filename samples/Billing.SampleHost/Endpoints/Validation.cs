using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

/// <summary>Shared input rules (checked before anything changes).</summary>
internal static class Validation
{
    public const int MaxNameLength = 200;
    public const int MaxDescriptionLength = 1000;
    public const int MaxMetadataEntries = 50;
    public const int MaxMetadataKeyLength = 40;
    public const int MaxMetadataValueLength = 500;

    public static bool Name(FieldErrors errors, string field, string? value, bool required)
    {
        if (value is null)
        {
            return errors.Check(!required, field, $"{field} is required.");
        }

        return errors.Check(!string.IsNullOrWhiteSpace(value) && value.Length <= MaxNameLength, field, $"{field} has 1 to {MaxNameLength} characters.");
    }

    public static void Description(FieldErrors errors, string field, string? value) =>
        errors.Check(value is null || value.Length <= MaxDescriptionLength, field, $"{field} has at most {MaxDescriptionLength} characters.");

    public static void Metadata(FieldErrors errors, string field, Dictionary<string, string>? metadata)
    {
        if (metadata is null)
        {
            return;
        }

        errors.Check(metadata.Count <= MaxMetadataEntries, field, $"{field} has at most {MaxMetadataEntries} entries.");
        foreach (var (key, value) in metadata)
        {
            errors.Check(key.Length is >= 1 and <= MaxMetadataKeyLength, $"{field}.{key}", $"Metadata keys have 1 to {MaxMetadataKeyLength} characters.");
            errors.Check(value is not null && value.Length <= MaxMetadataValueLength, $"{field}.{key}", $"Metadata values are strings of at most {MaxMetadataValueLength} characters.");
        }
    }

    public static Currency? Currency(FieldErrors errors, string field, string? code)
    {
        if (code is null)
        {
            errors.Add(field, $"{field} is required (an ISO 4217 code such as USD).");
            return null;
        }

        if (code.Length == 3 && global::Billing.Currency.TryFromCode(code.ToUpperInvariant(), out var currency))
        {
            return currency;
        }

        errors.Add(field, $"'{Truncate(code)}' is not an ISO 4217 currency code.");
        return null;
    }

    public static bool TimeZone(FieldErrors errors, string field, string? zone) =>
        zone is null || errors.Check(zone.Length <= 100 && TimeZoneInfo.TryFindSystemTimeZoneById(zone, out _), field, $"'{Truncate(zone)}' is not an IANA time zone.");

    public static bool Id(string? id) => id is { Length: >= 1 and <= 100 };

    public static string Truncate(string value) => value.Length <= 40 ? value : value[..40] + "…";
}
