using Billing.SampleHost.Composition;
using Microsoft.AspNetCore.Http.Features;

namespace Billing.SampleHost.Http;

/// <summary>
/// Enforces <c>Billing:MaxRequestBodyBytes</c> (default 512 KiB) on every server, not only Kestrel: a declared
/// <c>Content-Length</c> over the limit is a 413 problem before anything is read; a chunked body is cut off when it
/// passes the limit and answered with the same 413.
/// </summary>
internal sealed class RequestBodyLimitMiddleware(RequestDelegate next, HardeningSettings settings)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var limit = settings.MaxRequestBodyBytes;
        if (context.Request.ContentLength > limit)
        {
            await TooLargeAsync(context, limit).ConfigureAwait(false);
            return;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit;
        }

        if (context.Request.ContentLength is not null || HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var original = context.Request.Body;
        await using var limited = new LimitedStream(original, limit);
        context.Request.Body = limited;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (BadHttpRequestException) when (limited.Exceeded && !context.Response.HasStarted)
        {
            context.Response.Clear();
        }
        finally
        {
            context.Request.Body = original;
        }

        if (limited.Exceeded && !context.Response.HasStarted)
        {
            // The body reader may have swallowed the exception (minimal APIs treat it as an I/O error).
            context.Response.Clear();
            await TooLargeAsync(context, limit).ConfigureAwait(false);
        }
    }

    /// <summary>The 413 problem: a <c>validation_error</c> on the field <c>body</c>.</summary>
    internal static Task TooLargeAsync(HttpContext context, long? limit)
    {
        var message = limit is { } bytes ? $"The request body is larger than {bytes} bytes." : "The request body is too large.";
        return Problems.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, ErrorCodes.ValidationError, message, new Dictionary<string, string[]> { ["body"] = [message] });
    }

    /// <summary>Reads through until the limit, then throws a 413 <see cref="BadHttpRequestException"/>.</summary>
    private sealed class LimitedStream(Stream inner, long limit) : Stream
    {
        private long _read;

        public bool Exceeded { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int read)
        {
            _read += read;
            if (_read > limit)
            {
                Exceeded = true;
                throw new BadHttpRequestException($"The request body is larger than {limit} bytes.", StatusCodes.Status413PayloadTooLarge);
            }

            return read;
        }
    }
}
