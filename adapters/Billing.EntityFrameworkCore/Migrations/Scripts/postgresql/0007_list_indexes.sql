-- Billing schema v7 (PostgreSQL): indexes for the newest-first lists of plans and customers (IPlanStore.ListAsync,
-- ICustomerStore.ListAsync). A page is a keyset read, ORDER BY created_at DESC, id DESC after the cursor's
-- (created_at, id), which these indexes serve by a backward scan; the customer list's email filter gets its own.
-- On large tables the builds block writes to them while they run: migrate at a quiet time.

CREATE INDEX ix_plans_created ON {schema}.plans (created_at, id);
CREATE INDEX ix_customers_created ON {schema}.customers (created_at, id);
CREATE INDEX ix_customers_email ON {schema}.customers (email, created_at, id);
