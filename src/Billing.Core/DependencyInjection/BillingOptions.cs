namespace Billing;

/// <summary>Engine-wide settings, bound and validated when the host starts (see <c>AddBilling</c>).</summary>
public sealed class BillingOptions
{
    /// <summary>
    /// The IANA time zone used for customers that have none (for example <c>Europe/Berlin</c>).
    /// Default <c>Etc/UTC</c>. Must exist in the machine's time-zone database.
    /// </summary>
    public string DefaultTimeZoneId { get; set; } = "Etc/UTC";

    /// <summary>The rounding applied once to each proration line. Default <see cref="RoundingMode.HalfEven"/>.</summary>
    public RoundingMode ProrationRounding { get; set; } = RoundingMode.HalfEven;
}
