using System.Net;
using System.Text.RegularExpressions;
using Billing.SampleHost.Tests.Support;

namespace Billing.SampleHost.Tests;

public sealed partial class BootstrapTests
{
    [Fact]
    public async Task A_fresh_database_gets_an_admin_key_printed_once()
    {
        using var directory = new HostDirectory();
        using var first = new UnconfiguredHostFactory(directory.Path);
        first.CreateClient().Dispose();
        var printed = SecretPattern().Matches(first.Console.ToString()).Select(m => m.Value).Distinct().ToList();
        var secret = Assert.Single(printed);
        (await first.Client(secret).Get("/v1/api_keys")).Ok();
        await first.DisposeAsync();

        // Same database, second start: the key is still there and nothing is printed.
        using var second = new UnconfiguredHostFactory(directory.Path);
        second.CreateClient().Dispose();
        Assert.Empty(SecretPattern().Matches(second.Console.ToString()));
        var keys = (await second.Client(secret).Get("/v1/api_keys")).Ok();
        Assert.Equal(1, keys.Data.GetArrayLength());
        Assert.Equal("bootstrap", keys.Data[0].GetProperty("name").GetString());
        Assert.Equal(["admin"], keys.Data[0].GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        await second.DisposeAsync();
    }

    [Fact]
    public async Task A_configured_key_is_created_and_nothing_is_printed()
    {
        using var host = new SampleHostFactory();
        var keys = (await host.Client().Get("/v1/api_keys")).Ok();
        Assert.Equal(SampleHostFactory.AdminKey[..12], keys.Data[0].GetProperty("prefix").GetString());
        Assert.Empty(SecretPattern().Matches(host.Console.ToString()));
        (await host.Client("sk_test_admin_0123456789abcdefghijklmnopqrstuX").Get("/v1/api_keys")).Problem(HttpStatusCode.Unauthorized, "authentication_required");
    }

    [GeneratedRegex("sk_[A-Za-z0-9]{40}")]
    private static partial Regex SecretPattern();

    private sealed class UnconfiguredHostFactory(string directory) : SampleHostFactory(directory)
    {
        protected override string? BootstrapKey => null;
    }
}
