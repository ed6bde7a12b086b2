using System.Net;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.SampleHost.Tests;

/// <summary>
/// Every endpoint of the app (from its <see cref="EndpointDataSource"/>): /v1 answers 401 without a key and with an
/// unknown key, a read-only key gets 403 on every write and on the admin-only API keys, and health needs no key.
/// </summary>
public sealed class EndpointAuthAuditTests(SampleHostFactory host) : IClassFixture<SampleHostFactory>
{
    /// <summary>POSTs that change nothing and so need only billing:read.</summary>
    private static readonly string[] ReadOnlyPosts = ["POST /v1/subscriptions/{id}/change_preview"];

    [Fact]
    public async Task Every_v1_endpoint_needs_a_key_and_writes_need_the_write_scope()
    {
        var reader = host.Client(await host.Client().CreateKey("billing:read"));
        var writer = host.Client(await host.Client().CreateKey("billing:write"));
        var anonymous = host.Client(null);
        var unknown = host.Client("sk_" + new string('Z', 40));
        var endpoints = Endpoints();
        Assert.True(endpoints.Count(e => e.Path.StartsWith("/v1/", StringComparison.Ordinal)) >= 39, string.Join(", ", endpoints));

        Assert.Equal(ReadOnlyPosts, endpoints.Where(e => e.Method != HttpMethod.Get && e.Policy == "billing:read").Select(e => $"{e.Method} {e.Route}"));
        foreach (var (method, path, route, policy) in endpoints)
        {
            var name = $"{method} {path}";
            var body = method == HttpMethod.Get ? null : "{}";
            if (!path.StartsWith("/v1/", StringComparison.Ordinal))
            {
                var open = await anonymous.Send(method, path, body);
                Assert.True((int)open.Status is 200 or 503, $"{name} without a key: {(int)open.Status} {open.Body}");
                continue;
            }

            (await anonymous.Send(method, path, body)).Problem(HttpStatusCode.Unauthorized, "authentication_required");
            (await unknown.Send(method, path, body)).Problem(HttpStatusCode.Unauthorized, "authentication_required");

            var adminOnly = path.StartsWith("/v1/api_keys", StringComparison.Ordinal);
            var write = method != HttpMethod.Get && !ReadOnlyPosts.Contains($"{method} {route}");
            Assert.Equal(adminOnly ? "admin" : write ? "billing:write" : "billing:read", policy);
            var asReader = await reader.Send(method, path, body);
            if (write || adminOnly)
            {
                var problem = asReader.Problem(HttpStatusCode.Forbidden, "forbidden");
                Assert.Contains(adminOnly ? "admin" : "billing:write", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            }
            else
            {
                Assert.True(asReader.Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{name} as reader: {(int)asReader.Status} {asReader.Body}");
            }

            if (adminOnly)
            {
                (await writer.Send(method, path, body)).Problem(HttpStatusCode.Forbidden, "forbidden");
            }
        }
    }

    /// <summary>Method and a concrete path (route parameters filled with ids that do not exist) of every endpoint.</summary>
    private List<(HttpMethod Method, string Path, string Route, string? Policy)> Endpoints() =>
    [
        .. host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText is { } raw && !raw.StartsWith("/openapi", StringComparison.Ordinal))
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []).Select(m => (
                Method: new HttpMethod(m),
                Route: "/" + (e.RoutePattern.RawText ?? string.Empty).Trim('/'),
                Policy: e.Metadata.GetOrderedMetadata<Microsoft.AspNetCore.Authorization.IAuthorizeData>().Select(a => a.Policy).LastOrDefault(p => p is not null),
                Segments: e.RoutePattern.PathSegments)))
            .Select(x => (x.Method, Path: ConcretePath(x.Segments), x.Route, x.Policy))
            .Distinct(),
    ];

    private static string ConcretePath(IReadOnlyList<Microsoft.AspNetCore.Routing.Patterns.RoutePatternPathSegment> segments) =>
        "/" + string.Join('/', segments.Select(s => string.Concat(s.Parts.Select(p => p switch
        {
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart l => l.Content,
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart p2 => p2.Name + "_missing",
            _ => "x",
        }))));
}
