using Billing.Ports;

namespace Billing.SampleHost.Workers;

/// <summary>Where the outbox dispatcher delivers billing events, one at a time in position order. The sample host
/// logs them (<see cref="LoggingOutboxSink"/>); webhook delivery plugs in here.</summary>
/// <remarks>Delivery is at least once: an event whose batch could not record its checkpoint (a crash, a lost
/// connection) is delivered again, so a sink deduplicates by <see cref="Billing.Events.BillingEvent.Id"/>. A sink that
/// throws stops the batch at that event; the checkpoint keeps the events before it and the event is retried.</remarks>
internal interface IOutboxSink
{
    ValueTask DispatchAsync(OutboxEntry entry, CancellationToken cancellationToken);
}

/// <summary>Writes each billing event as one structured log entry (category <c>Billing.Events</c>).</summary>
internal sealed partial class LoggingOutboxSink(ILoggerFactory loggers) : IOutboxSink
{
    private readonly ILogger _logger = loggers.CreateLogger("Billing.Events");

    public ValueTask DispatchAsync(OutboxEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var e = entry.Event;
        LogEvent(_logger, entry.Position, e.Type, e.Id, e.ObjectType, e.ObjectId, e.CustomerId, e.OccurredAt, e.Data);
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(EventId = 130, Level = LogLevel.Information, Message = "Billing event {Position} {EventType} {EventId} on {ObjectType} {ObjectId} (customer {CustomerId}) at {OccurredAt:O} {Data}")]
    private static partial void LogEvent(ILogger logger, long position, string eventType, string eventId, string objectType, string objectId, string? customerId, DateTimeOffset occurredAt, IReadOnlyDictionary<string, string> data);
}
