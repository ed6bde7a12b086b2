using System.Security.Cryptography;
using System.Text;

namespace Billing.SampleHost.ApiKeys;

/// <summary>The scopes an API key can carry. <c>admin</c> includes <c>billing:write</c>, which includes
/// <c>billing:read</c>.</summary>
internal static class Scopes
{
    public const string Read = "billing:read";
    public const string Write = "billing:write";
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> All = [Read, Write, Admin];

    public static bool IsKnown(string scope) => All.Contains(scope, StringComparer.Ordinal);

    /// <summary>Whether a key with <paramref name="granted"/> may do what needs <paramref name="required"/>.</summary>
    public static bool Allows(IEnumerable<string> granted, string required) => granted.Any(g => g switch
    {
        Admin => true,
        Write => required is Write or Read,
        Read => required is Read,
        _ => false,
    });
}

/// <summary>An API key as stored: never the secret, only its SHA-256 hash and a short visible prefix.</summary>
internal sealed record ApiKey
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public required string Prefix { get; init; }

    public required IReadOnlyList<string> Scopes { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public DateTimeOffset? RevokedAt { get; init; }

    public DateTimeOffset? LastUsedAt { get; init; }

    public bool IsActiveAt(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);
}

/// <summary>Secrets: <c>sk_</c> + 40 base62 characters (about 238 random bits); the first 12 characters are the
/// visible prefix used to find the key, the SHA-256 of the whole secret is what is stored.</summary>
internal static class ApiKeySecrets
{
    public const string SecretPrefix = "sk_";
    public const int PrefixLength = 12;
    public const int MinimumLength = 32;
    private const string Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string NewSecret() => SecretPrefix + new string(RandomNumberGenerator.GetItems<char>(Base62, 40));

    public static string NewId() => "key_" + new string(RandomNumberGenerator.GetItems<char>(Base62, 20));

    /// <summary>Whether a string can be a secret: <c>sk_</c>, then letters, digits or <c>_</c>, 32 to 200 characters.</summary>
    public static bool IsWellFormed(string? secret) =>
        secret is { Length: >= MinimumLength and <= 200 } && secret.StartsWith(SecretPrefix, StringComparison.Ordinal) && secret.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    public static string PrefixOf(string secret) => secret[..PrefixLength];

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Compares a secret with a stored hash in constant time.</summary>
    public static bool Matches(string secret, string storedHash) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Hash(secret)), Encoding.ASCII.GetBytes(storedHash));
}
