using FsCheck;
using FsCheck.Fluent;

namespace Billing.Tests.Support;

/// <summary>Runs FsCheck properties inside xUnit facts (FsCheck.Xunit is not available in this registry).</summary>
internal static class Props
{
    /// <summary>Cheap properties run this many cases by default.</summary>
    public const int Many = 10_000;

    /// <summary>Checks <paramref name="assert"/> for <paramref name="maxTest"/> generated values; throws with the shrunk counterexample.</summary>
    public static void ForAll<T>(Gen<T> gen, Action<T> assert, int maxTest = 1_000) =>
        Prop.ForAll(gen.ToArbitrary(), assert).Check(Config.QuickThrowOnFailure.WithMaxTest(maxTest));
}

/// <summary>Generators shared by the property tests.</summary>
internal static class Gens
{
    /// <summary>A long from an inclusive range.</summary>
    public static Gen<long> Long(long min, long max) => FsCheck.FSharp.Gen.Choose64(min, max);

    /// <summary>Longs of every magnitude, with extra weight on small values and on the extremes.</summary>
    public static Gen<long> AnyLong() => Gen.Frequency(
        (4, Long(-1_000, 1_000)),
        (3, Long(-1_000_000_000_000, 1_000_000_000_000)),
        (2, Long(long.MinValue, long.MaxValue)),
        (1, Gen.Elements(long.MinValue, long.MinValue + 1, -1L, 0L, 1L, long.MaxValue - 1, long.MaxValue)));

    /// <summary>Every known currency.</summary>
    public static Gen<Currency> AnyCurrency() => Gen.Elements(Currency.All.ToArray());

    /// <summary>Amounts of every magnitude in a random currency.</summary>
    public static Gen<Money> AnyMoney() =>
        from currency in AnyCurrency()
        from minor in AnyLong()
        select new Money(minor, currency);

    /// <summary>A rounding mode.</summary>
    public static Gen<RoundingMode> Rounding() => Gen.Elements(Enum.GetValues<RoundingMode>());
}
