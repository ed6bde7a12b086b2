using System.Net;
using Billing.SampleHost.ApiKeys;
using Billing.SampleHost.Composition;
using Billing.SampleHost.Data;
using Billing.SampleHost.Tests.Support;
using Billing.Testing.Servers;
using Billing.Testing.Time;
using Microsoft.AspNetCore.Hosting;

namespace Billing.SampleHost.Tests;

/// <summary>The authentication read of API keys (<see cref="ApiKeyStore.AuthenticateAsync"/>): rows reused for
/// <c>Billing:ApiKeys:CacheDuration</c>, revocation through this instance and expiry immediate, revocation elsewhere
/// seen within the duration, last-used written once a minute.</summary>
public sealed class ApiKeyCacheTests : IAsyncLifetime, IDisposable
{
    private const string Secret = "sk_cache_0123456789abcdefghijklmnopqrstuvwxyz";
    private static readonly string[] ReadScope = ["billing:read"];
    private readonly HostDirectory _directory = new();
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly List<HostDatabase> _databases = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var database in _databases)
        {
            await database.DisposeAsync();
        }
    }

    /// <summary>After <see cref="DisposeAsync"/> (xunit calls both).</summary>
    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task A_revocation_through_another_instance_is_seen_within_the_cache_duration_and_through_this_one_at_once()
    {
        var connection = "Data Source=" + Path.Combine(_directory.Path, "keys.db");
        var a = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.FromSeconds(1));
        var b = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.FromSeconds(1));
        await RevocationBoundsAsync(a, b);
    }

    [Fact]
    public async Task A_revocation_through_another_instance_is_seen_within_the_cache_duration_on_postgresql()
    {
        var server = await LocalPostgresServer.SharedAsync();
        var connection = await server.CreateDatabaseAsync("apikeycache");
        var a = await StoreAsync(HostDatabase.ForPostgreSql(connection, "public"), TimeSpan.FromSeconds(1));
        var b = await StoreAsync(HostDatabase.ForPostgreSql(connection, "public"), TimeSpan.FromSeconds(1));
        await RevocationBoundsAsync(a, b);
    }

    [Fact]
    public async Task Without_a_cache_duration_every_authentication_reads_the_row()
    {
        var connection = "Data Source=" + Path.Combine(_directory.Path, "keys.db");
        var a = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.Zero);
        var b = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.Zero);
        var key = await a.CreateAsync(Secret, "k", [Scopes.Read], _clock.GetUtcNow(), null, default);
        Assert.Null((await a.AuthenticateAsync(Secret, default))!.RevokedAt);
        Assert.True(await b.RevokeAsync(key.Id, _clock.GetUtcNow(), default));
        Assert.NotNull((await a.AuthenticateAsync(Secret, default))!.RevokedAt);
    }

    [Fact]
    public async Task Unknown_keys_are_not_cached_and_a_wrong_secret_with_a_cached_prefix_is_refused()
    {
        var connection = "Data Source=" + Path.Combine(_directory.Path, "keys.db");
        var a = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.FromMinutes(1));
        var b = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.FromMinutes(1));

        // Not found on A, then created through B: A finds it at once.
        Assert.Null(await a.AuthenticateAsync(Secret, default));
        var key = await b.CreateAsync(Secret, "k", [Scopes.Read], _clock.GetUtcNow(), null, default);
        Assert.Equal(key.Id, (await a.AuthenticateAsync(Secret, default))?.Id);

        // Same prefix (the first 12 characters), another secret: the cached row does not let it in.
        var forged = Secret[..12] + new string('x', Secret.Length - 12);
        Assert.Null(await a.AuthenticateAsync(forged, default));
        Assert.Null(await a.AuthenticateAsync("sk_short", default));
        Assert.Equal(key.Id, (await a.AuthenticateAsync(Secret, default))?.Id);
    }

    [Fact]
    public async Task Concurrent_authentications_share_reads_and_a_revocation_during_them_is_not_lost()
    {
        var connection = "Data Source=" + Path.Combine(_directory.Path, "keys.db");
        var a = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.FromMinutes(1));
        var key = await a.CreateAsync(Secret, "k", [Scopes.Read], _clock.GetUtcNow(), null, default);
        var before = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () => await a.AuthenticateAsync(Secret, default))));
        Assert.All(before, k => Assert.Equal((key.Id, (DateTimeOffset?)null), (k!.Id, k.RevokedAt)));

        // Reads racing a revocation: whatever they return, every authentication that starts after it sees it.
        var racing = Enumerable.Range(0, 64).Select(_ => Task.Run(async () => await a.AuthenticateAsync(Secret, default))).ToArray();
        Assert.True(await a.RevokeAsync(key.Id, _clock.GetUtcNow(), default));
        var after = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () => await a.AuthenticateAsync(Secret, default))));
        Assert.All(after, k => Assert.NotNull(k!.RevokedAt));
        await Task.WhenAll(racing);
    }

    [Fact]
    public async Task Last_use_is_written_once_a_minute_per_instance_whatever_the_concurrency()
    {
        var connection = "Data Source=" + Path.Combine(_directory.Path, "keys.db");
        var a = await StoreAsync(HostDatabase.ForSqlite(connection), TimeSpan.FromMinutes(1));
        var start = _clock.GetUtcNow();
        var key = await a.CreateAsync(Secret, "k", [Scopes.Read], start, null, default);
        var cached = (await a.AuthenticateAsync(Secret, default))!;
        Assert.Null(cached.LastUsedAt);

        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() => a.TouchIfDueAsync(cached, start, default))));
        Assert.Equal(start, (await a.GetAsync(key.Id, default))!.LastUsedAt);

        // The cached row still says "never used"; a request 30 s later does not write again (it would move the time).
        _clock.Advance(TimeSpan.FromSeconds(30));
        await a.TouchIfDueAsync(cached, _clock.GetUtcNow(), default);
        Assert.Equal(start, (await a.GetAsync(key.Id, default))!.LastUsedAt);

        // A minute after the write, the next request writes.
        _clock.Advance(TimeSpan.FromSeconds(30));
        await a.TouchIfDueAsync(cached, _clock.GetUtcNow(), default);
        Assert.Equal(_clock.GetUtcNow(), (await a.GetAsync(key.Id, default))!.LastUsedAt);
    }

    [Theory]
    [InlineData("-00:00:01")]
    [InlineData("00:01:00.001")]
    public void An_out_of_range_cache_duration_stops_the_start(string value)
    {
        using var factory = new CacheHostFactory(value);
        var error = Assert.Throws<InvalidOperationException>(() => factory.CreateClient());
        Assert.Contains("Billing:ApiKeys:CacheDuration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Through_the_host_a_cached_key_is_refused_at_once_when_revoked_or_expired()
    {
        await using var host = new CacheHostFactory("00:01:00");
        var admin = host.Client();
        var created = (await admin.Post("/v1/api_keys", new { name = "cached", scopes = ReadScope, expiresAt = host.Clock.GetUtcNow().AddSeconds(30) }))
            .Ok(HttpStatusCode.Created).Data;
        var client = host.Client(created.GetProperty("secret").GetString());
        for (var i = 0; i < 5; i++)
        {
            (await client.Get("/v1/plans")).Ok();
        }

        // Expiry inside the cache duration: refused the moment it passes.
        host.Clock.Advance(TimeSpan.FromSeconds(29));
        (await client.Get("/v1/plans")).Ok();
        host.Clock.Advance(TimeSpan.FromSeconds(1));
        var expired = (await client.Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        Assert.Contains("expired", expired.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Revocation of a key used a moment ago (its row cached for a minute): refused on the next request.
        var other = (await admin.Post("/v1/api_keys", new { name = "cached 2", scopes = ReadScope })).Ok(HttpStatusCode.Created).Data;
        var second = host.Client(other.GetProperty("secret").GetString());
        (await second.Get("/v1/plans")).Ok();
        (await second.Get("/v1/plans")).Ok();
        (await admin.Post($"/v1/api_keys/{other.GetProperty("id").GetString()}/revoke")).Ok();
        var revoked = (await second.Get("/v1/plans")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
        Assert.Contains("revoked", revoked.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    private async Task RevocationBoundsAsync(ApiKeyStore a, ApiKeyStore b)
    {
        var key = await a.CreateAsync(Secret, "k", [Scopes.Read], _clock.GetUtcNow(), null, default);
        Assert.Null((await a.AuthenticateAsync(Secret, default))!.RevokedAt);

        // Revoked through B: A may go on with the row it read for less than the cache duration, never longer.
        Assert.True(await b.RevokeAsync(key.Id, _clock.GetUtcNow(), default));
        Assert.NotNull((await b.AuthenticateAsync(Secret, default))!.RevokedAt);
        _clock.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Null((await a.AuthenticateAsync(Secret, default))!.RevokedAt);
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.NotNull((await a.AuthenticateAsync(Secret, default))!.RevokedAt);

        // Revoked through A (a second revoke changes nothing but still drops what A read): at once.
        var other = await a.CreateAsync("sk_cache_other_0123456789abcdefghijklmnopqrstuvwxyz", "k2", [Scopes.Read], _clock.GetUtcNow(), null, default);
        Assert.Null((await a.AuthenticateAsync("sk_cache_other_0123456789abcdefghijklmnopqrstuvwxyz", default))!.RevokedAt);
        Assert.True(await a.RevokeAsync(other.Id, _clock.GetUtcNow(), default));
        Assert.NotNull((await a.AuthenticateAsync("sk_cache_other_0123456789abcdefghijklmnopqrstuvwxyz", default))!.RevokedAt);
    }

    private async Task<ApiKeyStore> StoreAsync(HostDatabase database, TimeSpan cacheDuration)
    {
        _databases.Add(database);
        var store = new ApiKeyStore(database, _clock, new ApiKeySettings { CacheDuration = cacheDuration });
        await store.EnsureSchemaAsync(default);
        return store;
    }

    private sealed class CacheHostFactory(string cacheDuration) : SampleHostFactory
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.UseSetting("Billing:ApiKeys:CacheDuration", cacheDuration);
        }
    }
}
