using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Billing.Testing.Servers;

namespace Billing.Testing.Tests.Servers;

public sealed class LocalPostgresServerTests
{
    [Fact]
    public async Task A_started_server_accepts_a_connection_and_runs_select_1()
    {
        var server = await LocalPostgresServer.SharedAsync();

        Assert.Equal("1", await PsqlAsync(server, "postgres", "select 1"));
        Assert.Equal("127.0.0.1", server.Host);
        Assert.Equal("postgres", server.UserName);
        Assert.Equal($"Host=127.0.0.1;Port={server.Port};Username=postgres;Database=postgres;Pooling=true", server.ConnectionString);
    }

    [Fact]
    public async Task Creating_two_databases_gives_two_distinct_databases_that_both_exist()
    {
        var server = await LocalPostgresServer.SharedAsync();

        var first = DatabaseOf(await server.CreateDatabaseAsync("Orders.Tests"));
        var second = DatabaseOf(await server.CreateDatabaseAsync("Orders.Tests"));

        Assert.NotEqual(first, second);
        Assert.StartsWith("orders_tests_", first, StringComparison.Ordinal);
        var databases = (await PsqlAsync(server, "postgres", "select datname from pg_database")).Split('\n');
        Assert.Contains(first, databases);
        Assert.Contains(second, databases);
        Assert.Equal(second, await PsqlAsync(server, second, "select current_database()"));
    }

    [Fact]
    public async Task Disposing_a_server_deletes_its_directory_and_closes_its_port()
    {
        var server = await LocalPostgresServer.StartAsync();
        var directory = server.RootDirectory;
        var port = server.Port;
        Assert.True(Directory.Exists(Path.Combine(directory, "data")));
        Assert.True(await AcceptsTcpAsync(port));

        await server.DisposeAsync();

        Assert.False(Directory.Exists(directory));
        Assert.False(await AcceptsTcpAsync(port));
        await server.DisposeAsync(); // idempotent
        await Assert.ThrowsAsync<ObjectDisposedException>(() => server.CreateDatabaseAsync());
    }

    [Fact]
    public async Task The_shared_server_is_one_instance_that_disposing_does_not_stop()
    {
        var first = await LocalPostgresServer.SharedAsync();
        var second = await LocalPostgresServer.SharedAsync();

        Assert.Same(first, second);
        await first.DisposeAsync();
        Assert.Equal("1", await PsqlAsync(second, "postgres", "select 1"));
    }

    private static string DatabaseOf(string connectionString) =>
        (string)new DbConnectionStringBuilder { ConnectionString = connectionString }["Database"];

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

    private static async Task<string> PsqlAsync(LocalPostgresServer server, string database, string sql)
    {
        var psql = server.ToolPath("psql") ?? throw new InvalidOperationException("psql was not found beside the server binaries or on PATH.");
        var info = new ProcessStartInfo(psql) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        string[] arguments = ["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-h", server.Host, "-p", server.Port.ToString(CultureInfo.InvariantCulture), "-U", server.UserName, "-d", database, "-c", sql];
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"psql failed with exit code {process.ExitCode}: {await error}");
        return (await output).Trim();
    }
}
