namespace Billing.Pricing;

/// <summary>One tier of a <see cref="GraduatedPrice"/> or <see cref="VolumePrice"/>.</summary>
/// <param name="UpTo">The last unit (inclusive) of this tier, or null for the open-ended last tier.
/// A tier covers the units above the previous tier's <c>UpTo</c> up to and including its own.</param>
/// <param name="UnitAmount">Minor units per unit in this tier, zero or more.</param>
/// <param name="FlatAmount">A flat fee in minor units charged once when the quantity reaches this tier, zero or more.</param>
/// <remarks>Amounts are in the minor units of the price's currency.</remarks>
public readonly record struct PriceTier(long? UpTo, long UnitAmount, long FlatAmount = 0)
{
    /// <summary>A bounded tier: units up to and including <paramref name="upTo"/>.</summary>
    /// <param name="upTo">The last unit of the tier.</param>
    /// <param name="unitAmount">Minor units per unit.</param>
    /// <param name="flatAmount">Flat fee in minor units.</param>
    /// <returns>The tier.</returns>
    public static PriceTier Until(long upTo, long unitAmount, long flatAmount = 0) => new(upTo, unitAmount, flatAmount);

    /// <summary>The open-ended last tier: every unit above the previous tier.</summary>
    /// <param name="unitAmount">Minor units per unit.</param>
    /// <param name="flatAmount">Flat fee in minor units.</param>
    /// <returns>The tier.</returns>
    public static PriceTier Unbounded(long unitAmount, long flatAmount = 0) => new(null, unitAmount, flatAmount);

    /// <summary>Checks a tier list: at least one tier, <c>UpTo</c> strictly ascending and positive, only the
    /// last tier open-ended, amounts not negative.</summary>
    internal static PriceTier[] Validate(IEnumerable<PriceTier> tiers, string paramName)
    {
        ArgumentNullException.ThrowIfNull(tiers, paramName);
        PriceTier[] list = [.. tiers];
        if (list.Length == 0)
        {
            throw new ArgumentException("A tiered price needs at least one tier.", paramName);
        }

        long previous = 0;
        for (var i = 0; i < list.Length; i++)
        {
            var tier = list[i];
            var isLast = i == list.Length - 1;
            if (tier.UnitAmount < 0 || tier.FlatAmount < 0)
            {
                throw new ArgumentException($"Tier {i + 1} has a negative amount; unit and flat amounts must be zero or positive.", paramName);
            }

            if (tier.UpTo is null)
            {
                if (!isLast)
                {
                    throw new ArgumentException($"Tier {i + 1} is open-ended but is not the last tier; only the last tier may have no upper bound.", paramName);
                }

                continue;
            }

            if (isLast)
            {
                throw new ArgumentException($"The last tier (tier {i + 1}) ends at {tier.UpTo}; it must be open-ended (UpTo = null) so every quantity has a tier.", paramName);
            }

            if (tier.UpTo.Value <= previous)
            {
                throw new ArgumentException(
                    i == 0
                        ? $"Tier 1 ends at {tier.UpTo}; the upper bound must be at least 1."
                        : $"Tier {i + 1} ends at {tier.UpTo}, not after tier {i}'s {previous}; upper bounds must be strictly ascending.",
                    paramName);
            }

            previous = tier.UpTo.Value;
        }

        return list;
    }
}
