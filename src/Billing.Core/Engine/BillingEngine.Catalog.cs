using Billing.Catalog;
using Billing.Customers;
using Billing.Invoices;
using Billing.Ports;

namespace Billing.Engine;

public sealed partial class BillingEngine
{
    /// <summary>Creates a plan.</summary>
    /// <param name="plan">The plan's content.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored plan.</returns>
    /// <exception cref="BillingValidationException">An empty name, trial days outside 0–730, or an invalid metered price or entitlement.</exception>
    public Task<Plan> CreatePlanAsync(NewPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        Require(!string.IsNullOrWhiteSpace(plan.Name) && plan.Name.Length <= 200, "name", "A plan needs a name of 1 to 200 characters.");
        Require(plan.TrialDays is >= 0 and <= 730, "trial_days", "Trial days must be 0 to 730.");
        Require(plan.Interval.Count >= 1, "interval", "A plan needs an interval.");
        var metered = plan.MeteredPrices ?? [];
        var entitlements = plan.Entitlements ?? [];
        PlanUsageRules.Validate(plan.Price.Currency, metered, entitlements);
        return InSessionAsync<Plan>(session =>
        {
            var stored = new Plan
            {
                Id = _ids.NewId("plan"),
                Name = plan.Name,
                Description = plan.Description,
                Price = plan.Price,
                Interval = plan.Interval,
                TrialDays = plan.TrialDays,
                MeteredPrices = [.. metered],
                Entitlements = [.. entitlements],
                Metadata = plan.Metadata ?? new Dictionary<string, string>(),
                CreatedAt = _time.GetUtcNow(),
            };
            session.Plans.Add(stored);
            return Task.FromResult(stored with { Version = 1 });
        }, cancellationToken);
    }

    /// <summary>Reads a plan.</summary>
    /// <param name="planId">The plan.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The plan.</returns>
    /// <exception cref="BillingNotFoundException">No such plan.</exception>
    public async Task<Plan> GetPlanAsync(string planId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.Plans.GetAsync(planId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", planId);
    }

    /// <summary>Lists plans a page at a time, newest first (creation time, ties by id, both descending).</summary>
    /// <param name="page">The page size (1–100, default 20) and the cursor: the id of the last plan of the previous page; null for the first page of 20.</param>
    /// <param name="archived">Only archived plans (true), only active ones (false), or all (null).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page and whether more plans follow.</returns>
    /// <remarks>The cursor may name a plan the filter leaves out (it is a position in the list, not a member of it).</remarks>
    /// <exception cref="BillingValidationException">A limit outside 1–100 (field <c>limit</c>), or a cursor that names no plan (field <c>starting_after</c>).</exception>
    public Task<ListPage<Plan>> ListPlansAsync(PageRequest? page = null, bool? archived = null, CancellationToken cancellationToken = default) =>
        ListAsync(page, "plan", (session, p) => session.Plans.ListAsync(p, archived, cancellationToken), cancellationToken);

    /// <summary>
    /// Updates what may change on a plan: its name, description and metadata. The price and interval never change
    /// once created (a new price is a new plan), so invoices stay explainable.
    /// </summary>
    /// <param name="planId">The plan.</param>
    /// <param name="name">A new name, or null to keep it.</param>
    /// <param name="description">A new description, or null to keep it.</param>
    /// <param name="metadata">New metadata (replaces the old), or null to keep it.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The updated plan.</returns>
    /// <exception cref="BillingNotFoundException">No such plan.</exception>
    /// <exception cref="BillingValidationException">An empty or too long name.</exception>
    public Task<Plan> UpdatePlanAsync(string planId, string? name = null, string? description = null, IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        Require(name is null || (!string.IsNullOrWhiteSpace(name) && name.Length <= 200), "name", "A plan needs a name of 1 to 200 characters.");
        return InSessionAsync(async session =>
        {
            var plan = await session.Plans.GetAsync(planId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", planId);
            var updated = plan with { Name = name ?? plan.Name, Description = description ?? plan.Description, Metadata = metadata ?? plan.Metadata };
            session.Plans.Update(updated);
            return updated with { Version = plan.Version + 1 };
        }, cancellationToken);
    }

    /// <summary>Archives a plan: it takes no new subscriptions; existing ones keep billing.</summary>
    /// <param name="planId">The plan.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The archived plan.</returns>
    /// <exception cref="BillingNotFoundException">No such plan.</exception>
    public Task<Plan> ArchivePlanAsync(string planId, CancellationToken cancellationToken = default) =>
        InSessionAsync(async session =>
        {
            var plan = await session.Plans.GetAsync(planId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("plan", planId);
            var archived = plan with { Archived = true };
            session.Plans.Update(archived);
            return archived with { Version = plan.Version + 1 };
        }, cancellationToken);

    /// <summary>Creates a customer; emits <c>customer.created</c>.</summary>
    /// <param name="customer">The customer's content.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored customer.</returns>
    /// <exception cref="BillingValidationException">An empty name, a malformed email, an unknown time zone, or mixed tax rates.</exception>
    /// <exception cref="BillingNotFoundException">The test clock does not exist.</exception>
    public Task<Customer> CreateCustomerAsync(NewCustomer customer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(customer);
        Require(!string.IsNullOrWhiteSpace(customer.Name) && customer.Name.Length <= 200, "name", "A customer needs a name of 1 to 200 characters.");
        Require(customer.Email is { Length: >= 3 and <= 320 } email && email.IndexOf('@', StringComparison.Ordinal) is > 0 && email.IndexOf('@', StringComparison.Ordinal) < email.Length - 1, "email", "The email address is not valid.");
        var zoneId = customer.TimeZoneId ?? _options.DefaultTimeZoneId;
        _ = Zone(zoneId);
        var rates = customer.TaxRates ?? [];
        Require(rates.Select(r => r.Inclusive).Distinct().Count() <= 1, "tax_rates", "Tax rates must be all inclusive or all exclusive.");
        return InSessionAsync(async session =>
        {
            if (customer.TestClockId is { } clockId && await session.TestClocks.GetAsync(clockId, cancellationToken).ConfigureAwait(false) is null)
            {
                throw new BillingNotFoundException("test_clock", clockId);
            }

            var now = await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            var stored = new Customer
            {
                Id = _ids.NewId("cus"),
                Name = customer.Name,
                Email = customer.Email,
                Currency = customer.Currency,
                TimeZoneId = zoneId,
                DefaultPaymentMethod = customer.PaymentMethod,
                CreditBalance = Money.Zero(customer.Currency),
                TaxRates = rates,
                TestClockId = customer.TestClockId,
                Metadata = customer.Metadata ?? new Dictionary<string, string>(),
                CreatedAt = now,
            };
            session.Customers.Add(stored);
            session.Outbox.Append(NewEvent("customer.created", now, "customer", stored.Id, stored.Id));
            return stored with { Version = 1 };
        }, cancellationToken);
    }

    /// <summary>Reads a customer.</summary>
    /// <param name="customerId">The customer.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The customer.</returns>
    /// <exception cref="BillingNotFoundException">No such customer.</exception>
    public async Task<Customer> GetCustomerAsync(string customerId, CancellationToken cancellationToken = default)
    {
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        return await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", customerId);
    }

    /// <summary>Lists customers a page at a time, newest first (creation time, ties by id, both descending).</summary>
    /// <param name="page">The page size (1–100, default 20) and the cursor: the id of the last customer of the previous page; null for the first page of 20.</param>
    /// <param name="email">Only customers with exactly this email address (case-sensitive), or null for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page and whether more customers follow.</returns>
    /// <remarks>The cursor may name a customer the filter leaves out (it is a position in the list, not a member of it).</remarks>
    /// <exception cref="BillingValidationException">A limit outside 1–100 (field <c>limit</c>), or a cursor that names no customer (field <c>starting_after</c>).</exception>
    public Task<ListPage<Customer>> ListCustomersAsync(PageRequest? page = null, string? email = null, CancellationToken cancellationToken = default) =>
        ListAsync(page, "customer", (session, p) => session.Customers.ListAsync(p, email, cancellationToken), cancellationToken);

    /// <summary>Reads one page in a read-only session; a cursor naming nothing becomes a validation error on <c>starting_after</c>.</summary>
    private async Task<ListPage<T>> ListAsync<T>(PageRequest? page, string objectType, Func<IBillingSession, PageRequest, ValueTask<ListPage<T>>> list, CancellationToken cancellationToken)
    {
        page ??= new PageRequest();
        page.Validate();
        await using var session = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await list(session, page).ConfigureAwait(false);
        }
        catch (BillingNotFoundException e) when (e.ObjectType == objectType && e.Id == page.StartingAfter)
        {
            throw new BillingValidationException("starting_after", $"No {objectType} with id '{e.Id}' to start after.");
        }
    }

    /// <summary>
    /// Updates a customer's name, email, time zone, default payment method or tax rates; emits
    /// <c>customer.updated</c>. The currency never changes. A new time zone applies from the next billing cycle
    /// that is computed (current periods keep their boundaries).
    /// </summary>
    /// <param name="customerId">The customer.</param>
    /// <param name="name">A new name, or null to keep it.</param>
    /// <param name="email">A new email address, or null to keep it.</param>
    /// <param name="timeZoneId">A new IANA time zone, or null to keep it.</param>
    /// <param name="paymentMethod">A new default payment method, or null to keep it.</param>
    /// <param name="taxRates">New tax rates (replace the old), or null to keep them.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The updated customer.</returns>
    /// <exception cref="BillingValidationException">A bad name, email, time zone or mixed tax rates.</exception>
    public Task<Customer> UpdateCustomerAsync(string customerId, string? name = null, string? email = null, string? timeZoneId = null, string? paymentMethod = null, IReadOnlyList<TaxRate>? taxRates = null, CancellationToken cancellationToken = default)
    {
        Require(name is null || (!string.IsNullOrWhiteSpace(name) && name.Length <= 200), "name", "A customer needs a name of 1 to 200 characters.");
        Require(email is null || (email.Length is >= 3 and <= 320 && email.IndexOf('@', StringComparison.Ordinal) is > 0 && email.IndexOf('@', StringComparison.Ordinal) < email.Length - 1), "email", "The email address is not valid.");
        if (timeZoneId is not null)
        {
            _ = Zone(timeZoneId);
        }

        Require(taxRates is null || taxRates.Select(r => r.Inclusive).Distinct().Count() <= 1, "tax_rates", "Tax rates must be all inclusive or all exclusive.");
        return InSessionAsync(async session =>
        {
            var customer = await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", customerId);
            var now = await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            var updated = customer with
            {
                Name = name ?? customer.Name,
                Email = email ?? customer.Email,
                TimeZoneId = timeZoneId ?? customer.TimeZoneId,
                DefaultPaymentMethod = paymentMethod ?? customer.DefaultPaymentMethod,
                TaxRates = taxRates ?? customer.TaxRates,
            };
            session.Customers.Update(updated);
            session.Outbox.Append(NewEvent("customer.updated", now, "customer", customer.Id, customer.Id));
            return updated with { Version = customer.Version + 1 };
        }, cancellationToken);
    }

    /// <summary>Adds to (or, with a negative amount, takes from) a customer's credit balance; emits <c>customer.updated</c>.</summary>
    /// <param name="customerId">The customer.</param>
    /// <param name="amount">The adjustment, in the customer's currency.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The updated customer.</returns>
    /// <exception cref="BillingValidationException">The balance would become negative, or the currency differs.</exception>
    public Task<Customer> AdjustCreditBalanceAsync(string customerId, Money amount, CancellationToken cancellationToken = default) =>
        InSessionAsync(async session =>
        {
            var customer = await session.Customers.GetAsync(customerId, cancellationToken).ConfigureAwait(false) ?? throw new BillingNotFoundException("customer", customerId);
            Require(ReferenceEquals(amount.Currency, customer.Currency), "amount", $"The adjustment must be in the customer's currency ({customer.Currency.Code}).");
            var balance = customer.CreditBalance + amount;
            Require(!balance.IsNegative, "amount", $"The credit balance would become negative ({balance}).");
            var now = await NowForAsync(session, customer.TestClockId, cancellationToken).ConfigureAwait(false);
            var updated = customer with { CreditBalance = balance };
            session.Customers.Update(updated);
            session.Outbox.Append(NewEvent("customer.updated", now, "customer", customer.Id, customer.Id, ("credit_balance", balance.MinorUnits)));
            return updated with { Version = customer.Version + 1 };
        }, cancellationToken);

    /// <summary>Creates a test clock frozen at an instant; customers attached to it live on its time.</summary>
    /// <param name="frozenTime">The clock's starting time.</param>
    /// <param name="name">A name for people.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The clock.</returns>
    public Task<TestClock> CreateTestClockAsync(DateTimeOffset frozenTime, string? name = null, CancellationToken cancellationToken = default) =>
        InSessionAsync(session =>
        {
            var clock = new TestClock { Id = _ids.NewId("clock"), Name = name, FrozenTime = frozenTime.ToUniversalTime() };
            session.TestClocks.Add(clock);
            return Task.FromResult(clock with { Version = 1 });
        }, cancellationToken);

    private static void Require(bool condition, string field, string message)
    {
        if (!condition)
        {
            throw new BillingValidationException(field, message);
        }
    }
}
