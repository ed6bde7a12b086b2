namespace Billing;

/// <summary>An id that names nothing. Nothing was changed.</summary>
public sealed class BillingNotFoundException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="objectType">The kind of object looked for.</param>
    /// <param name="id">The id.</param>
    public BillingNotFoundException(string objectType, string id)
        : base($"No {objectType} with id '{id}'.")
    {
        ObjectType = objectType;
        Id = id;
    }

    /// <summary>The kind of object looked for.</summary>
    public string ObjectType { get; }

    /// <summary>The id.</summary>
    public string Id { get; }
}
