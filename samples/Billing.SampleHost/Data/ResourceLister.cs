using Billing.Catalog;
using Billing.Customers;
using Billing.Ports;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Data;

/// <summary>
/// Lists plans and customers, newest first, with a cursor. The library's stores have no list operations yet, so the
/// host reads the page of ids from the EF Core adapter's tables (<c>plans</c>, <c>customers</c>: id and
/// <c>created_at</c>) and loads each object through the billing store.
/// </summary>
internal sealed class ResourceLister(HostDatabase database, IBillingStore store)
{
    public async Task<(IReadOnlyList<Plan> Items, bool HasMore)> ListPlansAsync(Page page, CancellationToken cancellationToken)
    {
        var (ids, hasMore) = await ListIdsAsync("plans", page, cancellationToken).ConfigureAwait(false);
        await using var session = await store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var items = new List<Plan>(ids.Count);
        foreach (var id in ids)
        {
            if (await session.Plans.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } plan)
            {
                items.Add(plan);
            }
        }

        return (items, hasMore);
    }

    public async Task<(IReadOnlyList<Customer> Items, bool HasMore)> ListCustomersAsync(Page page, CancellationToken cancellationToken)
    {
        var (ids, hasMore) = await ListIdsAsync("customers", page, cancellationToken).ConfigureAwait(false);
        await using var session = await store.BeginAsync(cancellationToken).ConfigureAwait(false);
        var items = new List<Customer>(ids.Count);
        foreach (var id in ids)
        {
            if (await session.Customers.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } customer)
            {
                items.Add(customer);
            }
        }

        return (items, hasMore);
    }

    private async Task<(IReadOnlyList<string> Ids, bool HasMore)> ListIdsAsync(string table, Page page, CancellationToken cancellationToken)
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

        await using var command = page.StartingAfter is null
            ? connection.Command($"SELECT id FROM {t} ORDER BY created_at DESC, id DESC LIMIT @take", ("take", page.Limit + 1))
            : connection.Command(
                $"SELECT id FROM {t} WHERE created_at < (SELECT created_at FROM {t} WHERE id = @after) OR (created_at = (SELECT created_at FROM {t} WHERE id = @after) AND id < @after) ORDER BY created_at DESC, id DESC LIMIT @take",
                ("take", page.Limit + 1),
                ("after", page.StartingAfter));
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
