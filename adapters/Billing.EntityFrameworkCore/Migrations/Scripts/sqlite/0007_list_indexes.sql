-- Billing schema v7 (SQLite): indexes for the newest-first lists of plans and customers and the customer email
-- filter (see the PostgreSQL script).

CREATE INDEX ix_plans_created ON plans (created_at, id);
CREATE INDEX ix_customers_created ON customers (created_at, id);
CREATE INDEX ix_customers_email ON customers (email, created_at, id);
