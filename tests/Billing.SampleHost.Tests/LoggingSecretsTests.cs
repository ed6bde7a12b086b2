using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Billing.SampleHost.Tests;

/// <summary>Every log line (message, scopes, exception) at every level, from every category.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public ConcurrentQueue<string> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => provider._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = new StringBuilder().Append(logLevel).Append(' ').Append(category).Append(": ").Append(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
            {
                foreach (var (key, value) in values)
                {
                    line.Append(" |").Append(key).Append('=').Append(value);
                }
            }

            provider._scopes.ForEachScope((scope, builder) => builder.Append(" [scope ").Append(scope is IEnumerable<KeyValuePair<string, object>> kv ? string.Join(",", kv.Select(p => $"{p.Key}={p.Value}")) : scope).Append(']'), line);
            if (exception is not null)
            {
                line.Append(" ! ").Append(exception);
            }

            provider.Lines.Enqueue(line.ToString());
        }
    }
}

public sealed partial class LoggingSecretsTests
{
    private static readonly string[] ReadScope = ["billing:read"];

    [Fact]
    public async Task No_log_line_holds_a_secret_or_the_authorization_header()
    {
        var capture = new CapturingLoggerProvider();
        using var directory = new HostDirectory();
        using var host = new LoggedHostFactory(directory.Path, capture);
        host.CreateClient().Dispose();

        // The bootstrap key went to the console (by design), and only there.
        var bootstrap = Assert.Single(SecretPattern().Matches(host.Console.ToString()).Select(m => m.Value).Distinct());
        var admin = host.Client(bootstrap);

        // Keys made and used: success, 401 (unknown, malformed, revoked), 403, a 404 and a validation problem.
        var created = (await admin.Post("/v1/api_keys", new { name = "reader", scopes = ReadScope })).Ok(HttpStatusCode.Created);
        var reader = created.Data.GetProperty("secret").GetString()!;
        var readerId = created.Data.GetProperty("id").GetString()!;
        (await host.Client(reader).Get("/v1/plans")).Ok();
        (await host.Client(reader).Post("/v1/plans", Api.FlatPlan())).Problem(HttpStatusCode.Forbidden, "forbidden");
        var unknown = "sk_" + new string('Q', 40);
        (await host.Client(unknown).Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        using (var malformed = new HttpRequestMessage(HttpMethod.Get, "/v1/plans"))
        {
            malformed.Headers.TryAddWithoutValidation("Authorization", "Basic c2tfc2VjcmV0X3Bhc3N3b3Jk");
            using var response = await host.CreateClient().SendAsync(malformed);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        (await admin.Post($"/v1/api_keys/{readerId}/revoke")).Ok();
        (await host.Client(reader).Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        (await admin.Get("/v1/plans/plan_missing")).Problem(HttpStatusCode.NotFound, "not_found");
        (await admin.Post("/v1/plans", "{\"name\": 1}")).ValidationError("name");
        (await admin.Post("/v1/customers", "{not json")).Problem(HttpStatusCode.BadRequest, "validation_error");
        await host.DisposeAsync();

        var lines = capture.Lines.ToArray();
        Assert.NotEmpty(lines);
        Assert.Contains(lines, l => l.Contains("bootstrap admin API key", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("was not authenticated", StringComparison.Ordinal) || l.Contains("ApiKey", StringComparison.Ordinal));
        foreach (var line in lines)
        {
            foreach (var secret in new[] { bootstrap, reader, unknown, SampleHostFactory.AdminKey, "c2tfc2VjcmV0X3Bhc3N3b3Jk" })
            {
                Assert.DoesNotContain(secret, line, StringComparison.Ordinal);
            }

            Assert.DoesNotMatch(AuthorizationPattern(), line);
            Assert.DoesNotMatch(SecretPattern(), line);
        }
    }

    [GeneratedRegex(@"(Bearer|Basic)\s+[A-Za-z0-9_+/=]{8,}", RegexOptions.IgnoreCase)]
    private static partial Regex AuthorizationPattern();

    [GeneratedRegex(@"\bsk_[A-Za-z0-9_]{29,}")]
    private static partial Regex SecretPattern();

    /// <summary>No configured bootstrap key (the host prints one), every log level captured.</summary>
    private sealed class LoggedHostFactory(string directory, CapturingLoggerProvider capture) : SampleHostFactory(directory)
    {
        protected override string? BootstrapKey => null;

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureLogging(logging => logging
                .AddProvider(capture)
                .AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace)
                .SetMinimumLevel(LogLevel.Trace));
        }
    }
}
