using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Billing.SampleHost.Composition;

/// <summary>
/// The OpenAPI description of API-key authentication: an HTTP bearer scheme <c>bearer</c> (<c>Authorization: Bearer
/// sk_…</c>) required by every <c>/v1</c> operation, and the <c>Retry-After</c> header of the 429 answer.
/// </summary>
internal static class OpenApiSecurity
{
    public const string SchemeName = "bearer";

    public static OpenApiOptions AddApiKeySecurity(this OpenApiOptions options) => options.AddDocumentTransformer((document, _, _) =>
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[SchemeName] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "sk_…",
            Description = "An API key: 'Authorization: Bearer sk_…'. Scopes: billing:read, billing:write (includes read), admin (includes both).",
        };

        foreach (var (path, item) in document.Paths)
        {
            if (!path.StartsWith("/v1/", StringComparison.Ordinal) && path != "/v1" || item.Operations is null)
            {
                continue;
            }

            foreach (var operation in item.Operations.Values)
            {
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SchemeName, document)] = [] });
                if (operation.Responses?.TryGetValue("429", out var tooMany) == true && tooMany is OpenApiResponse response)
                {
                    response.Description = "Too many requests for this API key (code rate_limited); retry after Retry-After seconds.";
                    response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                    response.Headers["Retry-After"] = new OpenApiHeader
                    {
                        Description = "Seconds until the key's next window.",
                        Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1" },
                    };
                }
            }
        }

        return Task.CompletedTask;
    });
}
