using Billing.Invoices;
using Billing.Ports;
using Billing.SampleHost.Http;
using Billing.Subscriptions;

namespace Billing.SampleHost.Data;

/// <summary>
/// Lists subscriptions and invoices, newest first, with a cursor. The library's stores list only plans and customers
/// (<see cref="Engine.BillingEngine.ListPlansAsync"/>, <see cref="Engine.BillingEngine.ListCustomersAsync"/>), so for
/// these two the host reads the page of ids from the EF Core adapter's tables (id and <c>created_at</c>) and loads
/// each object through the billing store.
/// </summary>
internal sealed class ResourceLister(HostDatabase database, IBillingStore store)
{
    public async Task<(IReadOnlyList<Subscription> Items, bool HasMore)> ListSubscriptionsAsync(Page page, string? customerId, string? status, CancellationToken cancellationToken)
    {
        var (ids, hasMore) = await ListIdsAsync("subscriptions", page, cancellationToken, ("customer_id", customerId), ("status", status)).ConfigureAwait(false);
        await using var session = await store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var items = new List<Subscription>(ids.Count);
        foreach (var id in ids)
        {
            if (await session.Subscriptions.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } subscription)
            {
                items.Add(subscription);
            }
        }

        return (items, hasMore);
    }

    public async Task<(IReadOnlyList<Invoice> Items, bool HasMore)> ListInvoicesAsync(Page page, string? customerId, string? subscriptionId, string? status, CancellationToken cancellationToken)
    {
        var (ids, hasMore) = await ListIdsAsync("invoices", page, cancellationToken, ("customer_id", customerId), ("subscription_id", subscriptionId), ("status", status)).ConfigureAwait(false);
        await using var session = await store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var items = new List<Invoice>(ids.Count);
        foreach (var id in ids)
        {
            if (await session.Invoices.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } invoice)
            {
                items.Add(invoice);
            }
        }

        return (items, hasMore);
    }

    /// <summary>A page of ids, newest first; <paramref name="filters"/> are (column, value) pairs, a null value is no
    /// filter. Column names are host constants.</summary>
    private async Task<(IReadOnlyList<string> Ids, bool HasMore)> ListIdsAsync(string table, Page page, CancellationToken cancellationToken, params (string Column, string? Value)[] filters)
    {
        var t = database.Table(table);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        if (page.StartingAfter is { } after)
        {
            await using var exists = connection.Command($"SELECT COUNT(*) FROM {t} WHERE id = @after", ("after", after));
            if (Convert.ToInt64(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture) == 0)
            {
                throw RequestValidationException.For("starting_after", $"No object with id '{after}' to start after.");
            }
        }

        var parameters = new List<(string Name, object? Value)> { ("take", page.Limit + 1) };
        var where = new List<string>();
        foreach (var (column, value) in filters)
        {
            if (value is not null)
            {
                where.Add($"{column} = @f_{column}");
                parameters.Add(($"f_{column}", value));
            }
        }

        if (page.StartingAfter is not null)
        {
            where.Add($"(created_at < (SELECT created_at FROM {t} WHERE id = @after) OR (created_at = (SELECT created_at FROM {t} WHERE id = @after) AND id < @after))");
            parameters.Add(("after", page.StartingAfter));
        }

        var filter = where.Count == 0 ? string.Empty : " WHERE " + string.Join(" AND ", where);
        await using var command = connection.Command($"SELECT id FROM {t}{filter} ORDER BY created_at DESC, id DESC LIMIT @take", [.. parameters]);
        var ids = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }

        var hasMore = ids.Count > page.Limit;
        return (hasMore ? ids[..page.Limit] : ids, hasMore);
    }
}
