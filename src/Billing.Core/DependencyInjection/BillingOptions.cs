using Billing.Dunning;

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

    /// <summary>The prefix of invoice numbers and the name of their gap-free sequence (<c>INV</c> gives <c>INV-000001</c>). Default <c>INV</c>.</summary>
    public string InvoiceNumberPrefix { get; set; } = "INV";

    /// <summary>How long a renewal invoice stays a draft (editable) before it is finalized and charged. Default 1 hour, like Stripe.</summary>
    /// <remarks>
    /// A renewal that bills usage counts the delay from when the ended period's usage closes
    /// (<see cref="Ports.IUsageChargeSource.UsageClosesAt"/>: with metering, the period end plus
    /// <see cref="Usage.MeteringOptions.LateEventGrace"/>), like Lago's grace period: every event accepted late is on the
    /// invoice, whose usage lines are priced again from the durable events at finalization. The delay is the margin
    /// for events in flight at the close; keep it above zero.
    /// </remarks>
    public TimeSpan DraftFinalizationDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long before a trial ends <c>subscription.trial_will_end</c> is emitted. Default 3 days.</summary>
    public TimeSpan TrialWillEndNotice { get; set; } = TimeSpan.FromDays(3);

    /// <summary>The rounding of percentage discounts and tax. Default <see cref="RoundingMode.HalfEven"/>.</summary>
    public RoundingMode InvoiceRounding { get; set; } = RoundingMode.HalfEven;

    /// <summary>The dunning policy for new failures. Default <see cref="DunningPolicy.Default"/>.</summary>
    public DunningPolicy DunningPolicy { get; set; } = DunningPolicy.Default;

    /// <summary>How many due subscriptions or invoices the billing run takes per batch. Default 500.</summary>
    public int RunBatchSize { get; set; } = 500;

    /// <summary>
    /// How long a payment attempt in flight keeps its invoice from being picked up again. If the process dies
    /// between the gateway call and recording its outcome, the attempt is repeated after this time with the
    /// same idempotency key, so the gateway answers it without charging twice. Default 5 minutes.
    /// </summary>
    public TimeSpan PaymentAttemptLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long a billing run's claim on a batch of due subscriptions and invoices lasts. Other runs (in this or
    /// other processes) skip claimed rows; a step that updates a row ends its claim, and a run that dies leaves its
    /// claims to expire after this time. Default 5 minutes.
    /// </summary>
    public TimeSpan RunClaimLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How many customers the billing run works on at once (each customer's steps stay in order). Default: the
    /// number of processors.
    /// </summary>
    public int RunParallelism { get; set; } = Environment.ProcessorCount;
}
