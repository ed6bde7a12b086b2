namespace Billing;

/// <summary>How a fractional number of minor units becomes a whole number of minor units.</summary>
/// <remarks>
/// Every mode is symmetric around zero: rounding −x gives −(rounding x), so a credit is always the exact
/// negation of the matching debit.
/// </remarks>
public enum RoundingMode
{
    /// <summary>To the nearest whole unit; an exact half goes to the even neighbour (banker's rounding). The default.</summary>
    HalfEven = 0,

    /// <summary>To the nearest whole unit; an exact half goes away from zero (2.5 → 3, −2.5 → −3).</summary>
    HalfUp = 1,

    /// <summary>Away from zero whenever there is a fraction (2.1 → 3, −2.1 → −3).</summary>
    Up = 2,

    /// <summary>Toward zero: the fraction is dropped (2.9 → 2, −2.9 → −2).</summary>
    Down = 3,
}
