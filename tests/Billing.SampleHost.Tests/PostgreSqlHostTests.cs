using System.Net;
using System.Text;
using Billing.Testing.Servers;
using Billing.SampleHost.Tests.Support;
using Microsoft.AspNetCore.Hosting;

namespace Billing.SampleHost.Tests;

/// <summary>The sample host on a fresh database of the shared local PostgreSQL server (started from the local
/// binaries by <see cref="LocalPostgresServer"/>).</summary>
public sealed class PostgreSqlHostFactory : SampleHostFactory, IAsyncLifetime
{
    private string? _connectionString;

    public async Task InitializeAsync()
    {
        var server = await LocalPostgresServer.SharedAsync();
        _connectionString = await server.CreateDatabaseAsync("samplehost");
    }

    Task IAsyncLifetime.DisposeAsync() => Task.CompletedTask;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:Database:Provider", "postgresql");
        builder.UseSetting("Billing:Database:ConnectionString", _connectionString ?? throw new InvalidOperationException("The database is not created yet."));
    }
}

public sealed class PostgreSqlHostTests(PostgreSqlHostFactory host) : IClassFixture<PostgreSqlHostFactory>
{
    [Fact]
    public async Task Idempotency_lists_with_filters_and_invoices_work_on_postgresql()
    {
        var client = host.Client();
        var plan = (await client.Post("/v1/plans", Api.FlatPlan())).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod = "pm_card_visa" }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();

        var json = $$"""{"customerId":"{{customer}}","planId":"{{plan}}"}""";
        async Task<(HttpStatusCode Status, string Body, bool Replayed)> Subscribe(string body, string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/subscriptions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await client.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Contains("Idempotent-Replayed"));
        }

        var first = await Subscribe(json, "pg-1");
        Assert.Equal(HttpStatusCode.Created, first.Status);
        var again = await Subscribe(json, "pg-1");
        Assert.Equal((HttpStatusCode.Created, first.Body, true), again);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await Subscribe(json.Replace("}", ",\"quantity\":2}", StringComparison.Ordinal), "pg-1")).Status);

        var subs = (await client.Get($"/v1/subscriptions?customer={customer}&status=active")).Ok().Data;
        Assert.Equal(1, subs.GetArrayLength());
        var sub = subs[0];
        var invoices = (await client.Get($"/v1/invoices?customer={customer}&subscription={sub.GetProperty("id").GetString()}&status=paid")).Ok().Data;
        Assert.Equal(sub.GetProperty("latestInvoiceId").GetString(), invoices[0].GetProperty("id").GetString());
        Assert.Equal(2000, invoices[0].GetProperty("lines")[0].GetProperty("amount").GetInt64());
        Assert.Equal(0, (await client.Get($"/v1/invoices?customer={customer}&status=void")).Ok().Data.GetArrayLength());
    }
}
