using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;

namespace Billing.SampleHost.Http;

/// <summary>The machine-readable error codes of the API (the <c>code</c> member of every problem).</summary>
internal static class ErrorCodes
{
    public const string ValidationError = "validation_error";
    public const string NotFound = "not_found";
    public const string Conflict = "conflict";
    public const string InvalidStateTransition = "invalid_state_transition";
    public const string AuthenticationRequired = "authentication_required";
    public const string Forbidden = "forbidden";
    public const string RateLimited = "rate_limited";
    public const string IdempotencyKeyReused = "idempotency_key_reused";
    public const string InternalError = "internal_error";
}

/// <summary>
/// RFC 9457 problem details: <c>type</c> (<c>about:blank</c>), <c>title</c> (the status phrase), <c>status</c>,
/// <c>detail</c>, <c>instance</c> (the path), plus <c>code</c>, <c>requestId</c> and, for validation, <c>errors</c>
/// (field → messages). Never an exception's text or stack trace for a 500.
/// </summary>
internal static class Problems
{
    public const string ContentType = "application/problem+json";

    public static ProblemDetails Create(HttpContext context, int status, string code, string detail, IReadOnlyDictionary<string, string[]>? errors = null)
    {
        var problem = new ProblemDetails
        {
            Type = "about:blank",
            Title = ReasonPhrases.GetReasonPhrase(status),
            Status = status,
            Detail = detail,
            Instance = context.Request.Path.Value,
        };
        problem.Extensions["code"] = code;
        problem.Extensions["requestId"] = context.TraceIdentifier;
        if (errors is { Count: > 0 })
        {
            problem.Extensions["errors"] = errors;
        }

        return problem;
    }

    public static Task WriteAsync(HttpContext context, int status, string code, string detail, IReadOnlyDictionary<string, string[]>? errors = null)
    {
        var problem = Create(context, status, code, detail, errors);
        context.Response.StatusCode = status;
        var json = context.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        return context.Response.WriteAsJsonAsync(problem, json, ContentType, context.RequestAborted);
    }
}
