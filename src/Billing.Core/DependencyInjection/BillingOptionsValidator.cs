using Microsoft.Extensions.Options;

namespace Billing;

/// <summary>Checks <see cref="BillingOptions"/> and reports every problem with the option's name.</summary>
internal sealed class BillingOptionsValidator : IValidateOptions<BillingOptions>
{
    public ValidateOptionsResult Validate(string? name, BillingOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.DefaultTimeZoneId))
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.DefaultTimeZoneId)} is empty; set an IANA time zone such as 'Etc/UTC'.");
        }
        else if (!TimeZoneInfo.TryFindSystemTimeZoneById(options.DefaultTimeZoneId, out _))
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.DefaultTimeZoneId)} '{options.DefaultTimeZoneId}' is not a time zone known to this machine (is the tzdata package installed?).");
        }

        if (!Enum.IsDefined(options.ProrationRounding))
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.ProrationRounding)} {(int)options.ProrationRounding} is not a rounding mode.");
        }

        if (string.IsNullOrWhiteSpace(options.InvoiceNumberPrefix) || options.InvoiceNumberPrefix.Length > 20)
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.InvoiceNumberPrefix)} must be 1 to 20 characters.");
        }

        if (options.DraftFinalizationDelay < TimeSpan.Zero || options.TrialWillEndNotice < TimeSpan.Zero || options.PaymentAttemptLease <= TimeSpan.Zero || options.RunClaimLease <= TimeSpan.Zero)
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.DraftFinalizationDelay)} and {nameof(BillingOptions.TrialWillEndNotice)} cannot be negative, and {nameof(BillingOptions.PaymentAttemptLease)} and {nameof(BillingOptions.RunClaimLease)} must be positive.");
        }

        if (!Enum.IsDefined(options.InvoiceRounding))
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.InvoiceRounding)} {(int)options.InvoiceRounding} is not a rounding mode.");
        }

        if (options.DunningPolicy is null)
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.DunningPolicy)} is required.");
        }

        if (options.RunBatchSize is < 1 or > 10_000)
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.RunBatchSize)} must be 1 to 10,000.");
        }

        if (options.RunParallelism is < 1 or > 256)
        {
            failures.Add($"{nameof(BillingOptions)}.{nameof(BillingOptions.RunParallelism)} must be 1 to 256.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
