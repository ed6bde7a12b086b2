using System.Data.Common;
using Billing.Catalog;
using Billing.Customers;
using Billing.EntityFrameworkCore.Mapping;
using Billing.EntityFrameworkCore.Model;
using Billing.Events;
using Billing.Invoices;
using Billing.Payments;
using Billing.Ports;
using Billing.Subscriptions;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>
/// One unit of work on EF Core: reads go to the database (overlaid with this session's own writes), writes are
/// buffered and saved in one transaction by <see cref="CommitAsync"/>. The transaction starts earlier only when a
/// statement must hold a lock until commit: a number from a sequence, or a claim on due work.
/// </summary>
internal sealed class EntityFrameworkBillingSession : IBillingSession, ICustomerStore, IPlanStore, ISubscriptionStore, IInvoiceStore, IPaymentStore, ITestClockStore, IOutbox, IIdempotencyStore
{
    private readonly DbContext _db;
    private readonly SqlDialect _sql;
    private readonly CompiledQueries _queries;
    private readonly PostgreSqlWriter? _writer;
    private readonly BillingStoreChangeFeed? _feed;
    private readonly PendingWrites<Customer> _customers = new("customer", c => c.Id);
    private readonly PendingWrites<Plan> _plans = new("plan", p => p.Id);
    private readonly PendingWrites<Subscription> _subscriptions = new("subscription", s => s.Id);
    private readonly PendingWrites<Invoice> _invoices = new("invoice", i => i.Id);
    private readonly PendingWrites<Payment> _payments = new("payment", p => p.Id);
    private readonly PendingWrites<TestClock> _clocks = new("test_clock", c => c.Id);
    private readonly List<BillingEvent> _events = [];
    private readonly List<IdempotencyRecord> _records = [];
    private Dictionary<string, IReadOnlyList<InvoiceLine>>? _loadedLines;
    private Dictionary<string, Customer>? _readCustomers;
    /// <summary>Subscriptions read ahead per customer by <c>PreloadByCustomersAsync</c> (rows as read, in id order).</summary>
    private Dictionary<string, List<SubscriptionRow>>? _readCustomerSubscriptions;
    private Dictionary<string, Plan>? _readPlans;
    private IDbContextTransaction? _transaction;
    private bool _done;

    public EntityFrameworkBillingSession(DbContext db, SqlDialect sql, CompiledQueries queries, PostgreSqlWriter? writer, BillingStoreChangeFeed? feed = null)
    {
        _feed = feed;
        _db = db;
        _sql = sql;
        _queries = queries;
        _writer = writer;
        _db.ChangeTracker.AutoDetectChangesEnabled = false;
        _db.Database.AutoSavepointsEnabled = false; // the session owns its transaction: no SAVEPOINT/RELEASE round trips
        _db.ChangeTracker.QueryTrackingBehavior = QueryTrackingBehavior.NoTracking;
    }

    public ICustomerStore Customers => this;

    public IPlanStore Plans => this;

    public ISubscriptionStore Subscriptions => this;

    public IInvoiceStore Invoices => this;

    public IPaymentStore Payments => this;

    public ITestClockStore TestClocks => this;

    public IOutbox Outbox => this;

    public IIdempotencyStore Idempotency => this;

    public async ValueTask CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        _done = true;
        try
        {
            if (!HasWrites())
            {
                if (_transaction is not null)
                {
                    await _transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }

                return;
            }

            if (_writer is not null)
            {
                await WriteBatchAsync(_writer, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await EnsureTransactionAsync(cancellationToken).ConfigureAwait(false);
                await StageAsync(cancellationToken).ConfigureAwait(false);
                await _db.SaveChangesAsync(acceptAllChangesOnSuccess: false, cancellationToken).ConfigureAwait(false);
                await _transaction!.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            PublishChanges();
        }
        catch (Exception e) when (DatabaseErrors.Translate(e) is { } translated)
        {
            throw translated;
        }
        finally
        {
            await DisposeTransactionAsync().ConfigureAwait(false);
            _db.ChangeTracker.Clear();
        }
    }

    /// <summary>Tells the store's subscribers which customers (directly or through subscriptions) and plans this commit changed.</summary>
    private void PublishChanges()
    {
        if (_feed is not null && !(_customers.IsEmpty && _subscriptions.IsEmpty && _plans.IsEmpty))
        {
            _feed.Publish(_customers.Changes.Select(c => c.Value), _subscriptions.Changes.Select(s => s.Value), _plans.Changes.Select(p => p.Value));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _done = true;
        await DisposeTransactionAsync().ConfigureAwait(false);
        await _db.DisposeAsync().ConfigureAwait(false);
    }

    private bool HasWrites() =>
        !_customers.IsEmpty || !_plans.IsEmpty || !_subscriptions.IsEmpty || !_invoices.IsEmpty || !_payments.IsEmpty || !_clocks.IsEmpty || _events.Count > 0 || _records.Count > 0;

    private async Task StageAsync(CancellationToken cancellationToken)
    {
        Stage(_customers, RowMapper.ToRow);
        Stage(_plans, RowMapper.ToRow);
        Stage(_subscriptions, RowMapper.ToRow);
        Stage(_payments, RowMapper.ToRow);
        Stage(_clocks, RowMapper.ToRow);
        foreach (var change in _invoices.Changes)
        {
            var invoice = change.Value;
            if (change.IsNew)
            {
                var row = RowMapper.ToRow(invoice, withLines: true);
                row.Version = 1;
                _db.Add(row);
                continue;
            }

            var linesChanged = LinesChanged(invoice);
            var updated = RowMapper.ToRow(invoice, withLines: false);
            MarkModified(updated, change.ReadVersion);
            if (linesChanged)
            {
                await ExecuteAsync(_sql.DeleteInvoiceLines, cancellationToken, ("id", invoice.Id)).ConfigureAwait(false);
                foreach (var line in RowMapper.LineRows(invoice))
                {
                    _db.Entry(line).State = EntityState.Added;
                }
            }
        }

        foreach (var e in _events)
        {
            _db.Add(RowMapper.ToRow(e));
        }

        ThrowIfDuplicateRecords();
        foreach (var r in _records)
        {
            _db.Add(RowMapper.ToRow(r));
        }
    }

    /// <summary>
    /// PostgreSQL: every pending write in one batch (see <see cref="PostgreSqlWriter"/>), in an implicit transaction
    /// unless the session already holds one, which is then committed.
    /// </summary>
    private async Task WriteBatchAsync(PostgreSqlWriter writer, CancellationToken cancellationToken)
    {
        var updates = new List<(string ObjectType, string Id, long ReadVersion)>();
        var connection = (NpgsqlConnection)_db.Database.GetDbConnection();
        await using var batch = new NpgsqlBatch(connection) { Transaction = (NpgsqlTransaction?)_transaction?.GetDbTransaction() };

        void Add(NpgsqlBatchCommand command) => batch.BatchCommands.Add(command);

        void Update(NpgsqlBatchCommand command, string objectType, string id, long readVersion)
        {
            batch.BatchCommands.Add(command);
            updates.Add((objectType, id, readVersion));
        }

        void Rows<TDomain, TRow>(PendingWrites<TDomain> writes, PostgreSqlWriter.Table<TRow> table, Func<TDomain, TRow> toRow)
            where TDomain : class
            where TRow : class
        {
            foreach (var change in writes.Changes)
            {
                var row = toRow(change.Value);
                if (change.IsNew)
                {
                    Add(table.Insert(row));
                }
                else
                {
                    Update(table.Update(row, change.ReadVersion), table.ObjectType, table.IdOf(row), change.ReadVersion);
                }
            }
        }

        Rows(_customers, writer.Customers, RowMapper.ToRow);
        Rows(_plans, writer.Plans, RowMapper.ToRow);
        Rows(_clocks, writer.Clocks, RowMapper.ToRow);
        Rows(_subscriptions, writer.Subscriptions, RowMapper.ToRow);
        foreach (var change in _invoices.Changes)
        {
            var invoice = change.Value;
            var row = RowMapper.ToRow(invoice, withLines: false);
            if (change.IsNew)
            {
                Add(writer.Invoices.Insert(row));
            }
            else
            {
                Update(writer.Invoices.Update(row, change.ReadVersion), writer.Invoices.ObjectType, invoice.Id, change.ReadVersion);
                if (!LinesChanged(invoice))
                {
                    continue;
                }

                var delete = new NpgsqlBatchCommand(writer.DeleteLines);
                delete.Parameters.Add(new NpgsqlParameter { Value = invoice.Id });
                Add(delete);
            }

            foreach (var line in RowMapper.LineRows(invoice))
            {
                Add(writer.Lines.Insert(line));
            }
        }

        Rows(_payments, writer.Payments, RowMapper.ToRow);
        foreach (var e in _events)
        {
            Add(writer.Events.Insert(RowMapper.ToRow(e)));
        }

        ThrowIfDuplicateRecords();
        foreach (var r in _records)
        {
            Add(writer.Records.Insert(RowMapper.ToRow(r)));
        }

        var opened = connection.State != System.Data.ConnectionState.Open;
        if (opened)
        {
            await _db.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            if (_transaction is not null)
            {
                await _transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.SerializationFailure && StaleWrite(updates, e.MessageText) is { } stale)
        {
            // Raised by expect_current_version: the message names the row (Npgsql does not say which batch command failed).
            throw new ConcurrencyConflictException(stale.ObjectType, stale.Id, stale.ReadVersion);
        }
        finally
        {
            if (opened)
            {
                await _db.Database.CloseConnectionAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Lines are rewritten only when the record carries other lines than the ones this session read.</summary>
    private bool LinesChanged(Invoice invoice) =>
        _loadedLines is null || !_loadedLines.TryGetValue(invoice.Id, out var loaded) || !ReferenceEquals(loaded, invoice.Lines);

    /// <summary>Two records with one (scope, key) in a session fail before anything is written.</summary>
    private void ThrowIfDuplicateRecords()
    {
        var keys = new HashSet<(string, string)>();
        foreach (var r in _records)
        {
            if (!keys.Add((r.Scope, r.Key)))
            {
                throw new DuplicateKeyException("idempotency_record", "scope_key", $"{r.Scope}/{r.Key}");
            }
        }
    }

    private static (string ObjectType, string Id, long ReadVersion)? StaleWrite(List<(string ObjectType, string Id, long ReadVersion)> updates, string message)
    {
        foreach (var tag in updates)
        {
            if (message == PostgreSqlWriter.StaleWriteMessage(tag.ObjectType, tag.Id, tag.ReadVersion))
            {
                return tag;
            }
        }

        return null;
    }

    private void Stage<TDomain, TRow>(PendingWrites<TDomain> writes, Func<TDomain, TRow> toRow)
        where TDomain : class
        where TRow : class
    {
        foreach (var change in writes.Changes)
        {
            var row = toRow(change.Value);
            if (change.IsNew)
            {
                _db.Entry(row).Property(nameof(CustomerRow.Version)).CurrentValue = 1L;
                _db.Entry(row).State = EntityState.Added;
            }
            else
            {
                MarkModified(row, change.ReadVersion);
            }
        }
    }

    private void MarkModified<TRow>(TRow row, long readVersion)
        where TRow : class
    {
        var entry = _db.Entry(row);
        entry.Property(nameof(CustomerRow.Version)).CurrentValue = readVersion + 1;
        entry.State = EntityState.Modified;
        entry.Property(nameof(CustomerRow.Version)).OriginalValue = readVersion;
    }

    private async Task EnsureTransactionAsync(CancellationToken cancellationToken)
    {
        _transaction ??= await _db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task DisposeTransactionAsync()
    {
        if (_transaction is { } tx)
        {
            _transaction = null;
            await tx.DisposeAsync().ConfigureAwait(false);
        }
    }

    private DbParameter Parameter(string name, object? value)
    {
        value ??= DBNull.Value;
        if (_sql.IsPostgreSql)
        {
            return value is DateTimeOffset d
                ? new NpgsqlParameter(name, NpgsqlDbType.TimestampTz) { Value = d.ToUniversalTime() }
                : new NpgsqlParameter(name, value);
        }

        return new SqliteParameter(name, value is DateTimeOffset t ? t.UtcTicks : value);
    }

    private async Task<object?> ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        var connection = _db.Database.GetDbConnection();
        if (connection.State != System.Data.ConnectionState.Open)
        {
            await _db.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = _transaction?.GetDbTransaction();
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(Parameter(name, value));
        }

        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The rows of a compiled query.</summary>
    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> rows, CancellationToken cancellationToken)
    {
        var list = new List<T>();
        await foreach (var row in rows.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            list.Add(row);
        }

        return list;
    }

    private static async Task<T> TranslatingAsync<T>(Func<Task<T>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (Exception e) when (DatabaseErrors.Translate(e) is { } translated)
        {
            throw translated;
        }
    }

    private void ThrowIfDone() => ObjectDisposedException.ThrowIf(_done, this);

    /// <summary>A record by id: this session's pending write if there is one, else the committed row.</summary>
    private async ValueTask<T?> GetAsync<T, TRow>(PendingWrites<T> pending, string id, Func<DbContext, string, CancellationToken, Task<TRow?>> query, Func<TRow, T> map, CancellationToken cancellationToken)
        where T : class
        where TRow : class
    {
        ArgumentNullException.ThrowIfNull(id);
        if (pending.TryGet(id, out var value))
        {
            return value;
        }

        var row = await query(_db, id, cancellationToken).ConfigureAwait(false);
        return row is null ? null : map(row);
    }

    // ---------------------------------------------------------------- customers

    ValueTask<Customer?> ICustomerStore.GetAsync(string id, CancellationToken cancellationToken) =>
        _readCustomers is not null && !_customers.Contains(id) && _readCustomers.TryGetValue(id, out var read)
            ? ValueTask.FromResult<Customer?>(read)
            : GetAsync(_customers, id, _queries.CustomerById, RowMapper.ToDomain, cancellationToken);

    void ICustomerStore.Add(Customer customer) => _customers.Add(customer, customer.Version);

    void ICustomerStore.Update(Customer customer) => _customers.Update(customer, customer.Version);

    async ValueTask<IReadOnlyList<Customer>> ICustomerStore.ListByTestClockAsync(string testClockId, CancellationToken cancellationToken)
    {
        var rows = await _db.Set<CustomerRow>().Where(r => r.TestClockId == testClockId).OrderBy(r => r.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        return [.. _customers.Overlay(rows.Select(RowMapper.ToDomain), c => c.TestClockId == testClockId).OrderBy(c => c.Id, StringComparer.Ordinal)];
    }

    async ValueTask<ListPage<Customer>> ICustomerStore.ListAsync(PageRequest page, string? email, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(page);
        page.Validate();
        var after = page.StartingAfter is { } cursor
            ? Key(await ((ICustomerStore)this).GetAsync(cursor, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", cursor))
            : ((DateTimeOffset, string)?)null;
        var query = _db.Set<CustomerRow>().AsQueryable();
        if (email is not null)
        {
            query = query.Where(r => r.Email == email);
        }

        var rows = await NewestFirstAfter(query, after).Take(checked(page.Limit + 1 + _customers.Count)).ToListAsync(cancellationToken).ConfigureAwait(false);
        return NewestFirst.Page(_customers.Overlay(rows.Select(RowMapper.ToDomain), c => email is null || string.Equals(c.Email, email, StringComparison.Ordinal)), Key, page.Limit, after);

        static (DateTimeOffset, string) Key(Customer c) => (c.CreatedAt, c.Id);
    }

    // ---------------------------------------------------------------- plans

    ValueTask<Plan?> IPlanStore.GetAsync(string id, CancellationToken cancellationToken) =>
        _readPlans is not null && !_plans.Contains(id) && _readPlans.TryGetValue(id, out var read)
            ? ValueTask.FromResult<Plan?>(read)
            : GetAsync(_plans, id, _queries.PlanById, RowMapper.ToDomain, cancellationToken);

    void IPlanStore.Add(Plan plan) => _plans.Add(plan, plan.Version);

    void IPlanStore.Update(Plan plan) => _plans.Update(plan, plan.Version);

    async ValueTask<ListPage<Plan>> IPlanStore.ListAsync(PageRequest page, bool? archived, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(page);
        page.Validate();
        var after = page.StartingAfter is { } cursor
            ? Key(await ((IPlanStore)this).GetAsync(cursor, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", cursor))
            : ((DateTimeOffset, string)?)null;
        var query = _db.Set<PlanRow>().AsQueryable();
        if (archived is { } only)
        {
            query = query.Where(r => r.Archived == only);
        }

        var rows = await NewestFirstAfter(query, after).Take(checked(page.Limit + 1 + _plans.Count)).ToListAsync(cancellationToken).ConfigureAwait(false);
        return NewestFirst.Page(_plans.Overlay(rows.Select(RowMapper.ToDomain), p => archived is not { } keep || p.Archived == keep), Key, page.Limit, after);

        static (DateTimeOffset, string) Key(Plan p) => (p.CreatedAt, p.Id);
    }

    // ---------------------------------------------------------------- subscriptions

    /// <remarks>
    /// Reads the subscription's customer and plan in the same query and keeps them for this session's next
    /// <c>GetAsync</c> of either (a snapshot taken with the subscription, as separate reads an instant later would be).
    /// </remarks>
    async ValueTask<Subscription?> ISubscriptionStore.GetAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (_subscriptions.TryGet(id, out var pending))
        {
            return pending;
        }

        var graph = await _queries.SubscriptionGraphById(_db, id, cancellationToken).ConfigureAwait(false);
        if (graph is null)
        {
            return null;
        }

        if (graph.Customer is { } customer)
        {
            (_readCustomers ??= new(StringComparer.Ordinal))[customer.Id] = RowMapper.ToDomain(customer);
        }

        if (graph.Plan is { } plan)
        {
            (_readPlans ??= new(StringComparer.Ordinal))[plan.Id] = RowMapper.ToDomain(plan);
        }

        return RowMapper.ToDomain(graph.Subscription);
    }

    void ISubscriptionStore.Add(Subscription subscription) => _subscriptions.Add(subscription, subscription.Version);

    void ISubscriptionStore.Update(Subscription subscription) => _subscriptions.Update(subscription, subscription.Version);

    async ValueTask<IReadOnlyList<Subscription>> ISubscriptionStore.ListDueAsync(DateTimeOffset now, string? testClockId, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var query = _db.Set<SubscriptionRow>().Where(r => r.NextActionAt != null && r.NextActionAt <= now);
        query = testClockId is null ? query.Where(r => r.TestClockId == null) : query.Where(r => r.TestClockId == testClockId);
        var rows = await query.OrderBy(r => r.NextActionAt).ThenBy(r => r.Id).Take(limit).ToListAsync(cancellationToken).ConfigureAwait(false);
        return Due(_subscriptions.Overlay(rows.Select(RowMapper.ToDomain), s => s.TestClockId == testClockId && s.NextActionAt <= now), s => s.NextActionAt, s => s.Id, limit);
    }

    async ValueTask<IReadOnlyList<Subscription>> ISubscriptionStore.ClaimDueAsync(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ThrowIfDone();
        await EnsureTransactionAsync(cancellationToken).ConfigureAwait(false);
        var sql = testClockId is null ? _sql.ClaimSubscriptions : _sql.ClaimSubscriptionsOnClock;
        var rows = await TranslatingAsync(() => _db.Set<SubscriptionRow>().FromSqlRaw(sql, ClaimParameters(now, testClockId, limit, leaseStart, lease)).AsNoTracking().ToListAsync(cancellationToken)).ConfigureAwait(false);
        return Due(_subscriptions.Overlay(rows.Select(RowMapper.ToDomain), s => s.TestClockId == testClockId && s.NextActionAt <= now), s => s.NextActionAt, s => s.Id, limit);
    }

    async ValueTask<IReadOnlyList<Subscription>> ISubscriptionStore.ListByCustomerAsync(string customerId, CancellationToken cancellationToken)
    {
        var rows = _readCustomerSubscriptions is not null && _readCustomerSubscriptions.TryGetValue(customerId, out var read)
            ? read
            : await ToListAsync(_queries.SubscriptionsByCustomer(_db, customerId), cancellationToken).ConfigureAwait(false);
        return [.. _subscriptions.Overlay(rows.Select(RowMapper.ToDomain), s => s.CustomerId == customerId).OrderBy(s => s.Id, StringComparer.Ordinal)];
    }

    /// <remarks>Two queries (the customers, then their subscriptions) for the ids not read ahead yet; one id is left to the
    /// single reads, which cost the same.</remarks>
    async ValueTask ISubscriptionStore.PreloadByCustomersAsync(IReadOnlyCollection<string> customerIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(customerIds);
        var ids = customerIds.Where(id => id is not null && !(_readCustomerSubscriptions?.ContainsKey(id) ?? false)).Distinct(StringComparer.Ordinal).ToArray();
        if (ids.Length < 2)
        {
            return;
        }

        // One compiled query (no expression tree to build, funcletize and look up per read-ahead): the customers joined
        // with their subscriptions, in subscription id order.
        var rows = await ToListAsync(_queries.CustomersWithSubscriptionsByIds(_db, ids), cancellationToken).ConfigureAwait(false);
        _readCustomers ??= new(StringComparer.Ordinal);
        _readCustomerSubscriptions ??= new(StringComparer.Ordinal);
        var read = new Dictionary<string, List<SubscriptionRow>>(ids.Length, StringComparer.Ordinal);
        foreach (var row in rows)
        {
            if (!read.TryGetValue(row.Customer.Id, out var list))
            {
                read[row.Customer.Id] = list = [];
                _readCustomers[row.Customer.Id] = RowMapper.ToDomain(row.Customer);
                _readCustomerSubscriptions[row.Customer.Id] = list;
            }

            if (row.Subscription is { } subscription)
            {
                list.Add(subscription);
            }
        }
    }

    // ---------------------------------------------------------------- invoices

    async ValueTask<Invoice?> IInvoiceStore.GetAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (_invoices.TryGet(id, out var pending))
        {
            return pending;
        }

        return Loaded(await _queries.InvoiceById(_db, id, cancellationToken).ConfigureAwait(false));
    }

    async ValueTask<Invoice?> IInvoiceStore.GetByDedupKeyAsync(string dedupKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dedupKey);
        foreach (var change in _invoices.Changes)
        {
            if (change.Value.DedupKey == dedupKey)
            {
                return change.Value;
            }
        }

        var invoice = Loaded(await _queries.InvoiceByDedupKey(_db, dedupKey, cancellationToken).ConfigureAwait(false));
        return invoice is not null && _invoices.Contains(invoice.Id) ? null : invoice;
    }

    void IInvoiceStore.Add(Invoice invoice) => _invoices.Add(invoice, invoice.Version);

    void IInvoiceStore.Update(Invoice invoice) => _invoices.Update(invoice, invoice.Version);

    async ValueTask<IReadOnlyList<Invoice>> IInvoiceStore.ListDueAsync(DateTimeOffset now, string? testClockId, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var query = _db.Set<InvoiceRow>().Where(r => r.NextActionAt != null && r.NextActionAt <= now);
        query = testClockId is null ? query.Where(r => r.TestClockId == null) : query.Where(r => r.TestClockId == testClockId);
        var rows = await query.OrderBy(r => r.NextActionAt).ThenBy(r => r.Id).Take(limit).Include(r => r.Lines).AsSplitQuery().ToListAsync(cancellationToken).ConfigureAwait(false);
        return Due(_invoices.Overlay(rows.Select(r => Loaded(r)!), i => i.TestClockId == testClockId && i.NextActionAt <= now), i => i.NextActionAt, i => i.Id, limit);
    }

    async ValueTask<IReadOnlyList<Invoice>> IInvoiceStore.ClaimDueAsync(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ThrowIfDone();
        await EnsureTransactionAsync(cancellationToken).ConfigureAwait(false);
        var sql = testClockId is null ? _sql.ClaimInvoices : _sql.ClaimInvoicesOnClock;
        var rows = await TranslatingAsync(() => _db.Set<InvoiceRow>().FromSqlRaw(sql, ClaimParameters(now, testClockId, limit, leaseStart, lease)).AsNoTracking().ToListAsync(cancellationToken)).ConfigureAwait(false);

        // The run reads each invoice again before it acts, so the claimed rows come without their lines.
        var claimed = rows.Select(r => RowMapper.ToDomain(r, []));
        return Due(_invoices.Overlay(claimed, i => i.TestClockId == testClockId && i.NextActionAt <= now), i => i.NextActionAt, i => i.Id, limit);
    }

    async ValueTask<IReadOnlyList<Invoice>> IInvoiceStore.ListBySubscriptionAsync(string subscriptionId, CancellationToken cancellationToken)
    {
        var rows = await _db.Set<InvoiceRow>().Where(r => r.SubscriptionId == subscriptionId).Include(r => r.Lines).AsSplitQuery().ToListAsync(cancellationToken).ConfigureAwait(false);
        return [.. _invoices.Overlay(rows.Select(r => Loaded(r)!), i => i.SubscriptionId == subscriptionId).OrderBy(i => i.CreatedAt).ThenBy(i => i.Id, StringComparer.Ordinal)];
    }

    async ValueTask<long> IInvoiceStore.NextNumberAsync(string sequence, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sequence);
        ThrowIfDone();
        await EnsureTransactionAsync(cancellationToken).ConfigureAwait(false);
        var value = await TranslatingAsync(() => ExecuteAsync(_sql.NextNumber, cancellationToken, ("sequence", sequence))).ConfigureAwait(false);
        return Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private Invoice? Loaded(InvoiceRow? row)
    {
        if (row is null)
        {
            return null;
        }

        var invoice = RowMapper.ToDomain(row, row.Lines);
        (_loadedLines ??= new(StringComparer.Ordinal))[invoice.Id] = invoice.Lines;
        return invoice;
    }

    // ---------------------------------------------------------------- payments

    ValueTask<Payment?> IPaymentStore.GetAsync(string id, CancellationToken cancellationToken) =>
        GetAsync(_payments, id, _queries.PaymentById, RowMapper.ToDomain, cancellationToken);

    async ValueTask<Payment?> IPaymentStore.GetByIdempotencyKeyAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        foreach (var change in _payments.Changes)
        {
            if (change.Value.IdempotencyKey == idempotencyKey)
            {
                return change.Value;
            }
        }

        var row = await _queries.PaymentByKey(_db, idempotencyKey, cancellationToken).ConfigureAwait(false);
        return row is null || _payments.Contains(row.Id) ? null : RowMapper.ToDomain(row);
    }

    void IPaymentStore.Add(Payment payment) => _payments.Add(payment, payment.Version);

    void IPaymentStore.Update(Payment payment) => _payments.Update(payment, payment.Version);

    async ValueTask<IReadOnlyList<Payment>> IPaymentStore.ListByInvoiceAsync(string invoiceId, CancellationToken cancellationToken)
    {
        var rows = await _db.Set<PaymentRow>().Where(r => r.InvoiceId == invoiceId).ToListAsync(cancellationToken).ConfigureAwait(false);
        return [.. _payments.Overlay(rows.Select(RowMapper.ToDomain), p => p.InvoiceId == invoiceId).OrderBy(p => p.Attempt)];
    }

    // ---------------------------------------------------------------- test clocks

    ValueTask<TestClock?> ITestClockStore.GetAsync(string id, CancellationToken cancellationToken) =>
        GetAsync(_clocks, id, _queries.ClockById, RowMapper.ToDomain, cancellationToken);

    void ITestClockStore.Add(TestClock clock) => _clocks.Add(clock, clock.Version);

    void ITestClockStore.Update(TestClock clock) => _clocks.Update(clock, clock.Version);

    // ---------------------------------------------------------------- outbox

    void IOutbox.Append(BillingEvent billingEvent)
    {
        ArgumentNullException.ThrowIfNull(billingEvent);
        _events.Add(billingEvent);
    }

    async ValueTask<IReadOnlyList<OutboxEntry>> IOutbox.ReadAsync(long afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ThrowIfDone();

        // Publish what has committed since the last read: in its own short transaction, unless this session
        // already holds one (then the positions commit with it).
        if (_sql.PublishOutbox is { } publish && await ExecuteAsync(_sql.HasUnpublished, cancellationToken).ConfigureAwait(false) is true)
        {
            if (_transaction is null)
            {
                await using var tx = await _db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await ExecuteWithAsync(tx, publish, cancellationToken).ConfigureAwait(false);
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await ExecuteAsync(publish, cancellationToken).ConfigureAwait(false);
            }
        }

        var rows = await _db.Set<OutboxEventRow>().Where(r => r.Position > afterPosition).OrderBy(r => r.Position).Take(limit).ToListAsync(cancellationToken).ConfigureAwait(false);
        return [.. rows.Select(RowMapper.ToDomain)];
    }

    private async Task ExecuteWithAsync(IDbContextTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = _db.Database.GetDbConnection().CreateCommand();
        command.CommandText = sql;
        command.Transaction = tx.GetDbTransaction();
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- idempotency

    async ValueTask<IdempotencyRecord?> IIdempotencyStore.GetAsync(string scope, string key, CancellationToken cancellationToken)
    {
        for (var i = _records.Count - 1; i >= 0; i--)
        {
            if (_records[i].Scope == scope && _records[i].Key == key)
            {
                return _records[i];
            }
        }

        var row = await _db.Set<IdempotencyRecordRow>().FirstOrDefaultAsync(r => r.Scope == scope && r.Key == key, cancellationToken).ConfigureAwait(false);
        return row is null ? null : RowMapper.ToDomain(row);
    }

    void IIdempotencyStore.Add(IdempotencyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        _records.Add(record);
    }

    // ---------------------------------------------------------------- helpers

    private object[] ClaimParameters(DateTimeOffset now, string? testClockId, int limit, DateTimeOffset leaseStart, TimeSpan lease)
    {
        List<object> parameters = [Parameter("now", now), Parameter("limit", limit), Parameter("lease_start", leaseStart), Parameter("until", leaseStart + lease)];
        if (testClockId is not null)
        {
            parameters.Add(Parameter("clock", testClockId));
        }

        return [.. parameters];
    }

    /// <summary>
    /// Rows after the cursor in list order (created_at descending, then id descending; ids compare by code point:
    /// <c>COLLATE "C"</c> on PostgreSQL, BINARY on SQLite). The caller takes limit + 1 + its pending writes, so the
    /// page stays exact when they are overlaid (see <see cref="NewestFirst.Page{T}"/>).
    /// </summary>
    private static IQueryable<TRow> NewestFirstAfter<TRow>(IQueryable<TRow> query, (DateTimeOffset CreatedAt, string Id)? after)
        where TRow : class, IListedRow
    {
        if (after is { } cursor)
        {
            var (at, id) = cursor;
#pragma warning disable CA1309 // translated to SQL `id < @id` (ordinal by the column's collation); never run in .NET
            query = query.Where(r => r.CreatedAt < at || (r.CreatedAt == at && string.Compare(r.Id, id) < 0));
#pragma warning restore CA1309
        }

        return query.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id);
    }

    private static List<T> Due<T>(List<T> rows, Func<T, DateTimeOffset?> due, Func<T, string> id, int limit) =>
        [.. rows.OrderBy(r => due(r)!.Value.UtcTicks).ThenBy(id, StringComparer.Ordinal).Take(limit)];
}
