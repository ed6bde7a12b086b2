using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Billing;

/// <summary>
/// An exact amount of money: a whole number of minor units (cents, yen, fils) as a <see cref="long"/> and its
/// <see cref="Billing.Currency"/>.
/// </summary>
/// <remarks>
/// <para>All arithmetic is checked: a result outside the 64-bit range throws <see cref="OverflowException"/>,
/// it never wraps. Combining two currencies (adding, subtracting, ordering) throws
/// <see cref="CurrencyMismatchException"/>, which names both codes. Equality never throws: amounts in different
/// currencies are simply not equal.</para>
/// <para>There is no division. A fraction of an amount goes through <see cref="MultiplyFraction"/> (one rounding,
/// explicit <see cref="RoundingMode"/>); a split into parts goes through <see cref="Allocate(ReadOnlySpan{long})"/>
/// or <see cref="Split(int)"/>, whose parts always sum exactly to the whole.</para>
/// <para><c>default(Money)</c> has no currency and is not a valid amount: every operation on it throws
/// <see cref="InvalidOperationException"/>. Use <see cref="Zero"/> for a zero amount.</para>
/// </remarks>
public readonly partial struct Money : IEquatable<Money>, IComparable<Money>, IComparable
{
    private readonly long _minorUnits;
    private readonly Currency? _currency;

    /// <summary>Creates an amount from minor units.</summary>
    /// <param name="minorUnits">The amount in minor units (1234 USD minor units is 12.34 USD).</param>
    /// <param name="currency">The currency.</param>
    /// <exception cref="ArgumentNullException"><paramref name="currency"/> is null.</exception>
    public Money(long minorUnits, Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        _minorUnits = minorUnits;
        _currency = currency;
    }

    /// <summary>The amount in minor units (cents for USD, yen for JPY, fils for KWD).</summary>
    public long MinorUnits => _minorUnits;

    /// <summary>The currency.</summary>
    /// <exception cref="InvalidOperationException">This is <c>default(Money)</c>.</exception>
    public Currency Currency => _currency ?? throw NoCurrency();

    /// <summary>Whether the amount is exactly zero.</summary>
    public bool IsZero => _minorUnits == 0;

    /// <summary>Whether the amount is below zero (a credit).</summary>
    public bool IsNegative => _minorUnits < 0;

    /// <summary>Whether the amount is above zero.</summary>
    public bool IsPositive => _minorUnits > 0;

    /// <summary>Returns zero in the given currency.</summary>
    /// <param name="currency">The currency.</param>
    /// <returns>A zero amount.</returns>
    public static Money Zero(Currency currency) => new(0, currency);

    /// <summary>Creates an amount from minor units; the same as the constructor.</summary>
    /// <param name="minorUnits">The amount in minor units.</param>
    /// <param name="currency">The currency.</param>
    /// <returns>The amount.</returns>
    public static Money FromMinorUnits(long minorUnits, Currency currency) => new(minorUnits, currency);

    /// <summary>Adds two amounts of the same currency.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns>The sum.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The sum does not fit in 64 bits.</exception>
    public static Money operator +(Money left, Money right)
    {
        var currency = SameCurrency(left, right);
        return new Money(checked(left._minorUnits + right._minorUnits), currency, trusted: true);
    }

    /// <summary>Subtracts an amount of the same currency.</summary>
    /// <param name="left">The amount to subtract from.</param>
    /// <param name="right">The amount to subtract.</param>
    /// <returns>The difference.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The difference does not fit in 64 bits.</exception>
    public static Money operator -(Money left, Money right)
    {
        var currency = SameCurrency(left, right);
        return new Money(checked(left._minorUnits - right._minorUnits), currency, trusted: true);
    }

    /// <summary>Negates an amount.</summary>
    /// <param name="value">The amount.</param>
    /// <returns>The amount with the opposite sign.</returns>
    /// <exception cref="OverflowException">The amount is <see cref="long.MinValue"/> minor units.</exception>
    public static Money operator -(Money value) => new(checked(-value._minorUnits), value.RequireCurrency(), trusted: true);

    /// <summary>Multiplies an amount by a whole quantity (units, seats, blocks).</summary>
    /// <param name="value">The amount.</param>
    /// <param name="quantity">The quantity.</param>
    /// <returns>The product.</returns>
    /// <exception cref="OverflowException">The product does not fit in 64 bits.</exception>
    public static Money operator *(Money value, long quantity) => new(checked(value._minorUnits * quantity), value.RequireCurrency(), trusted: true);

    /// <summary>Multiplies an amount by a whole quantity.</summary>
    /// <param name="quantity">The quantity.</param>
    /// <param name="value">The amount.</param>
    /// <returns>The product.</returns>
    /// <exception cref="OverflowException">The product does not fit in 64 bits.</exception>
    public static Money operator *(long quantity, Money value) => value * quantity;

    /// <summary>Whether two amounts have the same currency and the same number of minor units.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns><see langword="true"/> when equal; amounts of different currencies are never equal.</returns>
    public static bool operator ==(Money left, Money right) => left.Equals(right);

    /// <summary>Whether two amounts differ in currency or in minor units.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns><see langword="true"/> when not equal.</returns>
    public static bool operator !=(Money left, Money right) => !left.Equals(right);

    /// <summary>Whether <paramref name="left"/> is less than <paramref name="right"/>.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns>The comparison result.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public static bool operator <(Money left, Money right) => Compare(left, right) < 0;

    /// <summary>Whether <paramref name="left"/> is greater than <paramref name="right"/>.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns>The comparison result.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public static bool operator >(Money left, Money right) => Compare(left, right) > 0;

    /// <summary>Whether <paramref name="left"/> is less than or equal to <paramref name="right"/>.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns>The comparison result.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public static bool operator <=(Money left, Money right) => Compare(left, right) <= 0;

    /// <summary>Whether <paramref name="left"/> is greater than or equal to <paramref name="right"/>.</summary>
    /// <param name="left">The first amount.</param>
    /// <param name="right">The second amount.</param>
    /// <returns>The comparison result.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public static bool operator >=(Money left, Money right) => Compare(left, right) >= 0;

    /// <summary>Adds an amount of the same currency.</summary>
    /// <param name="other">The amount to add.</param>
    /// <returns>The sum.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The sum does not fit in 64 bits.</exception>
    public Money Add(Money other) => this + other;

    /// <summary>Subtracts an amount of the same currency.</summary>
    /// <param name="other">The amount to subtract.</param>
    /// <returns>The difference.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The difference does not fit in 64 bits.</exception>
    public Money Subtract(Money other) => this - other;

    /// <summary>Returns the amount with the opposite sign.</summary>
    /// <returns>The negated amount.</returns>
    /// <exception cref="OverflowException">The amount is <see cref="long.MinValue"/> minor units.</exception>
    public Money Negate() => -this;

    /// <summary>Returns the absolute value.</summary>
    /// <returns>The amount without its sign.</returns>
    /// <exception cref="OverflowException">The amount is <see cref="long.MinValue"/> minor units.</exception>
    public Money Abs() => _minorUnits < 0 ? -this : new Money(_minorUnits, RequireCurrency(), trusted: true);

    /// <summary>Multiplies by a whole quantity.</summary>
    /// <param name="quantity">The quantity.</param>
    /// <returns>The product.</returns>
    /// <exception cref="OverflowException">The product does not fit in 64 bits.</exception>
    public Money Multiply(long quantity) => this * quantity;

    /// <summary>
    /// Returns <c>round(this × numerator / denominator)</c> in minor units with one rounding: the single place
    /// where fractions of minor units (percentages, proration, tax rates) are rounded.
    /// </summary>
    /// <param name="numerator">The numerator of the fraction (may exceed the denominator).</param>
    /// <param name="denominator">The denominator of the fraction; not zero.</param>
    /// <param name="mode">How the fraction of a minor unit is rounded.</param>
    /// <returns>The rounded amount in the same currency.</returns>
    /// <remarks>
    /// The product is computed in 128 bits, so <c>amount × numerator</c> never overflows; only a result outside
    /// the 64-bit range throws. A 12.5 % discount of 1999 is <c>MultiplyFraction(125, 1000, mode)</c>:
    /// 249.875 → 250 with <see cref="RoundingMode.HalfEven"/>, 249 with <see cref="RoundingMode.Down"/>.
    /// Rounding is symmetric around zero.
    /// </remarks>
    /// <exception cref="DivideByZeroException"><paramref name="denominator"/> is zero.</exception>
    /// <exception cref="OverflowException">The result does not fit in 64 bits.</exception>
    public Money MultiplyFraction(long numerator, long denominator, RoundingMode mode = RoundingMode.HalfEven) =>
        new(Rounding.MultiplyDivide(_minorUnits, numerator, denominator, mode), RequireCurrency(), trusted: true);

    /// <summary>
    /// Splits this amount by integer weights with the largest-remainder method. The parts always sum exactly to
    /// this amount, and each part is within one minor unit of its exact share.
    /// </summary>
    /// <param name="weights">Non-negative weights, at least one positive; a zero weight gets zero.</param>
    /// <returns>One part per weight, in the same order.</returns>
    /// <remarks>
    /// Units left after giving each part the floor of its exact share go to the parts with the largest
    /// remainders; equal remainders favour the lower index, so the result is deterministic. A negative amount
    /// is split as its magnitude and each part negated (the split of −x mirrors the split of x).
    /// </remarks>
    /// <exception cref="ArgumentException">No weights, a negative weight, or all weights zero.</exception>
    public Money[] Allocate(ReadOnlySpan<long> weights)
    {
        var result = new Money[weights.Length];
        Allocate(weights, result);
        return result;
    }

    /// <summary>Splits this amount by integer weights into a caller-provided buffer, without allocating.</summary>
    /// <param name="weights">Non-negative weights, at least one positive.</param>
    /// <param name="destination">Receives one part per weight; must be exactly as long as <paramref name="weights"/>.</param>
    /// <remarks>Same method and guarantees as <see cref="Allocate(ReadOnlySpan{long})"/>.</remarks>
    /// <exception cref="ArgumentException">No weights, a negative weight, all weights zero, or a destination of another length.</exception>
    public void Allocate(ReadOnlySpan<long> weights, Span<Money> destination)
    {
        var currency = RequireCurrency();
        if (destination.Length != weights.Length)
        {
            throw new ArgumentException($"The destination has {destination.Length} slots but there are {weights.Length} weights.", nameof(destination));
        }

        Span<long> parts = destination.Length <= 64 ? stackalloc long[destination.Length] : new long[destination.Length];
        Allocation.Allocate(_minorUnits, weights, parts);
        for (var i = 0; i < parts.Length; i++)
        {
            destination[i] = new Money(parts[i], currency, trusted: true);
        }
    }

    /// <summary>Splits this amount into <paramref name="count"/> parts as equal as possible.</summary>
    /// <param name="count">The number of parts, at least 1.</param>
    /// <returns>The parts; they sum exactly to this amount and differ by at most one minor unit.</returns>
    /// <remarks>
    /// Identical to <see cref="Allocate(ReadOnlySpan{long})"/> with equal weights: the extra minor units go to
    /// the first parts (10.00 in 3 → 3.34, 3.33, 3.33).
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is less than 1.</exception>
    public Money[] Split(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var result = new Money[count];
        Split(result);
        return result;
    }

    /// <summary>Splits this amount into as many equal parts as <paramref name="destination"/> has slots, without allocating.</summary>
    /// <param name="destination">Receives the parts; at least one slot.</param>
    /// <remarks>Same guarantees as <see cref="Split(int)"/>.</remarks>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is empty.</exception>
    public void Split(Span<Money> destination)
    {
        var currency = RequireCurrency();
        Span<long> parts = destination.Length <= 64 ? stackalloc long[destination.Length] : new long[destination.Length];
        Allocation.AllocateEvenly(_minorUnits, parts);
        for (var i = 0; i < parts.Length; i++)
        {
            destination[i] = new Money(parts[i], currency, trusted: true);
        }
    }

    /// <summary>Orders two amounts of the same currency.</summary>
    /// <param name="other">The amount to compare with.</param>
    /// <returns>Negative, zero or positive as this amount is less than, equal to or greater than <paramref name="other"/>.</returns>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public int CompareTo(Money other) => Compare(this, other);

    /// <inheritdoc cref="CompareTo(Money)" />
    /// <param name="obj">A <see cref="Money"/> to compare with; null sorts first.</param>
    /// <exception cref="ArgumentException"><paramref name="obj"/> is not a <see cref="Money"/>.</exception>
    public int CompareTo(object? obj) => obj switch
    {
        null => 1,
        Money other => Compare(this, other),
        _ => throw new ArgumentException("The object is not a Money.", nameof(obj)),
    };

    /// <summary>Whether the other amount has the same currency and the same minor units.</summary>
    /// <param name="other">The amount to compare with.</param>
    /// <returns><see langword="true"/> when equal.</returns>
    public bool Equals(Money other) => _minorUnits == other._minorUnits && ReferenceEquals(_currency, other._currency);

    /// <inheritdoc />
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is Money other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(_minorUnits, _currency);

    private Money(long minorUnits, Currency currency, bool trusted)
    {
        _ = trusted;
        _minorUnits = minorUnits;
        _currency = currency;
    }

    private static int Compare(Money left, Money right)
    {
        SameCurrency(left, right);
        return left._minorUnits.CompareTo(right._minorUnits);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Currency SameCurrency(Money left, Money right)
    {
        var currency = left._currency;
        if (!ReferenceEquals(currency, right._currency) || currency is null)
        {
            ThrowMismatch(left, right);
        }

        return currency;
    }

    [DoesNotReturn]
    private static void ThrowMismatch(Money left, Money right)
    {
        if (left._currency is null || right._currency is null)
        {
            throw NoCurrency();
        }

        throw new CurrencyMismatchException(left._currency, right._currency);
    }

    private Currency RequireCurrency() => _currency ?? throw NoCurrency();

    private static InvalidOperationException NoCurrency() =>
        new("This Money is default(Money) and has no currency; create amounts with new Money(minorUnits, currency) or Money.Zero(currency).");
}
