using System.Security.Cryptography;

namespace Billing.SampleHost.Http;

/// <summary>
/// <c>X-Request-Id</c>: taken from the request when sane (1 to 128 characters of letters, digits and <c>-_.:</c>),
/// otherwise generated (<c>req_</c> + 24 hex digits). It becomes the <see cref="HttpContext.TraceIdentifier"/>, is
/// echoed on every response, and scopes the request's log lines.
/// </summary>
internal sealed class RequestIdMiddleware(RequestDelegate next, ILogger<RequestIdMiddleware> logger)
{
    public const string Header = "X-Request-Id";

    public async Task InvokeAsync(HttpContext context)
    {
        var given = context.Request.Headers[Header];
        var id = given.Count == 1 && IsSane(given[0]) ? given[0]! : "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        context.TraceIdentifier = id;
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[Header] = id;
            return Task.CompletedTask;
        });
        using (logger.BeginScope(new Dictionary<string, object> { ["RequestId"] = id }))
        {
            await next(context).ConfigureAwait(false);
        }
    }

    internal static bool IsSane(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 128)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
            {
                return false;
            }
        }

        return true;
    }
}
