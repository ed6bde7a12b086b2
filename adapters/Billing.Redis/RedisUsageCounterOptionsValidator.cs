using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Billing.Redis;

/// <summary>Checks <see cref="RedisUsageCounterOptions"/> and reports every problem with the option's name.</summary>
internal sealed class RedisUsageCounterOptionsValidator : IValidateOptions<RedisUsageCounterOptions>
{
    private static readonly TimeSpan MaxRetention = TimeSpan.FromDays(3_650);

    public ValidateOptionsResult Validate(string? name, RedisUsageCounterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Check(options, requireConnection: true);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming every problem.</summary>
    public static void ThrowIfInvalid(RedisUsageCounterOptions options, bool requireConnection)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Check(options, requireConnection);
        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", failures), nameof(options));
        }
    }

    public static List<string> Check(RedisUsageCounterOptions options, bool requireConnection)
    {
        const string Type = nameof(RedisUsageCounterOptions);
        var failures = new List<string>();
        if (requireConnection)
        {
            if (string.IsNullOrWhiteSpace(options.ConfigurationString))
            {
                failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.ConfigurationString)} is empty; set a StackExchange.Redis configuration string such as 'localhost:6379,abortConnect=false'.");
            }
            else
            {
                try
                {
                    if (ConfigurationOptions.Parse(options.ConfigurationString).EndPoints.Count == 0)
                    {
                        failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.ConfigurationString)} names no server (host:port).");
                    }
                }
                catch (ArgumentException e)
                {
                    failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.ConfigurationString)} is not a valid StackExchange.Redis configuration string: {e.Message}");
                }
            }
        }

        var prefix = options.KeyPrefix;
        if (string.IsNullOrEmpty(prefix) || prefix.Length > RedisUsageCounterOptions.MaxKeyPrefixLength
            || prefix.AsSpan().IndexOfAny('{', '}') >= 0 || prefix.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.KeyPrefix)} must be 1 to {RedisUsageCounterOptions.MaxKeyPrefixLength} characters without '{{', '}}', white space or control characters.");
        }

        if (options.DefaultCounterRetention <= TimeSpan.Zero || options.DefaultCounterRetention > MaxRetention)
        {
            failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.DefaultCounterRetention)} must be positive and at most 3,650 days.");
        }

        if (options.MaxEventsPerScriptCall is < 1 or > RedisUsageCounterOptions.MaxScriptCallSize)
        {
            failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.MaxEventsPerScriptCall)} must be 1 to 10,000.");
        }

        if (options.IdempotencyGeneration < TimeSpan.FromSeconds(1) || options.IdempotencyGeneration > TimeSpan.FromDays(400))
        {
            failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.IdempotencyGeneration)} must be 1 second to 400 days.");
        }

        if (options.CustomerGroups is < 1 or > RedisUsageCounterOptions.MaxCustomerGroups)
        {
            failures.Add($"{Type}.{nameof(RedisUsageCounterOptions.CustomerGroups)} must be 1 to 16,384.");
        }

        return failures;
    }
}
