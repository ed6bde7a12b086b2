namespace Billing.SampleHost.Http;

/// <summary>
/// Every POST, PUT and PATCH endpoint takes JSON or no body at all: a request that carries a <c>Content-Type</c> other
/// than JSON (<c>application/json</c> or <c>application/*+json</c>), or a body without a <c>Content-Type</c>, is a 415
/// <c>validation_error</c> whose <c>errors</c> name the <c>Content-Type</c> header, before the endpoint or the
/// idempotency middleware runs, so nothing is changed or stored (also for endpoints that read no body, such as
/// <c>POST /v1/plans/{id}/archive</c>). A POST without a body and without a <c>Content-Type</c> passes.
/// </summary>
internal sealed class JsonContentTypeMiddleware(RequestDelegate next)
{
    public const string Field = "Content-Type";
    public const string Message = "Send the body as JSON with Content-Type: application/json (or no body and no Content-Type).";

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (context.GetEndpoint() is null || !(HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method)))
        {
            return next(context);
        }

        var unsupported = request.ContentType is not null
            ? !request.HasJsonContentType()
            : request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);
        return unsupported ? WriteAsync(context) : next(context);
    }

    /// <summary>The 415 problem (also for a 415 the framework raises itself).</summary>
    public static Task WriteAsync(HttpContext context) =>
        Problems.WriteAsync(context, StatusCodes.Status415UnsupportedMediaType, ErrorCodes.ValidationError, "The request body must be JSON; see errors.", new Dictionary<string, string[]> { [Field] = [Message] });
}
