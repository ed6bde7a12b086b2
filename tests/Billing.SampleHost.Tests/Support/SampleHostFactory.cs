using System.Net.Http.Headers;
using Billing.SampleHost.ApiKeys;
using Billing.Testing.Servers;
using Billing.Testing.Time;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.SampleHost.Tests.Support;

/// <summary>
/// The sample host in memory on a real SQLite file in its own temp directory, with a known bootstrap admin key and
/// a <see cref="FakeTimeProvider"/> as the real clock. One per test class (<c>IClassFixture</c>).
/// </summary>
public class SampleHostFactory : WebApplicationFactory<Program>
{
    public const string AdminKey = "sk_test_admin_0123456789abcdefghijklmnopqrstuv";

    private readonly HostDirectory? _ownDirectory;

    public SampleHostFactory()
        : this(null)
    {
    }

    /// <summary>A host on the database in <paramref name="directory"/> (kept on dispose), or in a new temp directory
    /// (deleted on dispose).</summary>
    protected SampleHostFactory(string? directory)
    {
        _ownDirectory = directory is null ? new HostDirectory() : null;
        Directory = directory ?? _ownDirectory!.Path;
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string DatabasePath => Path.Combine(Directory, "data", "billing.db");

    public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));

    public StringWriter Console { get; } = new();

    /// <summary>The bootstrap key to configure; null configures none (the host then makes and prints one).</summary>
    protected virtual string? BootstrapKey => AdminKey;

    /// <summary>Extra service changes for a test class.</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    /// <summary>A client with a bearer key (or none).</summary>
    public HttpClient Client(string? key = AdminKey)
    {
        var client = CreateClient();
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        builder.UseSetting("Billing:Database:Provider", "sqlite");
        builder.UseSetting("Billing:Database:ConnectionString", $"Data Source={DatabasePath}");
        builder.UseSetting("Billing:BootstrapApiKey", BootstrapKey ?? string.Empty);
        // Workers off unless a test class turns them on (UseSetting after this call), so tests stay deterministic.
        builder.UseSetting("Billing:Workers:BillingRun:Enabled", "false");
        builder.UseSetting("Billing:Workers:Outbox:Enabled", "false");

        // The limiter stays in the pipeline but never trips in functional tests (RateLimitTests set their own numbers).
        builder.UseSetting("Billing:RateLimit:PermitLimit", "1000000");
        builder.ConfigureTestServices(services =>
        {
            services.Replace(ServiceDescriptor.Singleton<TimeProvider>(Clock));
            services.Replace(ServiceDescriptor.Singleton(new BootstrapKeyOutput(Console)));
            ConfigureServices(services);
        });
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            _ownDirectory?.Dispose();
        }
    }
}

/// <summary>
/// A new temp directory for the database of hosts (<c>billing-samplehost-*</c>), deleted on dispose: declare it before
/// the hosts that share it so that it outlives them. Making one also deletes such directories left by killed runs.
/// </summary>
public sealed class HostDirectory : IDisposable
{
    /// <summary>The directory (it exists).</summary>
    public string Path { get; } = TempDirectories.Create("billing-samplehost-");

    /// <summary>Deletes the directory (where an open file holds it, not on Linux, SQLite's pools are cleared and it is retried).</summary>
    public void Dispose() => TempDirectories.Delete(Path, SqliteConnection.ClearAllPools);
}
