namespace Billing;

/// <summary>
/// Thrown at commit when an object changed since it was read (its version moved on): the whole unit of work is
/// rolled back. Re-read and retry, or give up: another worker did the job.
/// </summary>
public sealed class ConcurrencyConflictException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="objectType">The kind of object.</param>
    /// <param name="id">Its id.</param>
    /// <param name="expectedVersion">The version the writer read.</param>
    public ConcurrencyConflictException(string objectType, string id, long expectedVersion)
        : base($"The {objectType} '{id}' was changed by someone else after version {expectedVersion} was read; nothing was saved.")
    {
        ObjectType = objectType;
        Id = id;
        ExpectedVersion = expectedVersion;
    }

    /// <summary>The kind of object.</summary>
    public string ObjectType { get; }

    /// <summary>Its id.</summary>
    public string Id { get; }

    /// <summary>The version the writer read.</summary>
    public long ExpectedVersion { get; }
}
