using System.Text;
using System.Text.Json;

namespace Billing.SampleHost.Http;

/// <summary>
/// Turns every failure into a problem: the engine's exceptions into 400/404/409, unreadable bodies into 400, anything
/// else into a 500 <c>internal_error</c> whose body says nothing about the exception (it is logged with the request
/// id). Bare error statuses (an unknown route, a wrong method) get a problem body too.
/// </summary>
internal sealed partial class ErrorHandlingMiddleware(RequestDelegate next, ILogger<ErrorHandlingMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away: nobody to answer.
            return;
        }
        catch (Exception exception) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            await WriteAsync(context, exception).ConfigureAwait(false);
            return;
        }

        if (context.Response.StatusCode >= 400 && !context.Response.HasStarted && context.Response.ContentLength is null && context.Response.ContentType is null)
        {
            var status = context.Response.StatusCode;
            if (status == StatusCodes.Status415UnsupportedMediaType)
            {
                await JsonContentTypeMiddleware.WriteAsync(context).ConfigureAwait(false);
                return;
            }

            var (code, detail) = status switch
            {
                404 => (ErrorCodes.NotFound, $"No endpoint at {context.Request.Method} {context.Request.Path}."),
                405 => (ErrorCodes.NotFound, $"No endpoint at {context.Request.Method} {context.Request.Path}: the path takes other methods (see the Allow header)."),
                413 => (ErrorCodes.ValidationError, "The request body is too large."),
                429 => (ErrorCodes.RateLimited, "Too many requests."),
                >= 500 => (ErrorCodes.InternalError, "The server failed to handle the request."),
                _ => (ErrorCodes.ValidationError, "The request is not valid."),
            };
            await Problems.WriteAsync(context, status, code, detail).ConfigureAwait(false);
        }
    }

    private Task WriteAsync(HttpContext context, Exception exception)
    {
        if (WriteClientErrorAsync(context, exception) is { } written)
        {
            return written;
        }

        LogUnhandled(logger, exception, context.TraceIdentifier, context.Request.Method, context.Request.Path.Value);
        return Problems.WriteAsync(context, 500, ErrorCodes.InternalError, "The server failed to handle the request; nothing was changed. Quote the request id when asking for help.");
    }

    /// <summary>Writes the problem for an exception that is the client's doing (4xx); null for anything else.</summary>
    internal static Task? WriteClientErrorAsync(HttpContext context, Exception exception)
    {
        switch (exception)
        {
            case RequestValidationException e:
                return Problems.WriteAsync(context, 400, ErrorCodes.ValidationError, "The request is not valid; see errors.", e.Errors);
            case BillingValidationException e:
                var message = e.Message.Split(" (Parameter", 2)[0];
                return Problems.WriteAsync(context, 400, ErrorCodes.ValidationError, message, new Dictionary<string, string[]> { [JsonField(e.Field)] = [message] });
            case BillingNotFoundException e:
                return Problems.WriteAsync(context, 404, ErrorCodes.NotFound, e.Message);
            case InvalidStateTransitionException e:
                return Problems.WriteAsync(context, 409, ErrorCodes.InvalidStateTransition, e.Message);
            case DuplicateKeyException e:
                return Problems.WriteAsync(context, 409, ErrorCodes.Conflict, e.Message);
            case ConcurrencyConflictException:
                return Problems.WriteAsync(context, 409, ErrorCodes.Conflict, "The object was changed by another request at the same time; nothing was saved. Retry.");
            case BadHttpRequestException e:
                return WriteBadRequestAsync(context, e);
            default:
                return null;
        }
    }

    private static Task WriteBadRequestAsync(HttpContext context, BadHttpRequestException exception)
    {
        var status = exception.StatusCode is >= 400 and < 500 ? exception.StatusCode : 400;
        if (exception.InnerException is JsonException json)
        {
            var field = JsonPathToField(json.Path);
            var message = json.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "Unknown field." :
                json.Path is null or "$" ? "The body is not valid JSON." : "The value has the wrong type or format.";
            return Problems.WriteAsync(context, status, ErrorCodes.ValidationError, "The request body could not be read; see errors.", new Dictionary<string, string[]> { [field] = [message] });
        }

        if (status == StatusCodes.Status415UnsupportedMediaType)
        {
            return JsonContentTypeMiddleware.WriteAsync(context);
        }

        if (status == 413)
        {
            return RequestBodyLimitMiddleware.TooLargeAsync(context, null);
        }

        const string unreadable = "The request could not be read: send a JSON body with Content-Type: application/json.";
        return Problems.WriteAsync(context, status, ErrorCodes.ValidationError, unreadable, status == 400 ? new Dictionary<string, string[]> { ["body"] = [unreadable] } : null);
    }

    /// <summary><c>$.price.tiers[0].upTo</c> → <c>price.tiers[0].upTo</c>; <c>$</c> or nothing → <c>body</c>.</summary>
    internal static string JsonPathToField(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
        {
            return "body";
        }

        var field = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
        return field.Replace("['", ".", StringComparison.Ordinal).Replace("']", string.Empty, StringComparison.Ordinal).TrimStart('.');
    }

    /// <summary>The engine names fields in snake_case (<c>metered_prices[0].meter.key</c>); the API in camelCase.</summary>
    internal static string JsonField(string snake)
    {
        var builder = new StringBuilder(snake.Length);
        var upper = false;
        foreach (var c in snake)
        {
            if (c == '_')
            {
                upper = builder.Length > 0;
                continue;
            }

            builder.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }

        var field = builder.ToString();
        return field switch
        {
            "timeZoneId" => "timeZone",
            "plan" => "planId",
            "customer" => "customerId",
            "subscription" => "subscriptionId",
            "startingAfter" => "starting_after", // a query parameter: keeps its snake_case name
            _ => field.StartsWith("timeZone", StringComparison.Ordinal) ? "timeZone" : field,
        };
    }

    /// <summary><c>PastDue</c> → <c>past_due</c>.</summary>
    internal static string SnakeCase(string pascal)
    {
        var builder = new StringBuilder(pascal.Length + 4);
        for (var i = 0; i < pascal.Length; i++)
        {
            var c = pascal[i];
            if (char.IsUpper(c) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(c));
        }

        return builder.ToString();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Request {RequestId} {Method} {Path} failed")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string requestId, string method, string? path);
}
