namespace Billing.Testing.Servers;

/// <summary>
/// Temp directories of the test suites and benchmarks (SQLite files, host data): made under the system temp path with a
/// prefix, deleted by their owner (a fixture's dispose), with a backstop for runs that were killed before that.
/// </summary>
/// <remarks>
/// A test host is not a place for exit-time cleanup: VSTest kills its test host about 100 ms after the run ends, so an
/// <see cref="AppDomain.ProcessExit"/> handler is cut short. Owners delete their directories when disposed instead, and
/// <see cref="Create"/> sweeps the same prefix's directories that nothing has written to for <see cref="StaleAfter"/>
/// (a process still using one writes to it far more often than that).
/// </remarks>
internal static class TempDirectories
{
    private const int DeleteAttempts = 5;

    /// <summary>How long a directory and everything in it stay unwritten before <see cref="Create"/> deletes it.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromHours(6);

    /// <summary>Creates a new directory named <paramref name="prefix"/> plus random characters in the temp path, and
    /// deletes the stale directories of the same prefix there.</summary>
    public static string Create(string prefix)
    {
        var directory = Directory.CreateTempSubdirectory(prefix).FullName;
        var cutoff = TimeProvider.System.GetUtcNow().UtcDateTime - StaleAfter;
        foreach (var sibling in Directory.EnumerateDirectories(Path.GetDirectoryName(directory)!, prefix + "*"))
        {
            if (sibling != directory && IsUnwrittenSince(sibling, cutoff))
            {
                Delete(sibling);
            }
        }

        return directory;
    }

    /// <summary>Deletes a directory tree; true when it is gone.</summary>
    /// <remarks>A failed attempt (a file still open on Windows, a file created meanwhile) runs <paramref name="release"/>
    /// (e.g. clearing SQLite's connection pools) and is retried a few times, 100 ms apart and more.</remarks>
    public static bool Delete(string directory, Action? release = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }

                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (attempt == DeleteAttempts)
                {
                    return !Directory.Exists(directory);
                }

                release?.Invoke();
                Thread.Sleep(100 * attempt);
            }
        }
    }

    private static bool IsUnwrittenSince(string directory, DateTime cutoffUtc)
    {
        try
        {
            var root = new DirectoryInfo(directory);
            return root.LastWriteTimeUtc < cutoffUtc
                && root.EnumerateFileSystemInfos("*", SearchOption.AllDirectories).All(e => e.LastWriteTimeUtc < cutoffUtc);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // Going away, or not ours to read.
        }
    }
}
