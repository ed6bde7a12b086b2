using Billing.Ports;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.SampleHost.Tests.Support;

/// <summary>
/// The sample host whose billing store can be held shut: while <see cref="Gate"/> is closed, opening a unit of work
/// waits, so a request is "in progress" for as long as a test wants (the real SQLite store stays underneath).
/// </summary>
public sealed class GatedHostFactory : SampleHostFactory
{
    public StoreGate Gate { get; } = new();

    protected override void ConfigureServices(IServiceCollection services)
    {
        var inner = (IBillingStore)services.Last(d => d.ServiceType == typeof(IBillingStore)).ImplementationInstance!;
        services.Replace(ServiceDescriptor.Singleton<IBillingStore>(new GatedStore(inner, Gate)));
    }

    private sealed class GatedStore(IBillingStore inner, StoreGate gate) : IBillingStore
    {
        public async ValueTask<IBillingSession> BeginAsync(CancellationToken cancellationToken = default)
        {
            await gate.PassAsync(cancellationToken);
            return await inner.BeginAsync(cancellationToken);
        }
    }
}

/// <summary>Open by default; <see cref="Close"/> makes <see cref="PassAsync"/> wait until <see cref="Open"/>.</summary>
public sealed class StoreGate
{
    private readonly Lock _lock = new();
    private TaskCompletionSource? _closed;
    private TaskCompletionSource _waiting = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when a caller is waiting at the closed gate.</summary>
    public Task Waiting => _waiting.Task;

    public void Close()
    {
        lock (_lock)
        {
            _closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Open()
    {
        lock (_lock)
        {
            _closed?.TrySetResult();
            _closed = null;
        }
    }

    public Task PassAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_closed is null)
            {
                return Task.CompletedTask;
            }

            _waiting.TrySetResult();
            return _closed.Task.WaitAsync(cancellationToken);
        }
    }
}
