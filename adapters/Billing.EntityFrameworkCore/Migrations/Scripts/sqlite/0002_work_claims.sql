-- Billing schema v2 (SQLite): leased claims on due work, so billing runs in several processes split the
-- due subscriptions and invoices between them. SQLite serializes writers: one process runs the billing run.

ALTER TABLE subscriptions ADD COLUMN claim_expires_at INTEGER NULL;
ALTER TABLE invoices ADD COLUMN claim_expires_at INTEGER NULL;

CREATE INDEX ix_subscriptions_due ON subscriptions (next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NULL;
CREATE INDEX ix_subscriptions_due_test_clock ON subscriptions (test_clock_id, next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NOT NULL;
CREATE INDEX ix_invoices_due ON invoices (next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NULL;
CREATE INDEX ix_invoices_due_test_clock ON invoices (test_clock_id, next_action_at, id)
    WHERE next_action_at IS NOT NULL AND test_clock_id IS NOT NULL;
