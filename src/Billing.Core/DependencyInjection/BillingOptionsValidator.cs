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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
