using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Idempotency;

/// <summary>
/// <c>Idempotency-Key</c> on POST requests (after authentication, so per API key): the first request with a key runs
/// and its response (status, content type, <c>Location</c>, body bytes) is kept 24 hours; a retry with the same key,
/// method, path and body gets that response again byte for byte, marked <c>Idempotent-Replayed: true</c>. The same
/// key with another request is a 422 <c>idempotency_key_reused</c>; a retry while the first is still running is a
/// 409 <c>conflict</c>. Client errors (4xx, including validation problems) are kept like successes; a server error
/// or a concurrency conflict is not (nothing changed), so a retry runs again.
/// </summary>
internal sealed class IdempotencyMiddleware(RequestDelegate next, IdempotencyStore store, TimeProvider time)
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    public const int MaxKeyLength = 255;

    public async Task InvokeAsync(HttpContext context)
    {
        if (!HttpMethods.IsPost(context.Request.Method)
            || context.GetEndpoint() is null
            || context.User.FindFirst(ClaimTypes.NameIdentifier)?.Value is not { } apiKeyId
            || !context.Request.Headers.TryGetValue(Header, out var values))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (values.Count != 1 || !IsWellFormed(values[0]))
        {
            throw RequestValidationException.For(Header, $"{Header} is 1 to {MaxKeyLength} visible ASCII characters (one header).");
        }

        var key = values[0]!;
        var hash = await HashRequestAsync(context.Request).ConfigureAwait(false);
        var claim = await store.ClaimAsync(apiKeyId, key, hash, time.GetUtcNow(), context.RequestAborted).ConfigureAwait(false);
        switch (claim)
        {
            case IdempotencyClaim.Mismatch:
                await Problems.WriteAsync(context, StatusCodes.Status422UnprocessableEntity, ErrorCodes.IdempotencyKeyReused, $"This {Header} was used with another request (method, path or body) in the last 24 hours; use a new key for a new request.").ConfigureAwait(false);
                return;
            case IdempotencyClaim.InProgress:
                await Problems.WriteAsync(context, StatusCodes.Status409Conflict, ErrorCodes.Conflict, $"A request with this {Header} is still in progress; retry when it has finished.").ConfigureAwait(false);
                return;
            case IdempotencyClaim.Completed completed:
                await ReplayAsync(context, completed.Response).ConfigureAwait(false);
                return;
        }

        await RunAndStoreAsync(context, apiKeyId, key).ConfigureAwait(false);
    }

    private async Task RunAndStoreAsync(HttpContext context, string apiKeyId, string key)
    {
        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        var keep = false;
        try
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is not ConcurrencyConflictException and not OperationCanceledException && !context.Response.HasStarted)
            {
                // A client error is the answer to this request: keep it like a success. Anything else propagates.
                context.Response.Clear();
                var written = ErrorHandlingMiddleware.WriteClientErrorAsync(context, exception);
                if (written is null)
                {
                    throw;
                }

                await written.ConfigureAwait(false);
            }

            if (context.Response.StatusCode < 500)
            {
                var response = new StoredResponse(context.Response.StatusCode, context.Response.ContentType, context.Response.Headers.Location.FirstOrDefault(), buffer.ToArray());
                await store.CompleteAsync(apiKeyId, key, response, CancellationToken.None).ConfigureAwait(false);
                keep = true;
            }
        }
        finally
        {
            context.Response.Body = original;
            if (!keep)
            {
                await store.ReleaseAsync(apiKeyId, key, CancellationToken.None).ConfigureAwait(false);
            }
        }

        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted).ConfigureAwait(false);
    }

    private static async Task ReplayAsync(HttpContext context, StoredResponse response)
    {
        context.Response.StatusCode = response.Status;
        if (response.ContentType is not null)
        {
            context.Response.ContentType = response.ContentType;
        }

        if (response.Location is not null)
        {
            context.Response.Headers.Location = response.Location;
        }

        context.Response.Headers[ReplayedHeader] = "true";
        context.Response.ContentLength = response.Body.Length;
        await context.Response.Body.WriteAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>SHA-256 over method, path, query and body bytes.</summary>
    private static async Task<string> HashRequestAsync(HttpRequest request)
    {
        request.EnableBuffering();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"{request.Method} {request.Path}{request.QueryString}\n"));
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(chunk, 0, read);
        }

        request.Body.Position = 0;
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    internal static bool IsWellFormed(string? key) => key is { Length: >= 1 and <= MaxKeyLength } && key.All(c => c is >= '!' and <= '~');
}
