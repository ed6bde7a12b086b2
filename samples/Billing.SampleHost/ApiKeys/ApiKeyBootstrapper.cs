namespace Billing.SampleHost.ApiKeys;

/// <summary>Where the bootstrap key is printed (the console; tests capture it).</summary>
internal sealed class BootstrapKeyOutput(TextWriter writer)
{
    public TextWriter Writer { get; } = writer;
}

/// <summary>
/// Makes sure an admin key exists at start: the configured <c>Billing:BootstrapApiKey</c> (created if no key has
/// that secret), or, when none is configured and the table is empty, a new key printed once to the console.
/// </summary>
internal sealed partial class ApiKeyBootstrapper(ApiKeyStore keys, TimeProvider time, BootstrapKeyOutput output, ILogger<ApiKeyBootstrapper> logger)
{
    public const string Name = "bootstrap";

    /// <summary>Runs the bootstrap; returns the secret when it created and printed a new key.</summary>
    public async Task<string?> RunAsync(string? configuredSecret, CancellationToken cancellationToken)
    {
        if (!string.IsNullOrEmpty(configuredSecret))
        {
            var existing = await keys.FindBySecretAsync(configuredSecret, cancellationToken).ConfigureAwait(false);
            if (existing is null)
            {
                try
                {
                    var created = await keys.CreateAsync(configuredSecret, Name, [Scopes.Admin], time.GetUtcNow(), null, cancellationToken).ConfigureAwait(false);
                    LogConfigured(logger, created.Prefix);
                }
                catch (DuplicateKeyException)
                {
                    // Another host instance created it at the same moment, or another key has the same prefix.
                    if (await keys.FindBySecretAsync(configuredSecret, cancellationToken).ConfigureAwait(false) is null)
                    {
                        throw;
                    }
                }
            }
            else if (!existing.IsActiveAt(time.GetUtcNow()))
            {
                LogConfiguredInactive(logger, existing.Prefix);
            }

            return null;
        }

        if (await keys.CountAsync(cancellationToken).ConfigureAwait(false) > 0)
        {
            return null;
        }

        var secret = ApiKeySecrets.NewSecret();
        var key = await keys.CreateAsync(secret, Name, [Scopes.Admin], time.GetUtcNow(), null, cancellationToken).ConfigureAwait(false);
        await output.Writer.WriteLineAsync($"""

            ==================================================================
             Billing sample host: bootstrap admin API key (shown only once).
             Store it now; create scoped keys with POST /v1/api_keys.

               {secret}

            ==================================================================

            """.AsMemory(), cancellationToken).ConfigureAwait(false);
        await output.Writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        LogCreated(logger, key.Prefix);
        return secret;
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Created the configured bootstrap admin API key {Prefix}…")]
    private static partial void LogConfigured(ILogger logger, string prefix);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "The configured bootstrap admin API key {Prefix}… is revoked or expired; it stays so")]
    private static partial void LogConfiguredInactive(ILogger logger, string prefix);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "Created a bootstrap admin API key {Prefix}… and printed it to the console once")]
    private static partial void LogCreated(ILogger logger, string prefix);
}
