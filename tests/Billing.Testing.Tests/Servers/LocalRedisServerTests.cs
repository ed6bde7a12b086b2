using System.Net;
using System.Net.Sockets;
using Billing.Testing.Servers;

namespace Billing.Testing.Tests.Servers;

public sealed class LocalRedisServerTests
{
    [Fact]
    public async Task A_started_server_answers_ping_and_describes_its_endpoint()
    {
        var server = await LocalRedisServer.SharedAsync();

        Assert.Equal("PONG", await server.ExecuteAsync("PING"));
        Assert.Equal("127.0.0.1", server.Host);
        Assert.Equal($"127.0.0.1:{server.Port}", server.EndPoint);
        Assert.Equal($"127.0.0.1:{server.Port},abortConnect=false,allowAdmin=true", server.ConfigurationString);
        var info = Assert.IsType<string>(await server.ExecuteAsync("INFO", "server"));
        Assert.Contains($"tcp_port:{server.Port}", info, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Set_then_get_roundtrips_a_value_and_replies_have_their_types()
    {
        var server = await LocalRedisServer.SharedAsync();
        var key = "roundtrip:" + Guid.NewGuid().ToString("N");

        Assert.Equal("OK", await server.ExecuteAsync("SET", key, "grüße €"));
        Assert.Equal("grüße €", await server.ExecuteAsync("GET", key));
        Assert.Null(await server.ExecuteAsync("GET", key + ":missing"));
        Assert.Equal(5L, await server.ExecuteAsync("INCRBY", key + ":n", "5"));
        Assert.IsType<long>(await server.ExecuteAsync("DBSIZE"));
        var values = Assert.IsType<object?[]>(await server.ExecuteAsync("MGET", key, key + ":missing"));
        Assert.Equal(["grüße €", null], values);
    }

    [Fact]
    public async Task An_error_reply_throws_with_the_servers_message()
    {
        var server = await LocalRedisServer.SharedAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => server.ExecuteAsync("EVALSHA", new string('0', 40), "0"));

        Assert.Contains("NOSCRIPT", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_servers_listen_on_different_ports_with_separate_data()
    {
        await using var first = await LocalRedisServer.StartAsync();
        await using var second = await LocalRedisServer.StartAsync();

        Assert.NotEqual(first.Port, second.Port);
        Assert.NotEqual(first.RootDirectory, second.RootDirectory);
        await first.ExecuteAsync("SET", "k", "1");
        Assert.Null(await second.ExecuteAsync("GET", "k"));
    }

    [Fact]
    public async Task Killing_a_server_makes_commands_fail_and_restarting_it_on_the_same_port_starts_it_empty()
    {
        await using var server = await LocalRedisServer.StartAsync();
        var port = server.Port;
        await server.ExecuteAsync("SET", "counter", "41");
        await server.ExecuteAsync("SCRIPT", "LOAD", "return 1");

        await server.KillAsync();

        await Assert.ThrowsAsync<SocketException>(() => server.ExecuteAsync("PING"));
        Assert.False(await AcceptsTcpAsync(port));
        await server.KillAsync(); // already down: nothing to do

        await server.RestartAsync();

        Assert.Equal(port, server.Port);
        Assert.Equal("PONG", await server.ExecuteAsync("PING"));
        Assert.Null(await server.ExecuteAsync("GET", "counter"));
        Assert.Equal(0L, await server.ExecuteAsync("DBSIZE"));
        Assert.Equal(new object?[] { 0L }, await server.ExecuteAsync("SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"));
    }

    [Fact]
    public async Task Restarting_a_running_server_kills_it_first()
    {
        await using var server = await LocalRedisServer.StartAsync();
        await server.ExecuteAsync("SET", "k", "v");

        await server.RestartAsync();

        Assert.Null(await server.ExecuteAsync("GET", "k"));
    }

    [Fact]
    public async Task Flush_all_deletes_every_key()
    {
        await using var server = await LocalRedisServer.StartAsync();
        await server.ExecuteAsync("SET", "a", "1");
        await server.ExecuteAsync("SET", "b", "2");
        Assert.Equal(1L, await server.ExecuteAsync("MOVE", "b", "1")); // into database 1
        Assert.Equal(1L, await server.ExecuteAsync("DBSIZE"));

        await server.FlushAllAsync();

        Assert.Equal(0L, await server.ExecuteAsync("DBSIZE"));
        Assert.Equal("OK", await server.ExecuteAsync("SWAPDB", "0", "1"));
        Assert.Equal(0L, await server.ExecuteAsync("DBSIZE")); // database 1 is empty too
    }

    [Fact]
    public async Task Disposing_a_server_deletes_its_directory_and_closes_its_port()
    {
        var server = await LocalRedisServer.StartAsync();
        var directory = server.RootDirectory;
        var port = server.Port;
        Assert.True(File.Exists(Path.Combine(directory, "server.log")));
        Assert.True(await AcceptsTcpAsync(port));

        await server.DisposeAsync();

        Assert.False(Directory.Exists(directory));
        Assert.False(await AcceptsTcpAsync(port));
        await server.DisposeAsync(); // idempotent
        await Assert.ThrowsAsync<ObjectDisposedException>(() => server.ExecuteAsync("PING"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => server.RestartAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => server.KillAsync());
    }

    [Fact]
    public async Task Disposing_a_killed_server_deletes_its_directory()
    {
        var server = await LocalRedisServer.StartAsync();
        var directory = server.RootDirectory;
        await server.KillAsync();

        await server.DisposeAsync();

        Assert.False(Directory.Exists(directory));
    }

    [Fact]
    public async Task The_shared_server_is_one_instance_that_disposing_does_not_stop_and_that_cannot_be_killed()
    {
        var first = await LocalRedisServer.SharedAsync();
        var second = await LocalRedisServer.SharedAsync();

        Assert.Same(first, second);
        await first.DisposeAsync();
        Assert.Equal("PONG", await second.ExecuteAsync("PING"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.KillAsync());
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.RestartAsync());
    }

    [Fact]
    public async Task A_missing_binary_fails_with_what_to_install()
    {
        var options = new LocalRedisOptions { ServerPath = "/nonexistent/bin/redis-server" };

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => LocalRedisServer.StartAsync(options));

        Assert.Contains("redis-server", error.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install -y redis-server", error.Message, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/bin/redis-server", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_fails_to_start_reports_the_end_of_its_log()
    {
        var options = new LocalRedisOptions();
        options.Settings["maxmemory-policy"] = "not-a-policy";

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => LocalRedisServer.StartAsync(options));

        Assert.Contains("exited during startup", error.Message, StringComparison.Ordinal);
        Assert.Contains("maxmemory-policy", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Settings_are_passed_to_the_server()
    {
        var options = new LocalRedisOptions();
        options.Settings["maxmemory"] = "12345678";

        await using var server = await LocalRedisServer.StartAsync(options);

        Assert.Equal(new object?[] { "maxmemory", "12345678" }, await server.ExecuteAsync("CONFIG", "GET", "maxmemory"));
        Assert.Equal(new object?[] { "save", string.Empty }, await server.ExecuteAsync("CONFIG", "GET", "save"));
        Assert.Equal(new object?[] { "appendonly", "no" }, await server.ExecuteAsync("CONFIG", "GET", "appendonly"));
    }

    [Theory]
    [InlineData("port", "6379")]
    [InlineData("DIR", "/tmp")]
    [InlineData("", "x")]
    [InlineData("--save", "")]
    [InlineData("max memory", "1")]
    [InlineData("maxmemory", "1\n2")]
    public async Task Invalid_settings_are_rejected(string name, string value)
    {
        var options = new LocalRedisOptions();
        options.Settings[name] = value;

        await Assert.ThrowsAsync<ArgumentException>(() => LocalRedisServer.StartAsync(options));
    }

    [Fact]
    public async Task A_non_positive_start_timeout_is_rejected()
    {
        var options = new LocalRedisOptions { StartTimeout = TimeSpan.Zero };

        await Assert.ThrowsAsync<ArgumentException>(() => LocalRedisServer.StartAsync(options));
    }

    private static async Task<bool> AcceptsTcpAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
