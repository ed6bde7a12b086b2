using System.Globalization;

namespace Billing.SampleHost.Http;

/// <summary>A single resource: <c>{ "data": { … } }</c>.</summary>
internal sealed record DataEnvelope<T>(T Data);

/// <summary>A page of a list: <c>{ "data": [ … ], "hasMore": bool }</c>.</summary>
internal sealed record ListEnvelope<T>(IReadOnlyList<T> Data, bool HasMore);

/// <summary>List paging: <c>limit</c> 1–100 (default 20) and the cursor <c>starting_after</c> (an object id).</summary>
internal readonly record struct Page(int Limit, string? StartingAfter)
{
    public const int DefaultLimit = 20;
    public const int MaxLimit = 100;

    public static Page From(HttpRequest request)
    {
        var errors = new FieldErrors();
        var limit = DefaultLimit;
        var raw = request.Query["limit"];
        if (raw.Count > 0)
        {
            errors.Check(raw.Count == 1 && int.TryParse(raw[0], NumberStyles.None, CultureInfo.InvariantCulture, out limit) && limit is >= 1 and <= MaxLimit, "limit", $"limit is a whole number from 1 to {MaxLimit}.");
        }

        var after = request.Query["starting_after"];
        string? startingAfter = null;
        if (after.Count > 0)
        {
            startingAfter = after[0];
            errors.Check(after.Count == 1 && startingAfter is { Length: >= 1 and <= 100 }, "starting_after", "starting_after is the id of the last object of the previous page.");
        }

        errors.ThrowIfAny();
        return new Page(limit, startingAfter);
    }

    /// <summary>The library's page request.</summary>
    public Billing.Ports.PageRequest ToRequest() => new() { Limit = Limit, StartingAfter = StartingAfter };
}
