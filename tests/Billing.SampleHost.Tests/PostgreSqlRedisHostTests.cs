using System.Net;
using Billing.SampleHost.Tests.Support;
using Billing.Testing.Servers;
using Microsoft.AspNetCore.Hosting;

namespace Billing.SampleHost.Tests;

/// <summary>The sample host as it is scaled out: a fresh database on the shared local PostgreSQL server and usage
/// counters on its own local redis-server (both started from the machine's binaries by Billing.Testing).</summary>
public sealed class PostgreSqlRedisHostFactory : SampleHostFactory, IAsyncLifetime
{
    private string? _connectionString;
    private LocalRedisServer? _redis;

    public LocalRedisServer Redis => _redis ?? throw new InvalidOperationException("Redis is not started yet.");

    public async Task InitializeAsync()
    {
        var postgres = await LocalPostgresServer.SharedAsync();
        _connectionString = await postgres.CreateDatabaseAsync("samplehost_redis");
        _redis = await LocalRedisServer.StartAsync();
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Billing:Database:Provider", "postgresql");
        builder.UseSetting("Billing:Database:ConnectionString", _connectionString ?? throw new InvalidOperationException("The database is not created yet."));
        builder.UseSetting("Billing:Redis:Configuration", Redis.ConfigurationString);
    }
}

public sealed class PostgreSqlRedisHostTests(PostgreSqlRedisHostFactory host) : IClassFixture<PostgreSqlRedisHostFactory>
{
    [Fact]
    public async Task Ready_with_both_checks_and_a_metered_journey_counts_in_redis()
    {
        var ready = (await host.CreateClient().Get("/health/ready")).Ok();
        Assert.Equal("healthy", ready.Json.GetProperty("status").GetString());
        var checks = ready.Json.GetProperty("checks");
        Assert.Equal("healthy", checks.GetProperty("database").GetProperty("status").GetString());
        Assert.Equal("healthy", checks.GetProperty("redis").GetProperty("status").GetString());

        var client = host.Client();
        var plan = (await client.Post("/v1/plans", new
        {
            name = "Metered",
            currency = "USD",
            price = new { model = "flat", amount = 1000 },
            interval = new { unit = "month" },
            meteredPrices = new[] { new { meter = new { key = "api_calls" }, price = new { model = "per_unit", unitAmount = 3 } } },
        })).Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString();
        var customer = (await client.Post("/v1/customers", new { name = "Ada", email = "ada@example.com", currency = "USD", paymentMethod = "pm_card_visa" }))
            .Ok(HttpStatusCode.Created).Data.GetProperty("id").GetString()!;
        var sub = (await client.Post("/v1/subscriptions", new { customerId = customer, planId = plan })).Ok(HttpStatusCode.Created).Data;
        var subId = sub.GetProperty("id").GetString();
        var periodStart = sub.GetProperty("currentPeriod").GetProperty("start").GetDateTimeOffset();

        var batch = new
        {
            events = new[]
            {
                new { customerId = customer, meter = "api_calls", quantity = 2, idempotencyKey = "pg-redis-1" },
                new { customerId = customer, meter = "api_calls", quantity = 3, idempotencyKey = "pg-redis-2" },
                new { customerId = customer, meter = "api_calls", quantity = 5, idempotencyKey = "pg-redis-3" },
            },
        };
        var first = (await client.Post("/v1/usage/batch", batch)).Ok().Data;
        Assert.Equal(["accepted", "accepted", "accepted"], first.EnumerateArray().Select(r => r.GetProperty("status").GetString()));
        Assert.Equal(10, first[2].GetProperty("total").GetInt64());

        // The same batch again (a client retry): every event is a duplicate, nothing is counted twice.
        var again = (await client.Post("/v1/usage/batch", batch)).Ok().Data;
        Assert.Equal(["duplicate", "duplicate", "duplicate"], again.EnumerateArray().Select(r => r.GetProperty("status").GetString()));

        var summary = (await client.Get($"/v1/usage/summary?subscription={subId}")).Ok().Data;
        var meter = Assert.Single(summary.GetProperty("meters").EnumerateArray());
        Assert.Equal("api_calls", meter.GetProperty("meter").GetString());
        Assert.Equal(10, meter.GetProperty("total").GetInt64());
        Assert.Equal(10, meter.GetProperty("counterTotal").GetInt64());

        // The counter really is in Redis (key layout of Billing.Redis: {prefix}:{g<customer group>}:c:{UTC day of the period
        // start}, one hash per customer group and day, the field the exact period start (Unix seconds, '.' and 7 digits of
        // fraction when it has one), ':', the customer's UTF-8 length, ':', the customer and the meter).
        var tag = $"{System.Text.Encoding.UTF8.GetByteCount(customer)}:{customer}";
        var sinceEpoch = periodStart.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var day = sinceEpoch / TimeSpan.TicksPerDay;
        var (seconds, fraction) = Math.DivRem(sinceEpoch, TimeSpan.TicksPerSecond);
        var period = fraction == 0 ? $"{seconds}" : $"{seconds}.{fraction:D7}";
        var counterHashes = ((object?[])(await host.Redis.ExecuteAsync("KEYS", $"billing:{{g*}}:c:{day}"))!).Cast<string>().ToArray();
        var values = new List<string>();
        foreach (var counterHash in counterHashes)
        {
            if (await host.Redis.ExecuteAsync("HGET", counterHash, $"{period}:{tag}api_calls") is string value)
            {
                values.Add(value);
            }
        }

        Assert.StartsWith("10:", Assert.Single(values), StringComparison.Ordinal); // total:expiry
        // The idempotency keys are fields of the customer group's hash of the current generation ({prefix}:{g…}:i:{n}).
        var entries = new List<string>();
        foreach (var hash in ((object?[])(await host.Redis.ExecuteAsync("KEYS", "billing:{g*}:i:*"))!).Cast<string>())
        {
            if (await host.Redis.ExecuteAsync("HGET", hash, tag + "pg-redis-2") is string entry)
            {
                entries.Add(entry);
            }
        }

        Assert.StartsWith("5:", Assert.Single(entries), StringComparison.Ordinal);
    }
}
