-- Billing schema v2 (PostgreSQL): leased claims on due work, so billing runs in several processes split the
-- due subscriptions and invoices between them (claimed with FOR UPDATE SKIP LOCKED).

ALTER TABLE {schema}.subscriptions ADD COLUMN claim_expires_at timestamptz NULL;
ALTER TABLE {schema}.invoices ADD COLUMN claim_expires_at timestamptz NULL;

CREATE INDEX ix_subscriptions_due ON {schema}.subscriptions (next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NULL;
CREATE INDEX ix_subscriptions_due_test_clock ON {schema}.subscriptions (test_clock_id, next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NOT NULL;
CREATE INDEX ix_invoices_due ON {schema}.invoices (next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NULL;
CREATE INDEX ix_invoices_due_test_clock ON {schema}.invoices (test_clock_id, next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NOT NULL;
