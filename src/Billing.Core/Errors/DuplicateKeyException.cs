namespace Billing;

/// <summary>
/// Thrown at commit when a unique key already exists (an id, an invoice's subscription period, a payment's
/// idempotency key, an event id, an idempotency record): the whole unit of work is rolled back.
/// </summary>
/// <remarks>This is how duplicates become impossible even when two workers race: the second insert fails.</remarks>
public sealed class DuplicateKeyException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="objectType">The kind of object.</param>
    /// <param name="keyName">Which unique key (for example <c>dedup_key</c>).</param>
    /// <param name="key">The duplicated value.</param>
    public DuplicateKeyException(string objectType, string keyName, string key)
        : base($"A {objectType} with {keyName} '{key}' already exists; nothing was saved.")
    {
        ObjectType = objectType;
        KeyName = keyName;
        Key = key;
    }

    /// <summary>The kind of object.</summary>
    public string ObjectType { get; }

    /// <summary>Which unique key.</summary>
    public string KeyName { get; }

    /// <summary>The duplicated value.</summary>
    public string Key { get; }
}
