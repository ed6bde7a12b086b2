namespace Billing.Testing.Time;

/// <summary>A <see cref="TimeProvider"/> that stands still until moved: the engine's real clock in tests.</summary>
/// <remarks>Thread-safe. Customers attached to a test clock do not use it; it drives everyone else.</remarks>
public sealed class FakeTimeProvider : TimeProvider
{
    private readonly Lock _gate = new();
    private DateTimeOffset _now;

    /// <summary>Creates the clock at an instant.</summary>
    /// <param name="start">The initial time.</param>
    public FakeTimeProvider(DateTimeOffset start)
    {
        _now = start.ToUniversalTime();
    }

    /// <inheritdoc />
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    /// <summary>Moves the clock forward.</summary>
    /// <param name="by">How far; not negative.</param>
    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        lock (_gate)
        {
            _now += by;
        }
    }

    /// <summary>Sets the clock to an instant at or after the current time.</summary>
    /// <param name="to">The new time.</param>
    public void SetUtcNow(DateTimeOffset to)
    {
        lock (_gate)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(to, _now);
            _now = to.ToUniversalTime();
        }
    }
}
