namespace Billing.SampleHost.Http;

/// <summary>Bad input found by the host before anything changed: one or more fields with their messages.</summary>
internal sealed class RequestValidationException : Exception
{
    public RequestValidationException(IReadOnlyDictionary<string, string[]> errors)
        : base("The request is not valid: " + string.Join(", ", errors.Keys))
    {
        Errors = errors;
    }

    public RequestValidationException()
        : this(new Dictionary<string, string[]>())
    {
    }

    public RequestValidationException(string message)
        : this(new Dictionary<string, string[]> { [""] = [message] })
    {
    }

    public RequestValidationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errors = new Dictionary<string, string[]> { [""] = [message] };
    }

    public IReadOnlyDictionary<string, string[]> Errors { get; }

    public static RequestValidationException For(string field, string message) => new(new Dictionary<string, string[]> { [field] = [message] });
}

/// <summary>Collects field errors; <see cref="ThrowIfAny"/> raises them all at once.</summary>
internal sealed class FieldErrors
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool Any => _errors.Count > 0;

    public void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var list))
        {
            _errors[field] = list = [];
        }

        list.Add(message);
    }

    /// <summary>Adds an error when <paramref name="ok"/> is false; returns <paramref name="ok"/>.</summary>
    public bool Check(bool ok, string field, string message)
    {
        if (!ok)
        {
            Add(field, message);
        }

        return ok;
    }

    public void ThrowIfAny()
    {
        if (_errors.Count > 0)
        {
            throw new RequestValidationException(_errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal));
        }
    }
}
