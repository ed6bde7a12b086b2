using System.Globalization;
using Billing.Dunning;
using Billing.Events;
using Billing.Payments;
using Billing.Ports;
using Microsoft.Extensions.Options;

namespace Billing.Engine;

/// <summary>
/// The billing engine: the application services over the ports. Every state change and the events it emits
/// commit in one unit of work; the billing run (<see cref="AdvanceAsync"/>) does everything due exactly once.
/// </summary>
/// <remarks>
/// <para>Time: a customer attached to a test clock lives on that clock's time; everyone else on
/// <see cref="TimeProvider"/>. Nothing reads an ambient clock.</para>
/// <para>Expected outcomes (declines) are values; broken rules throw: <see cref="BillingValidationException"/> for
/// bad input, <see cref="BillingNotFoundException"/> for unknown ids, <see cref="InvalidStateTransitionException"/>
/// for an operation the object's state does not allow.</para>
/// </remarks>
public sealed partial class BillingEngine
{
    private const int ConflictRetries = 5;

    private readonly IBillingStore _store;
    private readonly IPaymentGateway _gateway;
    private readonly TimeProvider _time;
    private readonly BillingOptions _options;
    private readonly IBillingIdGenerator _ids;
    private readonly IUsageChargeSource _usage;

    /// <summary>Creates the engine.</summary>
    /// <param name="store">The persistence port.</param>
    /// <param name="gateway">The payment gateway.</param>
    /// <param name="time">The real clock.</param>
    /// <param name="options">Engine options.</param>
    /// <param name="ids">The id generator.</param>
    /// <param name="usage">The usage-charge source.</param>
    public BillingEngine(IBillingStore store, IPaymentGateway gateway, TimeProvider time, IOptions<BillingOptions> options, IBillingIdGenerator ids, IUsageChargeSource usage)
    {
        ArgumentNullException.ThrowIfNull(options);
        _store = Diagnostics.BillingDiagnostics.Observe(store ?? throw new ArgumentNullException(nameof(store)));
        _gateway = gateway ?? throw new ArgumentNullException(nameof(gateway));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _options = options.Value;
        _ids = ids ?? throw new ArgumentNullException(nameof(ids));
        _usage = usage ?? throw new ArgumentNullException(nameof(usage));
    }

    private DunningPolicy Policy => _options.DunningPolicy;

    /// <summary>Runs a unit of work and commits it, retrying from a fresh read when a concurrent writer conflicts.</summary>
    private async Task<T> InSessionAsync<T>(Func<IBillingSession, Task<T>> work, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var result = await work(session).ConfigureAwait(false);
                await session.CommitAsync(cancellationToken).ConfigureAwait(false);
                return result;
            }
            catch (ConcurrencyConflictException) when (attempt < ConflictRetries)
            {
                // Someone changed what we read: read again and redo the work.
            }
        }
    }

    /// <summary>Like <see cref="InSessionAsync{T}(Func{IBillingSession, Task{T}}, CancellationToken)"/>, counting into
    /// <paramref name="counters"/> only what the committed attempt did.</summary>
    private async Task<T> InSessionAsync<T>(Func<IBillingSession, RunCounters, Task<T>> work, RunCounters counters, CancellationToken cancellationToken)
    {
        RunCounters? committed = null;
        var result = await InSessionAsync(async session =>
        {
            committed = new RunCounters();
            return await work(session, committed).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        counters.Add(committed!);
        return result;
    }

    private async ValueTask<DateTimeOffset> NowForAsync(IBillingSession session, string? testClockId, CancellationToken cancellationToken)
    {
        if (testClockId is null)
        {
            return _time.GetUtcNow();
        }

        var clock = await session.TestClocks.GetAsync(testClockId, cancellationToken).ConfigureAwait(false)
            ?? throw new BillingNotFoundException("test_clock", testClockId);
        return clock.FrozenTime;
    }

    private BillingEvent NewEvent(string type, DateTimeOffset at, string objectType, string objectId, string? customerId, params (string Key, object? Value)[] data) => new()
    {
        Id = _ids.NewId("evt"),
        Type = type,
        OccurredAt = at,
        ObjectType = objectType,
        ObjectId = objectId,
        CustomerId = customerId,
        Data = data.Where(d => d.Value is not null)
            .ToDictionary(d => d.Key, d => Convert.ToString(d.Value, CultureInfo.InvariantCulture) ?? string.Empty, StringComparer.Ordinal),
    };

    private static TimeZoneInfo Zone(string timeZoneId) =>
        TimeZoneInfo.TryFindSystemTimeZoneById(timeZoneId, out var zone)
            ? zone
            : throw new BillingValidationException("time_zone", $"'{timeZoneId}' is not a known IANA time zone.");

    private static string Snake<TEnum>(TEnum value)
        where TEnum : struct, Enum => Naming.SnakeCase(value.ToString());
}
