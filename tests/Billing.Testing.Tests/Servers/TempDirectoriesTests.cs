using Billing.Testing.Servers;

namespace Billing.Testing.Tests.Servers;

public sealed class TempDirectoriesTests
{
    [Fact]
    public void Create_deletes_the_prefixs_directories_unwritten_for_the_stale_age_and_keeps_the_others()
    {
        var prefix = "billing-tempdirs-test-" + Guid.NewGuid().ToString("N") + "-";
        var old = TimeProvider.System.GetUtcNow().UtcDateTime - TempDirectories.StaleAfter - TimeSpan.FromMinutes(1);
        var stale = Make(prefix + "stale", fileWrittenAt: old, directoryWrittenAt: old);
        var fileRecent = Make(prefix + "file-recent", fileWrittenAt: old.Add(TempDirectories.StaleAfter), directoryWrittenAt: old);
        var directoryRecent = Make(prefix + "dir-recent", fileWrittenAt: old, directoryWrittenAt: old.Add(TempDirectories.StaleAfter));
        var otherPrefix = Make(prefix[..^1] + "x-stale", fileWrittenAt: old, directoryWrittenAt: old);
        string? created = null;
        try
        {
            created = TempDirectories.Create(prefix);

            Assert.True(Directory.Exists(created));
            Assert.StartsWith(Path.Combine(Path.GetTempPath(), prefix), created, StringComparison.Ordinal);
            Assert.False(Directory.Exists(stale));
            Assert.True(Directory.Exists(fileRecent));
            Assert.True(Directory.Exists(directoryRecent));
            Assert.True(Directory.Exists(otherPrefix));
        }
        finally
        {
            foreach (var directory in new[] { created, stale, fileRecent, directoryRecent, otherPrefix })
            {
                Assert.True(directory is null || TempDirectories.Delete(directory));
            }
        }
    }

    [Fact]
    public void Delete_removes_a_tree_with_open_files_and_a_missing_directory_is_deleted_already()
    {
        var directory = TempDirectories.Create("billing-tempdirs-test-");
        Directory.CreateDirectory(Path.Combine(directory, "a", "b"));
        var released = 0;
        bool deleted;
        using (var open = File.Create(Path.Combine(directory, "a", "b", "held.db")))
        {
            open.WriteByte(1);
            open.Flush();
            deleted = TempDirectories.Delete(directory, () =>
            {
                released++;
                open.Dispose();
            });
        }

        Assert.True(deleted);
        Assert.False(Directory.Exists(directory));
        Assert.True(released <= 1, "release runs only when an attempt fails (on Windows, where an open file holds it)");
        Assert.True(TempDirectories.Delete(directory));
    }

    private static string Make(string name, DateTime fileWrittenAt, DateTime directoryWrittenAt)
    {
        var directory = Path.Combine(Path.GetTempPath(), name);
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, "billing_1.db");
        File.WriteAllText(file, "x");
        File.SetLastWriteTimeUtc(file, fileWrittenAt);
        Directory.SetLastWriteTimeUtc(directory, directoryWrittenAt);
        return directory;
    }
}
