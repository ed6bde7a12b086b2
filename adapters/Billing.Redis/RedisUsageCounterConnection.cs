using StackExchange.Redis;

namespace Billing.Redis;

/// <summary>
/// The Redis connection of the usage counters registered by <c>AddRedisUsageCounters</c>: one multiplexer, created on first
/// use with <c>ConnectionMultiplexer.ConnectAsync</c> (never blocking a thread) and closed when the container is disposed.
/// </summary>
/// <remarks>
/// Resolve it to share the connection (a health check, diagnostics). A failed connect is not cached: the next call tries
/// again. The multiplexer is created with <c>PreserveAsyncOrder = false</c>: replies complete their tasks concurrently
/// instead of one after another.
/// </remarks>
public sealed class RedisUsageCounterConnection : IDisposable, IAsyncDisposable
{
    private readonly ConfigurationOptions _configuration;
    private readonly Lock _gate = new();
    private Task<ConnectionMultiplexer>? _connect;
    private bool _disposed;

    /// <summary>Creates the connection (nothing is connected until <see cref="GetMultiplexerAsync"/>).</summary>
    /// <param name="options">The options; <see cref="RedisUsageCounterOptions.ConfigurationString"/> is required.</param>
    /// <exception cref="ArgumentException">The options are invalid (the message names each option).</exception>
    public RedisUsageCounterConnection(RedisUsageCounterOptions options)
    {
        RedisUsageCounterOptionsValidator.ThrowIfInvalid(options, requireConnection: true);
        _configuration = ConfigurationOptions.Parse(options.ConfigurationString!);
    }

    /// <summary>Returns the multiplexer, connecting on the first call (and after a failed attempt).</summary>
    /// <param name="cancellationToken">Stops waiting; the connect attempt itself goes on for the next caller.</param>
    /// <returns>The multiplexer; do not dispose it.</returns>
    /// <exception cref="RedisConnectionException">Redis could not be reached and the configuration says
    /// <c>abortConnect=true</c> (the default).</exception>
    /// <exception cref="ObjectDisposedException">The connection was disposed.</exception>
    public ValueTask<IConnectionMultiplexer> GetMultiplexerAsync(CancellationToken cancellationToken = default)
    {
        var connect = Volatile.Read(ref _connect);
        return connect is { IsCompletedSuccessfully: true } && !Volatile.Read(ref _disposed)
            ? new ValueTask<IConnectionMultiplexer>(connect.Result)
            : SlowAsync(cancellationToken);

        async ValueTask<IConnectionMultiplexer> SlowAsync(CancellationToken ct)
        {
            Task<ConnectionMultiplexer> task;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_connect is null || _connect.IsFaulted || _connect.IsCanceled)
                {
                    _connect = ConnectAsync(_configuration.Clone(), CancellationToken.None);
                }

                task = _connect;
            }

            return await task.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the multiplexer (immediately).</summary>
    public void Dispose()
    {
        var connect = MarkDisposed();
        if (connect is null)
        {
            return;
        }

        if (connect.IsCompletedSuccessfully)
        {
            connect.Result.Dispose();
        }
        else
        {
            // Still connecting: close it once it is there.
            _ = connect.ContinueWith(static t => t.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        }
    }

    /// <summary>Closes the multiplexer, letting commands already sent complete.</summary>
    /// <returns>A task that completes when the multiplexer is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        var connect = MarkDisposed();
        if (connect is null)
        {
            return;
        }

        ConnectionMultiplexer multiplexer;
        try
        {
            multiplexer = await connect.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or OperationCanceledException)
        {
            return; // never connected
        }

        await multiplexer.CloseAsync(allowCommandsToComplete: true).ConfigureAwait(false);
        multiplexer.Dispose();
    }

    /// <summary>Connects and applies the adapter's client settings.</summary>
    internal static async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions configuration, CancellationToken cancellationToken)
    {
        var connect = ConnectionMultiplexer.ConnectAsync(configuration);
        ConnectionMultiplexer multiplexer;
        try
        {
            multiplexer = await connect.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _ = connect.ContinueWith(static t => t.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            throw;
        }

        // Complete reply tasks concurrently (StackExchange.Redis 1.x; a no-op, marked obsolete, in 2.x: remove it there).
        multiplexer.PreserveAsyncOrder = false;
        return multiplexer;
    }

    private Task<ConnectionMultiplexer>? MarkDisposed()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return null;
            }

            _disposed = true;
            return _connect;
        }
    }
}
