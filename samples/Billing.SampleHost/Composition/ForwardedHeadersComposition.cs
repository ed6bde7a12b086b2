using System.Net;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;

namespace Billing.SampleHost.Composition;

/// <summary>
/// <c>Billing:ForwardedHeaders</c>: the reverse proxies whose <c>X-Forwarded-For</c> and <c>X-Forwarded-Proto</c>
/// headers the host believes. Empty (the default) ignores the headers, so a client cannot choose the address it is
/// rate limited by; with proxies or networks configured, a request that arrives from one of them takes its client
/// address and scheme from the headers (the last hop only), before the rate limiter partitions by address.
/// </summary>
internal sealed class ForwardedHeadersSettings
{
    public const string Section = "ForwardedHeaders";

    /// <summary>Addresses of trusted proxies, such as <c>10.0.0.5</c> or <c>::1</c>.</summary>
    public List<string> KnownProxies { get; set; } = [];

    /// <summary>Networks of trusted proxies in CIDR notation, such as <c>10.0.0.0/8</c> or <c>fd00::/8</c>.</summary>
    public List<string> KnownNetworks { get; set; } = [];

    /// <summary>Whether any proxy is trusted (otherwise the headers are ignored).</summary>
    public bool Enabled => KnownProxies.Count > 0 || KnownNetworks.Count > 0;

    /// <summary>The problems with these settings (empty when valid), each naming the setting.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        for (var i = 0; i < KnownProxies.Count; i++)
        {
            if (!IPAddress.TryParse(KnownProxies[i]?.Trim() ?? string.Empty, out _))
            {
                problems.Add($"Billing:ForwardedHeaders:KnownProxies:{i} must be an IP address such as 10.0.0.5 or ::1, not '{KnownProxies[i]}'.");
            }
        }

        for (var i = 0; i < KnownNetworks.Count; i++)
        {
            if (!IsNetwork(KnownNetworks[i]?.Trim() ?? string.Empty))
            {
                problems.Add($"Billing:ForwardedHeaders:KnownNetworks:{i} must be a network in CIDR notation such as 10.0.0.0/8 (no host bits set), not '{KnownNetworks[i]}'.");
            }
        }

        return problems;
    }

    /// <summary>A CIDR network whose address has no bits set past the prefix (<c>10.0.0.1/8</c> is a typo, not a network).</summary>
    private static bool IsNetwork(string value) =>
        System.Net.IPNetwork.TryParse(value, out var network)
        && IPAddress.TryParse(value.Split('/')[0], out var address)
        && network.BaseAddress.Equals(address);

    /// <summary>Trusts exactly the configured proxies and networks (ASP.NET's loopback defaults are removed).</summary>
    public void Apply(ForwardedHeadersOptions options)
    {
        options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var proxy in KnownProxies)
        {
            options.KnownProxies.Add(IPAddress.Parse(proxy.Trim()));
        }

        foreach (var network in KnownNetworks)
        {
            options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network.Trim()));
        }
    }
}

/// <summary>Validates <see cref="ForwardedHeadersSettings"/> when the host starts.</summary>
internal sealed class ForwardedHeadersSettingsValidator : IValidateOptions<ForwardedHeadersSettings>
{
    public ValidateOptionsResult Validate(string? name, ForwardedHeadersSettings options) =>
        options.Validate() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
}

/// <summary>Registers and applies the opt-in forwarded-headers support.</summary>
internal static class ForwardedHeadersComposition
{
    public static WebApplicationBuilder AddForwardedHeaders(this WebApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(SampleHostOptions.Section).GetSection(ForwardedHeadersSettings.Section);
        builder.Services.AddSingleton<IValidateOptions<ForwardedHeadersSettings>, ForwardedHeadersSettingsValidator>();
        builder.Services.AddOptions<ForwardedHeadersSettings>().Bind(section).ValidateOnStart();
        builder.Services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<ForwardedHeadersSettings>>((options, settings) => settings.Value.Apply(options));
        return builder;
    }

    /// <summary>
    /// ASP.NET's forwarded-headers middleware, first in the pipeline (so the rate limiter, logs and everything else
    /// see the client's address), only when proxies are configured: without known proxies the middleware would
    /// believe any sender.
    /// </summary>
    public static WebApplication UseHostForwardedHeaders(this WebApplication app)
    {
        var configured = app.Configuration.GetSection(SampleHostOptions.Section).GetSection(ForwardedHeadersSettings.Section).Get<ForwardedHeadersSettings>();
        if (configured?.Enabled == true)
        {
            app.UseForwardedHeaders();
        }

        return app;
    }
}
