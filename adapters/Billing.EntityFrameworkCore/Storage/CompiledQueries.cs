using Billing.EntityFrameworkCore.Model;
using Microsoft.EntityFrameworkCore;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>
/// The session's hot queries, compiled once per store: a compiled query is bound to one model, and each store has
/// its own (provider, schema) model.
/// </summary>
internal sealed class CompiledQueries
{
    public readonly Func<DbContext, string, CancellationToken, Task<CustomerRow?>> CustomerById =
        EF.CompileAsyncQuery((DbContext db, string id, CancellationToken ct) => db.Set<CustomerRow>().AsNoTracking().FirstOrDefault(r => r.Id == id));

    public readonly Func<DbContext, string, CancellationToken, Task<PlanRow?>> PlanById =
        EF.CompileAsyncQuery((DbContext db, string id, CancellationToken ct) => db.Set<PlanRow>().AsNoTracking().FirstOrDefault(r => r.Id == id));

    public readonly Func<DbContext, string, CancellationToken, Task<SubscriptionRow?>> SubscriptionById =
        EF.CompileAsyncQuery((DbContext db, string id, CancellationToken ct) => db.Set<SubscriptionRow>().AsNoTracking().FirstOrDefault(r => r.Id == id));

    public readonly Func<DbContext, string, CancellationToken, Task<InvoiceRow?>> InvoiceById =
        EF.CompileAsyncQuery((DbContext db, string id, CancellationToken ct) => db.Set<InvoiceRow>().AsNoTracking().Include(r => r.Lines).FirstOrDefault(r => r.Id == id));

    public readonly Func<DbContext, string, CancellationToken, Task<InvoiceRow?>> InvoiceByDedupKey =
        EF.CompileAsyncQuery((DbContext db, string key, CancellationToken ct) => db.Set<InvoiceRow>().AsNoTracking().Include(r => r.Lines).FirstOrDefault(r => r.DedupKey == key));

    public readonly Func<DbContext, string, CancellationToken, Task<PaymentRow?>> PaymentById =
        EF.CompileAsyncQuery((DbContext db, string id, CancellationToken ct) => db.Set<PaymentRow>().AsNoTracking().FirstOrDefault(r => r.Id == id));

    public readonly Func<DbContext, string, CancellationToken, Task<PaymentRow?>> PaymentByKey =
        EF.CompileAsyncQuery((DbContext db, string key, CancellationToken ct) => db.Set<PaymentRow>().AsNoTracking().FirstOrDefault(r => r.IdempotencyKey == key));

    public readonly Func<DbContext, string, CancellationToken, Task<TestClockRow?>> ClockById =
        EF.CompileAsyncQuery((DbContext db, string id, CancellationToken ct) => db.Set<TestClockRow>().AsNoTracking().FirstOrDefault(r => r.Id == id));
}
