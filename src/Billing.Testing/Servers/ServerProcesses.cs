using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Billing.Testing.Servers;

/// <summary>What the throwaway-server fixtures share: ports, process trees, their directories and logs.</summary>
internal static class ServerProcesses
{
    /// <summary>The log file every fixture's server writes into its root directory.</summary>
    public const string LogFile = "server.log";

    private const int LogTailLines = 30;

    /// <summary>A free loopback port (bound to port 0 and released; another process may still take it).</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>Kills a process and its children; a process that has exited already is fine.</summary>
    public static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException)
        {
            // Already exited.
        }
    }

    /// <summary>Deletes a directory tree; true when it is gone.</summary>
    public static bool DeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }

            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return !Directory.Exists(path);
        }
    }

    /// <summary>The current length of the server's log (where this start attempt's lines begin).</summary>
    public static long LogLength(string root)
    {
        var log = new FileInfo(Path.Combine(root, LogFile));
        return log.Exists ? log.Length : 0;
    }

    /// <summary>The last lines the server wrote to its log from <paramref name="start"/> on (this start attempt).</summary>
    public static string LogTail(string root, long start)
    {
        var path = Path.Combine(root, LogFile);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Max(start, stream.Length - 16_384), SeekOrigin.Begin);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var lines = reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return lines.Length == 0 ? "(empty)" : string.Join(Environment.NewLine, lines.TakeLast(LogTailLines));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"(the log {path} could not be read: {e.Message})";
        }
    }
}
