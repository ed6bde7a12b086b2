using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Billing.Catalog;
using Billing.Customers;
using Billing.Engine;
using Billing.Events;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Subscriptions;

namespace Billing.Usage;

/// <summary>
/// Usage ingestion and entitlements: validates and resolves events to their counter (customer, meter, period),
/// counts them exactly once through <see cref="IUsageCounter"/>, stores the accepted ones durably through
/// <see cref="IUsageEventStore"/>, and answers entitlement checks from the plan and the counters.
/// </summary>
/// <remarks>
/// <para>
/// Order of work for a batch: every event is validated and resolved first (a bad event gets its own rejection and
/// never touches a counter); the valid ones go to the counter in one call (each atomic on its own); accepted events,
/// and duplicates too, are then written durably in one call (the durable unique key makes the write idempotent, so
/// a retry after a failure between the two steps still stores the event). A client hears "accepted" only after the
/// durable write.
/// </para>
/// <para>
/// Acceptance tokens: each event sent to the counter carries a 64-bit token drawn by the service (a per-process random
/// base plus a sequence, see <see cref="UsageCounterEvent.AcceptanceToken"/>). A counter keeps the token of the event
/// that takes a key and answers later duplicates of the key with it; events are stored durably with the token of the
/// acceptance they belong to (a duplicate with the original's), and rebuilds carry the stored tokens back into the
/// counter.
/// </para>
/// <para>
/// When the durable store already had an event a fast counter accepted, the stored row's token tells why (one point read
/// of the row, on this rare path only). The same token: an event and its repeat arrived together, the counter accepted
/// the event and answered the repeat "duplicate", and the repeat's append came first; the event stays accepted and
/// nothing is rebuilt, so exactly one of the two hears "accepted". Another token, or none: the counter lost the key (for
/// example after a Redis flush) and accepted the event again; the result is a duplicate and the counter is rebuilt from
/// the durable events. A fast counter that finds a forgotten key over the limit also answers duplicate (the durable
/// store is asked, for over-limit rejections only). Before a fast counter counts events with a hard limit, a counter
/// that reads 0 while the durable store holds events for it (it lost its state: a Redis restart or flush) is rebuilt
/// first, so hard limits hold without waiting for <see cref="RebuildCountersAsync"/>. A durable counter
/// (<see cref="IUsageCounter.IsDurable"/>) needs none of this and no token comparison: there an append reporting
/// "already stored" only means a concurrent repeat of the event appended first.
/// </para>
/// <para>
/// Time: an event belongs to the period of its subscription's schedule that contains its timestamp. It is rejected
/// when that period ended more than <see cref="MeteringOptions.LateEventGrace"/> ago or when the timestamp is more
/// than <see cref="MeteringOptions.FutureTolerance"/> ahead. "Now" is the customer's test clock when it has one.
/// Counters are keyed per customer: two live subscriptions of one customer pricing the same meter with the same
/// period start share a counter.
/// </para>
/// <para>
/// Last stretches: an immediate plan change starts a new usage span (and counter) at the change, and the old plan's
/// span is billed on an invoice made at the change; a cancellation bills the span up to it on a final invoice. Late
/// events for such a span (before the change or the cancellation) are accepted within the grace, resolved to the plan
/// and span that the invoice closing it bills (its usage lines name both), and billed when that invoice is finalized;
/// the same goes for the period before a plan change at period end. With several immediate plan changes in one period,
/// each stretch has its own final invoice (keyed at the stretch's end, its period the stretch): a late event goes to the
/// one whose stretch holds its timestamp, priced with that stretch's plan.
/// </para>
/// <para>
/// Late events are billed, never lost: a period's usage closes <see cref="MeteringOptions.LateEventGrace"/> after it
/// ends, and the engine keeps the renewal invoice that bills it a draft until then (plus
/// <see cref="BillingOptions.DraftFinalizationDelay"/> as a margin for events in flight), pricing its usage lines again
/// from the durable events when it finalizes it. So with any settings, an event accepted within the grace is on the
/// invoice. An event for an ended period whose invoice was nevertheless finalized already (by hand, with
/// <c>FinalizeInvoiceAsync</c>, or by an engine whose usage source was given other options) is rejected with
/// <c>period_closed</c> and changes no counter. The one window left open is an event being accepted at the very moment
/// a draft is finalized by hand before its usage closed; the automatic path never finalizes that early.
/// </para>
/// <para>
/// A <c>usage.threshold_reached</c> event is emitted once per subscription, feature, threshold and period: the
/// outbox's unique event id guarantees it across processes, and a bounded in-process memory of the ids already sent
/// (pruned of periods whose usage has closed) saves most repeated outbox writes.
/// </para>
/// </remarks>
public sealed class UsageMeteringService
{
    private static readonly SubscriptionStatus[] Live = [SubscriptionStatus.Active, SubscriptionStatus.Trialing, SubscriptionStatus.PastDue, SubscriptionStatus.Unpaid];

    private readonly IBillingStore _store;
    private readonly IUsageCounter _counter;
    private readonly IUsageEventStore _events;
    private readonly TimeProvider _time;
    private readonly MeteringOptions _options;
    /// <summary>Threshold event ids already written, with when their period's usage closes (after that none can recur).</summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> _thresholdsSent = new(StringComparer.Ordinal);
    private int _pruning;
    /// <summary>Customers, subscriptions and plans kept between batches (null unless <see cref="MeteringOptions.ResolutionCacheDuration"/> is set and the store reports its commits).</summary>
    private readonly ResolutionCache? _cache;

    /// <summary>The random base of this process's acceptance tokens (see <see cref="NextAcceptanceToken"/>).</summary>
    private static readonly long TokenBase = BitConverter.ToInt64(RandomNumberGenerator.GetBytes(sizeof(long)));
    private static long _tokenSequence;

    /// <summary>Creates the service.</summary>
    /// <param name="store">The billing store (customers, plans, subscriptions, outbox).</param>
    /// <param name="counter">The usage counters.</param>
    /// <param name="events">The durable usage events.</param>
    /// <param name="time">The clock.</param>
    /// <param name="options">The settings (validated here).</param>
    public UsageMeteringService(IBillingStore store, IUsageCounter counter, IUsageEventStore events, TimeProvider time, MeteringOptions options)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(counter);
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        (_store, _counter, _events, _time, _options) = (store, counter, events, time, options);
        _cache = ResolutionCache.For(store, time, options.ResolutionCacheDuration);
    }

    /// <summary>How many threshold event ids the service remembers at most before it prunes them (10,000 by default).</summary>
    internal int MaxRememberedThresholds { get; init; } = 10_000;

    /// <summary>How many threshold event ids the service remembers now.</summary>
    internal int RememberedThresholds => _thresholdsSent.Count;

    /// <summary>Ingests one event.</summary>
    /// <param name="input">The event.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Accepted, duplicate (the original result) or rejected with a reason.</returns>
    public async Task<UsageIngestResult> RecordAsync(UsageEventInput input, CancellationToken cancellationToken = default) =>
        (await RecordBatchAsync([input], cancellationToken).ConfigureAwait(false))[0];

    /// <summary>Ingests up to <see cref="MeteringOptions.MaxBatchSize"/> events; each gets its own result.</summary>
    /// <param name="inputs">The events.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per event, in order.</returns>
    /// <exception cref="BillingValidationException">An empty or too large batch.</exception>
    public async Task<IReadOnlyList<UsageIngestResult>> RecordBatchAsync(IReadOnlyList<UsageEventInput> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0 || inputs.Count > _options.MaxBatchSize)
        {
            throw new BillingValidationException("events", $"A batch has 1 to {_options.MaxBatchSize} events.");
        }

        using var activity = Diagnostics.BillingDiagnostics.StartUsageIngest(inputs.Count);
        var results = new UsageIngestResult?[inputs.Count];
        var resolved = new List<(int Index, UsageCounterEvent Event, Target Target, UsageEventInput Input)>(inputs.Count);
        await using (var resolver = new Resolver(_store, _cache, _time, cancellationToken))
        {
            // One read-ahead of the batch's customers (those not cached) and their subscriptions instead of two reads per customer.
            await resolver.PreloadAsync(inputs).ConfigureAwait(false);
            for (var i = 0; i < inputs.Count; i++)
            {
                var input = inputs[i];
                if (Validate(input) is { } invalid)
                {
                    results[i] = invalid;
                    continue;
                }

                var (target, rejection) = await resolver.ResolveAsync(input, _options).ConfigureAwait(false);
                if (target is null)
                {
                    results[i] = rejection;
                    continue;
                }

                resolved.Add((i, ToCounterEvent(input, target), target, input));
            }
        }

        if (resolved.Count == 0)
        {
            return Diagnostics.BillingDiagnostics.UsageIngested(activity, results!);
        }

        if (!_counter.IsDurable)
        {
            await RestoreLostCountersAsync(resolved, cancellationToken).ConfigureAwait(false);
        }

        var counted = await _counter.RecordBatchAsync([.. resolved.Select(r => r.Event)], cancellationToken).ConfigureAwait(false);
        var forgotten = _counter.IsDurable ? null : await FindForgottenAsync(resolved, counted, cancellationToken).ConfigureAwait(false);
        var toStore = new List<(int Resolved, StoredUsageEvent Stored)>(resolved.Count);
        for (var j = 0; j < resolved.Count; j++)
        {
            var (index, e, target, input) = resolved[j];
            var result = counted[j];
            if (forgotten?.GetValueOrDefault(j) is { } original)
            {
                // The counter forgot the key and found the event over the limit; the durable store has it: a duplicate.
                results[index] = new UsageIngestResult { IdempotencyKey = input.IdempotencyKey, Status = UsageIngestStatus.Duplicate, Counter = original.Counter, SubscriptionId = original.SubscriptionId, Total = result.Total };
                continue;
            }

            if (result.Outcome == UsageOutcome.OverLimit)
            {
                results[index] = UsageIngestResult.Rejected(input.IdempotencyKey, "over_limit", $"The hard limit of {target.HardLimit} on '{input.MeterKey}' would be exceeded (total {result.Total}).") with { Counter = e.Counter, SubscriptionId = target.Subscription.Id, Total = result.Total };
                continue;
            }

            results[index] = new UsageIngestResult
            {
                IdempotencyKey = input.IdempotencyKey,
                Status = result.Outcome == UsageOutcome.Accepted ? UsageIngestStatus.Accepted : UsageIngestStatus.Duplicate,
                Counter = e.Counter,
                SubscriptionId = target.Subscription.Id,
                Total = result.Total,
            };
            toStore.Add((j, new StoredUsageEvent
            {
                Counter = e.Counter,
                SubscriptionId = target.Subscription.Id,
                Quantity = input.Quantity,
                IdempotencyKey = input.IdempotencyKey,
                Timestamp = input.Timestamp.ToUniversalTime(),
                UniqueValue = e.UniqueValue,
                Properties = input.Properties ?? Empty.Metadata,
                ReceivedAt = e.Now,
                // A duplicate carries the original acceptance's token, so the stored row names that acceptance
                // whichever of the two appends comes first.
                AcceptanceToken = (result.Outcome == UsageOutcome.Accepted ? e.AcceptanceToken : result.AcceptanceToken) is var token and not 0 ? token : null,
                CountedAsNew = result.Outcome == UsageOutcome.Accepted && !_counter.IsDurable,
            }));
        }

        if (toStore.Count > 0)
        {
            var stored = await _events.AppendAsync([.. toStore.Select(s => s.Stored)], cancellationToken).ConfigureAwait(false);
            var stale = new HashSet<UsageCounterKey>();
            for (var k = 0; k < toStore.Count; k++)
            {
                var j = toStore[k].Resolved;
                if (!stored[k] && counted[j].Outcome == UsageOutcome.Accepted && !_counter.IsDurable
                    && !await StoredForThisAcceptanceAsync(resolved[j].Event, cancellationToken).ConfigureAwait(false))
                {
                    // The durable store had it from another acceptance: the counter forgot the key and counted it again.
                    // (A durable counter never forgets: there, a concurrent repeat appended first, and the event stays accepted.)
                    var index = resolved[j].Index;
                    results[index] = results[index]! with { Status = UsageIngestStatus.Duplicate };
                    stale.Add(resolved[j].Event.Counter);
                }
            }

            foreach (var counter in stale)
            {
                var e = resolved.First(r => r.Event.Counter == counter).Event;
                await RebuildCounterAsync(counter, e.Aggregation, e.Now, cancellationToken).ConfigureAwait(false);
            }

            await EmitThresholdsAsync(resolved, counted, results, cancellationToken).ConfigureAwait(false);
        }

        return Diagnostics.BillingDiagnostics.UsageIngested(activity, results!);
    }

    /// <summary>Checks whether a customer may use a feature now.</summary>
    /// <param name="customerId">The customer.</param>
    /// <param name="feature">The feature key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The decision, with the limit and usage for limit kinds.</returns>
    /// <exception cref="BillingNotFoundException">No such customer.</exception>
    /// <remarks>
    /// Answers from the customer's live subscriptions (active, trialing, past due, unpaid) whose plan grants the
    /// feature; a subscription in a status listed in <see cref="MeteringOptions.BlockingStatuses"/> answers
    /// <c>subscription_blocked</c>. A metered limit is reached when the current period's aggregate is at or past it.
    /// </remarks>
    public async Task<EntitlementDecision> CheckEntitlementAsync(string customerId, string feature, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(customerId);
        ArgumentNullException.ThrowIfNull(feature);
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var customer = await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", customerId);
        var now = await NowForAsync(session, customer, _time, cancellationToken).ConfigureAwait(false);
        var subscriptions = await session.Subscriptions.ListByCustomerAsync(customerId, cancellationToken).ConfigureAwait(false);
        EntitlementDecision? best = null;
        foreach (var subscription in subscriptions.Where(s => Live.Contains(s.Status)).OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal))
        {
            var plan = await session.Plans.GetAsync(subscription.PlanId, cancellationToken).ConfigureAwait(false);
            var entitlement = plan?.Entitlements.FirstOrDefault(e => e.Feature == feature);
            if (plan is null || entitlement is null)
            {
                continue;
            }

            EntitlementDecision decision;
            if (_options.BlockingStatuses.Contains(subscription.Status))
            {
                decision = new(feature, false, "subscription_blocked", entitlement.Kind, entitlement.Limit, null, subscription.Id);
            }
            else if (entitlement.Kind == EntitlementKind.MeteredLimit)
            {
                var meter = plan.MeteredPrices.First(p => p.Meter.Key == entitlement.MeterKey).Meter;
                var period = BillingEngine.UsagePeriodOf(subscription, PeriodOf(subscription, plan, customer, now));
                var used = await _counter.GetTotalAsync(new UsageCounterKey(customer.Id, meter.Key, period.Start), cancellationToken).ConfigureAwait(false);
                var reached = used >= entitlement.Limit!.Value;
                decision = new(feature, !reached, reached ? "limit_reached" : null, entitlement.Kind, entitlement.Limit, used, subscription.Id);
            }
            else
            {
                decision = new(feature, true, null, entitlement.Kind, entitlement.Limit, null, subscription.Id);
            }

            if (decision.Entitled)
            {
                return decision;
            }

            best ??= decision;
        }

        return best ?? new EntitlementDecision(feature, false, subscriptions.Any(s => Live.Contains(s.Status)) ? "not_in_plan" : "no_subscription", null, null, null, null);
    }

    /// <summary>A counter's current total (0 when it has seen nothing).</summary>
    /// <param name="counter">The counter.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The total.</returns>
    public ValueTask<long> GetTotalAsync(UsageCounterKey counter, CancellationToken cancellationToken = default) =>
        _counter.GetTotalAsync(counter, cancellationToken);

    /// <summary>The durable aggregate of a counter (what invoices are priced from).</summary>
    /// <param name="counter">The counter.</param>
    /// <param name="aggregation">The meter's aggregation.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The aggregate.</returns>
    public ValueTask<long> GetDurableTotalAsync(UsageCounterKey counter, MeterAggregation aggregation, CancellationToken cancellationToken = default) =>
        _events.AggregateAsync(counter, aggregation, cancellationToken);

    /// <summary>
    /// Rebuilds every counter of the period starting at <paramref name="periodStart"/> from the durable events (after
    /// a Redis flush or restart); the totals come back exactly.
    /// </summary>
    /// <param name="periodStart">The period start.</param>
    /// <param name="aggregationOf">The aggregation of a meter key (from your catalog).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The number of counters rebuilt.</returns>
    public async Task<int> RebuildCountersAsync(DateTimeOffset periodStart, Func<string, MeterAggregation> aggregationOf, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(aggregationOf);
        var counters = await _events.ListCountersAsync(periodStart, cancellationToken).ConfigureAwait(false);
        var nows = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        await using (var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false))
        {
            foreach (var customerId in counters.Select(c => c.CustomerId).Distinct(StringComparer.Ordinal))
            {
                var customer = await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false);
                nows[customerId] = customer is null ? _time.GetUtcNow() : await NowForAsync(session, customer, _time, cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var counter in counters)
        {
            await RebuildCounterAsync(counter, aggregationOf(counter.MeterKey), nows[counter.CustomerId], cancellationToken).ConfigureAwait(false);
        }

        return counters.Count;
    }

    /// <summary>
    /// Rebuilds one counter; <paramref name="now"/> is the customer's "now" (its test clock, if any), so the keys stay
    /// taken for the dedup window on the same clock the counter's later events carry.
    /// </summary>
    private async Task RebuildCounterAsync(UsageCounterKey counter, MeterAggregation aggregation, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var stored = await _events.ListAsync(counter, cancellationToken).ConfigureAwait(false);
        var events = stored.Select(s => new UsageCounterEvent
        {
            Counter = counter,
            Aggregation = aggregation,
            Quantity = s.Quantity,
            IdempotencyKey = s.IdempotencyKey,
            Timestamp = s.Timestamp,
            UniqueValue = s.UniqueValue ?? (aggregation == MeterAggregation.UniqueCount ? string.Empty : null),
            Now = s.ReceivedAt > now ? now : s.ReceivedAt,
            DedupWindow = _options.DedupWindow,
            CounterRetention = _options.CounterRetention,
            AcceptanceToken = s.AcceptanceToken ?? 0,
        }).ToList();
        await _counter.RebuildAsync(counter, aggregation, events, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Before a fast counter (one that is not <see cref="IUsageCounter.IsDurable"/>) counts events with a hard limit:
    /// rebuilds each of their counters that lost its state from the durable events, so the limit applies to the true
    /// total.
    /// </summary>
    /// <remarks>
    /// A counter that lost its state (a Redis flush or restart without persistence, an expired counter) reads 0 while
    /// the durable store holds events for it. So the service reads the total of each distinct counter of the batch's
    /// hard-limited events (one counter read per counter and batch), and only when it reads 0 (the first events of a
    /// period, or lost state) the durable aggregate (one database read); when that is not 0, the counter is rebuilt
    /// before the batch is counted. Events without a hard limit cost nothing more. The check has to come first: a
    /// counter cannot take back an event it counted (its key stays taken), so a loss found after counting could not
    /// be undone for the events of that call. Requests counting in the same counter while it is rebuilt (say, two
    /// hosts finding the same lost counter at once) may be left out of the rebuilt total; their appends still make
    /// them durable and billed, and the next rebuild (or <see cref="RebuildCountersAsync"/>) counts them again.
    /// </remarks>
    private async Task RestoreLostCountersAsync(List<(int Index, UsageCounterEvent Event, Target Target, UsageEventInput Input)> resolved, CancellationToken cancellationToken)
    {
        HashSet<UsageCounterKey>? checkedCounters = null;
        foreach (var (_, e, _, _) in resolved)
        {
            if (e.HardLimit is null || !(checkedCounters ??= []).Add(e.Counter)
                || await _counter.GetTotalAsync(e.Counter, cancellationToken).ConfigureAwait(false) != 0
                || await _events.AggregateAsync(e.Counter, e.Aggregation, cancellationToken).ConfigureAwait(false) == 0)
            {
                continue;
            }

            await RebuildCounterAsync(e.Counter, e.Aggregation, e.Now, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether the durable row of an event a fast counter accepted, which its append found stored already, was stored
    /// for this very acceptance: a concurrent repeat of the event, answered "duplicate" by the counter with this
    /// acceptance's token, appended first. Otherwise (another token, or none) the row comes from an earlier acceptance
    /// of the key, which the counter forgot. One point read of the durable store's unique key; only on this rare path.
    /// </summary>
    private async Task<bool> StoredForThisAcceptanceAsync(UsageCounterEvent e, CancellationToken cancellationToken) =>
        e.AcceptanceToken != 0
        && await _events.FindAsync(e.Counter.CustomerId, e.IdempotencyKey, cancellationToken).ConfigureAwait(false) is { AcceptanceToken: { } token }
        && token == e.AcceptanceToken;

    /// <summary>
    /// The events a fast counter rejected as over the limit whose key the durable store has (the counter forgot the key:
    /// expired or flushed), by position in <paramref name="resolved"/>; null when there are none. Only these rejections
    /// cost a lookup (one point read of the durable store's unique key each).
    /// </summary>
    private async Task<Dictionary<int, StoredUsageEvent>?> FindForgottenAsync(List<(int Index, UsageCounterEvent Event, Target Target, UsageEventInput Input)> resolved, IReadOnlyList<UsageCounterResult> counted, CancellationToken cancellationToken)
    {
        Dictionary<int, StoredUsageEvent>? forgotten = null;
        for (var j = 0; j < counted.Count; j++)
        {
            if (counted[j].Outcome == UsageOutcome.OverLimit
                && await _events.FindAsync(resolved[j].Event.Counter.CustomerId, resolved[j].Event.IdempotencyKey, cancellationToken).ConfigureAwait(false) is { } original)
            {
                (forgotten ??= [])[j] = original;
            }
        }

        return forgotten;
    }

    private async Task EmitThresholdsAsync(List<(int Index, UsageCounterEvent Event, Target Target, UsageEventInput Input)> resolved, IReadOnlyList<UsageCounterResult> counted, UsageIngestResult?[] results, CancellationToken cancellationToken)
    {
        List<BillingEvent>? events = null;
        for (var j = 0; j < resolved.Count; j++)
        {
            var (index, e, target, _) = resolved[j];
            if (results[index]!.Status != UsageIngestStatus.Accepted || target.SoftThresholds.Count == 0)
            {
                continue;
            }

            foreach (var (feature, threshold) in target.SoftThresholds)
            {
                if (counted[j].Total < threshold)
                {
                    continue;
                }

                var id = string.Create(CultureInfo.InvariantCulture, $"evt_thr_{target.Subscription.Id}_{feature}_{e.Counter.PeriodStart.UtcTicks}_{threshold}");
                if (!_thresholdsSent.TryAdd(id, target.Period.End + _options.LateEventGrace))
                {
                    continue;
                }

                (events ??= []).Add(new BillingEvent
                {
                    Id = id,
                    Type = "usage.threshold_reached",
                    OccurredAt = e.Now,
                    ObjectType = "subscription",
                    ObjectId = target.Subscription.Id,
                    CustomerId = e.Counter.CustomerId,
                    Data = new Dictionary<string, string>
                    {
                        ["feature"] = feature,
                        ["meter"] = e.Counter.MeterKey,
                        ["threshold"] = threshold.ToString(CultureInfo.InvariantCulture),
                        ["total"] = counted[j].Total.ToString(CultureInfo.InvariantCulture),
                        ["period_start"] = e.Counter.PeriodStart.ToString("O", CultureInfo.InvariantCulture),
                    },
                });
            }
        }

        if (events is null)
        {
            return;
        }

        PruneThresholds(events[0].OccurredAt);
        foreach (var billingEvent in events)
        {
            // One event per threshold per period, even across processes: the outbox's unique event id settles races.
            try
            {
                await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
                session.Outbox.Append(billingEvent);
                await session.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DuplicateKeyException)
            {
            }
        }
    }

    /// <summary>
    /// Keeps the memory of sent thresholds bounded: past <see cref="MaxRememberedThresholds"/>, forgets the ids of periods
    /// whose usage has closed, then everything if that is not enough (the outbox's unique id still stops a repeat).
    /// </summary>
    private void PruneThresholds(DateTimeOffset now)
    {
        if (_thresholdsSent.Count <= MaxRememberedThresholds || Interlocked.Exchange(ref _pruning, 1) == 1)
        {
            return;
        }

        try
        {
            foreach (var (id, closesAt) in _thresholdsSent)
            {
                if (closesAt < now)
                {
                    _thresholdsSent.TryRemove(id, out _);
                }
            }

            if (_thresholdsSent.Count > MaxRememberedThresholds)
            {
                _thresholdsSent.Clear();
            }
        }
        finally
        {
            Volatile.Write(ref _pruning, 0);
        }
    }

    private UsageCounterEvent ToCounterEvent(UsageEventInput input, Target target)
    {
        var periodClose = target.Period.End + _options.LateEventGrace;
        var retention = periodClose - target.Now + _options.CounterRetention;
        return new UsageCounterEvent
        {
            Counter = new UsageCounterKey(target.Subscription.CustomerId, target.Meter.Key, target.Period.Start),
            Aggregation = target.Meter.Aggregation,
            Quantity = input.Quantity,
            IdempotencyKey = input.IdempotencyKey,
            Timestamp = input.Timestamp.ToUniversalTime(),
            UniqueValue = target.Meter.Aggregation == MeterAggregation.UniqueCount ? input.Properties![target.Meter.UniqueProperty!] : null,
            HardLimit = target.HardLimit,
            Now = target.Now,
            DedupWindow = _options.DedupWindow,
            CounterRetention = retention > TimeSpan.Zero ? retention : _options.CounterRetention,
            AcceptanceToken = NextAcceptanceToken(),
        };
    }

    /// <summary>
    /// A new acceptance token: the process's random base plus a sequence, never 0 (which means "none"). Distinct for
    /// every event this process sends (for 2^64 events); two processes draw the same one only if their random bases put
    /// their sequences on the same value, and even then it matters only for the same customer and idempotency key.
    /// </summary>
    private static long NextAcceptanceToken()
    {
        var token = unchecked(TokenBase + Interlocked.Increment(ref _tokenSequence));
        return token != 0 ? token : unchecked(TokenBase + Interlocked.Increment(ref _tokenSequence));
    }

    private static UsageIngestResult? Validate(UsageEventInput? input)
    {
        if (input is null)
        {
            return UsageIngestResult.Rejected("", "validation_error", "The event is required.", "event");
        }

        var key = input.IdempotencyKey ?? "";
        if (!UsageEventInput.IsValidIdempotencyKey(input.IdempotencyKey))
        {
            return UsageIngestResult.Rejected(key, "validation_error", $"An idempotency key has 1 to {UsageCounterEvents.MaxIdempotencyKeyLength} characters, none of them NUL (U+0000).", "idempotency_key");
        }

        if (input.CustomerId is null && input.SubscriptionId is null)
        {
            return UsageIngestResult.Rejected(key, "validation_error", "An event names its customer or subscription.", "customer");
        }

        if (!Meter.IsValidKey(input.MeterKey))
        {
            return UsageIngestResult.Rejected(key, "validation_error", "Unknown or malformed meter key.", "meter");
        }

        if (input.Quantity < 0)
        {
            return UsageIngestResult.Rejected(key, "validation_error", "A quantity is a whole number ≥ 0.", "quantity");
        }

        if (input.Properties is { } properties && (properties.Count > UsageEventInput.MaxProperties || properties.Any(p => !UsageEventInput.IsValidProperty(p.Key, p.Value))))
        {
            return UsageIngestResult.Rejected(key, "validation_error", $"At most {UsageEventInput.MaxProperties} properties, keys and values of up to {UsageEventInput.MaxPropertyLength} characters without NUL (U+0000).", "properties");
        }

        return null;
    }

    private static BillingPeriod PeriodOf(Subscription subscription, Plan plan, Customer customer, DateTimeOffset instant) =>
        instant >= subscription.CurrentPeriod.Start && instant < subscription.CurrentPeriod.End
            ? subscription.CurrentPeriod
            : BillingSchedule.FromLocalAnchor(subscription.ScheduleStart, subscription.AnchorLocal, plan.Interval, TimeZoneInfo.FindSystemTimeZoneById(customer.TimeZoneId)).GetPeriodContaining(instant);

    private static async ValueTask<DateTimeOffset> NowForAsync(IBillingSession session, Customer customer, TimeProvider time, CancellationToken cancellationToken)
    {
        if (customer.TestClockId is null)
        {
            return time.GetUtcNow();
        }

        var clock = await session.TestClocks.GetAsync(customer.TestClockId, cancellationToken).ConfigureAwait(false);
        return clock?.FrozenTime ?? time.GetUtcNow();
    }

    /// <summary>Whether a status is one of <see cref="Live"/>.</summary>
    private static bool IsLive(SubscriptionStatus status) =>
        status is SubscriptionStatus.Active or SubscriptionStatus.Trialing or SubscriptionStatus.PastDue or SubscriptionStatus.Unpaid;

    /// <summary>A customer's subscriptions (<paramref name="Source"/>) in resolution order: the live ones by creation then
    /// id, the canceled ones by cancellation (latest first) then id.</summary>
    private sealed record Candidates(IReadOnlyList<Subscription> Source, Subscription[] Live, Subscription[] Canceled);

    /// <summary>Where an event goes: subscription, plan, meter, period, limits, and the customer's "now".</summary>
    private sealed record Target(Subscription Subscription, Plan Plan, Meter Meter, BillingPeriod Period, long? HardLimit, IReadOnlyList<(string Feature, long Threshold)> SoftThresholds, DateTimeOffset Now);

    /// <summary>
    /// Resolves events within one batch, reading each customer and plan once (from the cache when it has them); opens a
    /// session only when something must be read.
    /// </summary>
    private sealed class Resolver(IBillingStore store, ResolutionCache? cache, TimeProvider time, CancellationToken cancellationToken) : IAsyncDisposable
    {
        /// <summary>How many closed spans back an event may go (plan changes in one period); older ones are rejected as too old.</summary>
        private const int MaxClosingHops = 64;

        private readonly Dictionary<string, (Customer? Customer, DateTimeOffset Now, IReadOnlyList<Subscription> Subscriptions)> _customers = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Plan?> _plans = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Invoice?> _invoices = new(StringComparer.Ordinal);
        private readonly Dictionary<string, IReadOnlyList<Invoice>> _subscriptionInvoices = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Candidates> _candidates = new(StringComparer.Ordinal);
        private Plan? _lastPlan;
        /// <summary>Limits per plan and meter (a batch names few: a list beats hashing a plan).</summary>
        private readonly List<(Plan Plan, string MeterKey, long? Hard, IReadOnlyList<(string Feature, long Threshold)> Soft)> _limits = [];
        /// <summary>The cache's version before anything was read: what is read later is cached only if no commit came in between.</summary>
        private readonly long _version = cache?.Version ?? 0;
        private IBillingSession? _session;

        public ValueTask DisposeAsync() => _session?.DisposeAsync() ?? ValueTask.CompletedTask;

        /// <summary>
        /// Reads ahead the customers (named without a subscription) that the cache does not have. When it reads, the
        /// same read takes the batch's customers whose cache entries have lived half their duration (refresh ahead).
        /// </summary>
        /// <remarks>
        /// An entry that expires alone costs a read of its own: with many customers per batch, nearly every batch had one
        /// or two, each a round trip and a query (in the sample host's PostgreSQL benchmark, 1,000 customers and a 1 s
        /// duration: about 200 read-aheads a second of 5 customers each). Refreshing the ageing entries with a read made
        /// anyway gathers the customers' expiries, so later batches find fewer expired entries and the read-aheads take
        /// more customers each (a simulation of that load: a third of the reads, as many customers read). Data read
        /// earlier is only fresher: what another process changed is still seen within the duration, sooner for these.
        /// </remarks>
        public async ValueTask PreloadAsync(IReadOnlyList<UsageEventInput> inputs)
        {
            List<string>? ids = null;
            List<string>? ageing = null;
            foreach (var input in inputs)
            {
                if (input is { SubscriptionId: null, CustomerId: { } id } && !_customers.ContainsKey(id))
                {
                    if (cache is not null && cache.TryGetCustomer(id, out var cached, out var old))
                    {
                        _customers[id] = (cached.Customer, time.GetUtcNow(), cached.Subscriptions);
                        if (old)
                        {
                            (ageing ??= []).Add(id);
                        }
                    }
                    else
                    {
                        (ids ??= []).Add(id);
                    }
                }
            }

            if (ids is null)
            {
                return;
            }

            if (ageing is not null)
            {
                ids.AddRange(ageing);
            }

            var session = await SessionAsync().ConfigureAwait(false);
            await session.Subscriptions.PreloadByCustomersAsync(ids, cancellationToken).ConfigureAwait(false);
            foreach (var id in ageing ?? [])
            {
                // Read ahead just now: the session answers without another query.
                if (await session.Customers.GetAsync(id, cancellationToken).ConfigureAwait(false) is { TestClockId: null } customer)
                {
                    var subscriptions = await session.Subscriptions.ListByCustomerAsync(id, cancellationToken).ConfigureAwait(false);
                    _customers[id] = (customer, time.GetUtcNow(), subscriptions);
                    cache!.AddCustomer(_version, customer, subscriptions);
                }
            }
        }

        private async ValueTask<IBillingSession> SessionAsync() => _session ??= await store.BeginAsync(cancellationToken).ConfigureAwait(false);

        /// <summary>A subscription by id: from its customer's cached subscriptions when the cache knows it.</summary>
        private async ValueTask<Subscription?> SubscriptionAsync(string subscriptionId)
        {
            if (cache?.CustomerOf(subscriptionId) is { } customerId && (_customers.ContainsKey(customerId) || cache.TryGetCustomer(customerId, out _)))
            {
                var (_, _, subscriptions) = await CustomerAsync(customerId).ConfigureAwait(false);
                if (subscriptions.FirstOrDefault(s => s.Id == subscriptionId) is { } known)
                {
                    return known;
                }
            }

            var session = await SessionAsync().ConfigureAwait(false);
            return await session.Subscriptions.GetAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask<(Target? Target, UsageIngestResult? Rejection)> ResolveAsync(UsageEventInput input, MeteringOptions options)
        {
            var key = input.IdempotencyKey;
            Subscription? subscription = null;
            string customerId;
            if (input.SubscriptionId is { } subscriptionId)
            {
                subscription = await SubscriptionAsync(subscriptionId).ConfigureAwait(false);
                if (subscription is null || (input.CustomerId is not null && input.CustomerId != subscription.CustomerId))
                {
                    return (null, UsageIngestResult.Rejected(key, "subscription_not_found", $"No subscription '{subscriptionId}' for this customer.", "subscription"));
                }

                customerId = subscription.CustomerId;
            }
            else
            {
                customerId = input.CustomerId!;
            }

            var (customer, now, subscriptions) = await CustomerAsync(customerId).ConfigureAwait(false);
            if (customer is null)
            {
                return (null, UsageIngestResult.Rejected(key, "customer_not_found", $"No customer '{customerId}'.", "customer"));
            }

            Plan? plan = null;
            MeteredPrice? price = null;
            BillingPeriod period = default;
            var beforeStart = false;
            // The candidates: the live subscriptions (oldest first), then the canceled ones whose cancellation is after
            // the timestamp (latest cancellation first), ordered once per customer and batch. A customer with one
            // subscription (the usual case) needs no ordering: it is the only candidate, if live or canceled after the timestamp.
            var only = subscription ?? (subscriptions.Count == 1 ? subscriptions[0] : null);
            var ordered = only is null ? CandidatesOf(customerId, subscriptions) : null;
            var candidateCount = ordered is null ? 1 : ordered.Live.Length + ordered.Canceled.Length;
            for (var c = 0; c < candidateCount; c++)
            {
                Subscription candidate;
                if (ordered is null)
                {
                    candidate = only!;
                    if (subscription is null && !IsLive(candidate.Status) && !(candidate.Status == SubscriptionStatus.Canceled && candidate.CanceledAt > input.Timestamp))
                    {
                        continue;
                    }
                }
                else if (c < ordered.Live.Length)
                {
                    candidate = ordered.Live[c];
                }
                else
                {
                    candidate = ordered.Canceled[c - ordered.Live.Length];
                    if (!(candidate.CanceledAt > input.Timestamp))
                    {
                        continue;
                    }
                }

                var (candidatePlan, candidatePeriod, tooOld) = await SegmentAsync(candidate, customer, input.Timestamp, now - options.LateEventGrace).ConfigureAwait(false);
                beforeStart |= tooOld;
                if (candidatePlan is not null && PriceOf(candidatePlan, input.MeterKey) is { } found)
                {
                    (subscription, plan, price, period) = (candidate, candidatePlan, found, candidatePeriod);
                    break;
                }
            }

            if (price is null || plan is null || subscription is null)
            {
                return beforeStart
                    ? (null, UsageIngestResult.Rejected(key, "timestamp_too_old", "The timestamp is before the subscription's billing started.", "timestamp"))
                    : (null, UsageIngestResult.Rejected(key, "no_subscription_for_meter", $"No live subscription of the customer prices meter '{input.MeterKey}'.", "meter"));
            }

            var meter = price.Meter;
            if (meter.Aggregation == MeterAggregation.UniqueCount && (input.Properties is null || !input.Properties.TryGetValue(meter.UniqueProperty!, out _)))
            {
                return (null, UsageIngestResult.Rejected(key, "validation_error", $"Meter '{meter.Key}' counts unique values of property '{meter.UniqueProperty}', which the event lacks.", $"properties.{meter.UniqueProperty}"));
            }

            if (input.Timestamp > now + options.FutureTolerance)
            {
                return (null, UsageIngestResult.Rejected(key, "timestamp_in_future", $"The timestamp is more than {options.FutureTolerance} ahead of {now:O}.", "timestamp"));
            }

            if (now > period.End + options.LateEventGrace)
            {
                return (null, UsageIngestResult.Rejected(key, "timestamp_too_old", $"The event's period ended at {period.End:O}, more than {options.LateEventGrace} ago.", "timestamp"));
            }

            if (period.End <= now && await InvoiceFinalizedAsync(subscription.Id, period.End).ConfigureAwait(false))
            {
                return (null, UsageIngestResult.Rejected(key, "period_closed", $"The invoice billing the usage of the period that ended at {period.End:O} is finalized.", "timestamp"));
            }

            var (hard, soft) = LimitsOf(plan, meter.Key);
            return (new Target(subscription, plan, meter, period, hard, soft, now), null);
        }

        /// <summary>A customer's candidate subscriptions in resolution order, worked out once per batch.</summary>
        private Candidates CandidatesOf(string customerId, IReadOnlyList<Subscription> subscriptions)
        {
            if (_candidates.TryGetValue(customerId, out var known) && ReferenceEquals(known.Source, subscriptions))
            {
                return known;
            }

            var live = new List<Subscription>(subscriptions.Count);
            List<Subscription>? canceled = null;
            foreach (var s in subscriptions)
            {
                if (IsLive(s.Status))
                {
                    live.Add(s);
                }
                else if (s.Status == SubscriptionStatus.Canceled)
                {
                    (canceled ??= []).Add(s);
                }
            }

            Subscription[] liveOrdered = live.Count < 2 ? [.. live] : [.. live.OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal)];
            Subscription[] canceledOrdered = canceled is null ? [] : [.. canceled.OrderByDescending(s => s.CanceledAt).ThenBy(s => s.Id, StringComparer.Ordinal)];
            var candidates = new Candidates(subscriptions, liveOrdered, canceledOrdered);
            _candidates[customerId] = candidates;
            return candidates;
        }

        /// <summary>The price of a meter on a plan (the first one), or null.</summary>
        private static MeteredPrice? PriceOf(Plan plan, string meterKey)
        {
            var prices = plan.MeteredPrices;
            for (var i = 0; i < prices.Count; i++)
            {
                if (prices[i].Meter.Key == meterKey)
                {
                    return prices[i];
                }
            }

            return null;
        }

        /// <summary>The hard limit and the soft thresholds of a meter on a plan, worked out once per batch.</summary>
        private (long? Hard, IReadOnlyList<(string Feature, long Threshold)> Soft) LimitsOf(Plan plan, string meterKey)
        {
            foreach (var known in _limits)
            {
                if (ReferenceEquals(known.Plan, plan) && known.MeterKey == meterKey)
                {
                    return (known.Hard, known.Soft);
                }
            }

            long? hard = null;
            var soft = new List<(string, long)>();
            foreach (var e in plan.Entitlements)
            {
                if (e.Kind != EntitlementKind.MeteredLimit || e.MeterKey != meterKey)
                {
                    continue;
                }

                if (e.Enforcement == LimitEnforcement.Hard)
                {
                    hard = hard is { } h ? Math.Min(h, e.Limit!.Value) : e.Limit!.Value;
                }
                else
                {
                    soft.Add((e.Feature, e.Limit!.Value));
                }

                foreach (var t in e.Thresholds)
                {
                    soft.Add((e.Feature, t));
                }
            }

            _limits.Add((plan, meterKey, hard, soft));
            return (hard, soft);
        }

        /// <summary>
        /// The plan and usage span an event at <paramref name="timestamp"/> belongs to on a subscription: the current
        /// usage span (or a later period) on the current plan; for a canceled subscription, the span up to its
        /// cancellation; before the current span, the span billed by the invoice that closed it (its usage lines name
        /// the plan and the span: a plan change or a cancellation), walking back through the final invoices of earlier
        /// plan changes in the period (each keyed at its span's end, its period the span; from a renewal whose plan
        /// prices no usage, to the last change's schedule start) to the one whose span holds the timestamp (or, where a
        /// span made no invoice, among the subscription's invoices while <paramref name="oldestOpenEnd"/> allows a span
        /// there to take events); else the previous period on the current plan.
        /// No plan when the subscription has no usage span there (<c>TooOld</c>: before its billing started).
        /// </summary>
        private async ValueTask<(Plan? Plan, BillingPeriod Period, bool TooOld)> SegmentAsync(Subscription subscription, Customer customer, DateTimeOffset timestamp, DateTimeOffset oldestOpenEnd)
        {
            var plan = await PlanAsync(subscription.PlanId).ConfigureAwait(false);
            var canceled = subscription.Status == SubscriptionStatus.Canceled;
            if (plan is null || !(canceled || IsLive(subscription.Status)))
            {
                return (null, default, false);
            }

            var current = BillingEngine.UsagePeriodOf(subscription, subscription.CurrentPeriod);
            if (canceled)
            {
                if (subscription.CanceledAt is not { } canceledAt || timestamp >= canceledAt)
                {
                    return (null, default, false);
                }

                if (timestamp >= current.Start)
                {
                    return (plan, new BillingPeriod(current.Start, canceledAt < current.End ? canceledAt : current.End), false);
                }
            }
            else if (timestamp >= current.Start)
            {
                return (plan, BillingEngine.UsagePeriodOf(subscription, PeriodOf(subscription, plan, customer, timestamp)), false);
            }

            // Before the current span: the invoices that closed the earlier spans say how each was billed (their usage
            // lines name the plan and the span). The span ending at the cursor is closed by the invoice keyed there: a
            // renewal (its usage lines end there) or the final invoice of a plan change or cancellation (its period is the
            // span); walk back span by span, through each plan change of the period, to the one holding the timestamp.
            var cursor = current.Start;
            for (var hop = 0; hop < MaxClosingHops; hop++)
            {
                var closing = await InvoiceAsync(BillingEngine.PeriodKey(subscription.Id, cursor)).ConfigureAwait(false);
                if (UsageLineAt(closing?.Lines ?? [], timestamp, cursor) is { PlanId: { } planId, Period: { } span })
                {
                    return (await PlanAsync(planId).ConfigureAwait(false), span, false);
                }

                // The span ending at the cursor: a usage line's, a final invoice's period, or (a renewal whose plan prices no
                // usage) the last stretch of the ended period, which starts where the last plan change put the schedule start.
                var before = closing?.Lines.FirstOrDefault(l => l is { Kind: InvoiceLineKind.Usage, Period: { } p } && p.End == cursor)?.Period
                    ?? (closing?.Period is { } billed && billed.End == cursor ? billed
                        : closing?.Period?.Start == cursor && subscription.ScheduleStart < cursor ? new BillingPeriod(subscription.ScheduleStart, cursor) : null);
                if (before is not { } previous || timestamp >= previous.Start || previous.Start >= cursor)
                {
                    // A span with nothing to bill (no usage pricing, no pending line) made no invoice: while a span ending
                    // by the cursor can still take events, look among all the subscription's invoices.
                    if (closing is null && cursor >= oldestOpenEnd
                        && UsageLineAt((await InvoicesAsync(subscription.Id).ConfigureAwait(false)).SelectMany(i => i.Lines), timestamp, cursor) is { PlanId: { } foundPlan, Period: { } found })
                    {
                        return (await PlanAsync(foundPlan).ConfigureAwait(false), found, false);
                    }

                    break;
                }

                cursor = previous.Start;
            }

            return canceled || timestamp < subscription.ScheduleStart ? (null, default, !canceled) : (plan, PeriodOf(subscription, plan, customer, timestamp), false);
        }

        /// <summary>The usage line (naming its plan) of a span that holds <paramref name="timestamp"/> and ends by <paramref name="end"/>.</summary>
        private static InvoiceLine? UsageLineAt(IEnumerable<InvoiceLine> lines, DateTimeOffset timestamp, DateTimeOffset end) =>
            lines.FirstOrDefault(l => l is { Kind: InvoiceLineKind.Usage, PlanId: not null, Period: { } p } && p.Contains(timestamp) && p.End <= end);

        private async ValueTask<Invoice?> InvoiceAsync(string dedupKey)
        {
            if (!_invoices.TryGetValue(dedupKey, out var invoice))
            {
                var session = await SessionAsync().ConfigureAwait(false);
                invoice = await session.Invoices.GetByDedupKeyAsync(dedupKey, cancellationToken).ConfigureAwait(false);
                _invoices[dedupKey] = invoice;
            }

            return invoice;
        }

        private async ValueTask<IReadOnlyList<Invoice>> InvoicesAsync(string subscriptionId)
        {
            if (!_subscriptionInvoices.TryGetValue(subscriptionId, out var invoices))
            {
                var session = await SessionAsync().ConfigureAwait(false);
                invoices = await session.Invoices.ListBySubscriptionAsync(subscriptionId, cancellationToken).ConfigureAwait(false);
                _subscriptionInvoices[subscriptionId] = invoices;
            }

            return invoices;
        }

        private async ValueTask<(Customer? Customer, DateTimeOffset Now, IReadOnlyList<Subscription> Subscriptions)> CustomerAsync(string customerId)
        {
            if (!_customers.TryGetValue(customerId, out var entry))
            {
                if (cache is not null && cache.TryGetCustomer(customerId, out var cached))
                {
                    entry = (cached.Customer, time.GetUtcNow(), cached.Subscriptions);
                }
                else
                {
                    var session = await SessionAsync().ConfigureAwait(false);
                    var customer = await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false);
                    entry = customer is null
                        ? (null, default, [])
                        : (customer, await NowForAsync(session, customer, time, cancellationToken).ConfigureAwait(false), await session.Subscriptions.ListByCustomerAsync(customerId, cancellationToken).ConfigureAwait(false));
                    if (customer is not null)
                    {
                        cache?.AddCustomer(_version, customer, entry.Subscriptions);
                    }
                }

                _customers[customerId] = entry;
            }

            return entry;
        }

        /// <summary>Whether the cycle invoice starting at <paramref name="periodEnd"/> (which bills the usage of the period ending there) has left draft.</summary>
        private async ValueTask<bool> InvoiceFinalizedAsync(string subscriptionId, DateTimeOffset periodEnd) =>
            await InvoiceAsync(BillingEngine.PeriodKey(subscriptionId, periodEnd)).ConfigureAwait(false) is { } invoice && invoice.Status != InvoiceStatus.Draft;

        /// <summary>A plan by id: the last one found answers at once (a batch usually names one plan).</summary>
        private ValueTask<Plan?> PlanAsync(string planId) =>
            _lastPlan is { } last && string.Equals(last.Id, planId, StringComparison.Ordinal) ? ValueTask.FromResult<Plan?>(last) : LoadPlanAsync(planId);

        private async ValueTask<Plan?> LoadPlanAsync(string planId)
        {
            if (!_plans.TryGetValue(planId, out var plan))
            {
                if (cache is not null && cache.TryGetPlan(planId, out var cached))
                {
                    plan = cached;
                }
                else
                {
                    var session = await SessionAsync().ConfigureAwait(false);
                    plan = await session.Plans.GetAsync(planId, cancellationToken).ConfigureAwait(false);
                    if (plan is not null)
                    {
                        cache?.AddPlan(_version, plan);
                    }
                }

                _plans[planId] = plan;
            }

            if (plan is not null && string.Equals(plan.Id, planId, StringComparison.Ordinal))
            {
                _lastPlan = plan;
            }

            return plan;
        }
    }
}
