-- Billing schema v1 (SQLite). SQLite has no schemas: the tables live in the database file.
-- Money: amount_minor INTEGER (64-bit) + currency TEXT of 3 letters. Instants: INTEGER UTC ticks (100 ns).
-- Local times: INTEGER ticks. Nested values: JSON text. Booleans: INTEGER 0/1.
-- Named CHECK constraints (ck_<table>_<field>) let the adapter report the field that bad data hit.

CREATE TABLE customers (
    id TEXT NOT NULL CONSTRAINT pk_customers PRIMARY KEY,
    name TEXT NOT NULL CONSTRAINT ck_customers_name CHECK (length(name) <= 500),
    email TEXT NOT NULL CONSTRAINT ck_customers_email CHECK (length(email) <= 500),
    currency TEXT NOT NULL CONSTRAINT ck_customers_currency CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    time_zone_id TEXT NOT NULL CONSTRAINT ck_customers_time_zone_id CHECK (length(time_zone_id) BETWEEN 1 AND 100),
    default_payment_method TEXT NULL CONSTRAINT ck_customers_default_payment_method CHECK (length(default_payment_method) <= 255),
    credit_balance_minor INTEGER NOT NULL,
    tax_rates TEXT NOT NULL,
    external_id TEXT NULL CONSTRAINT ck_customers_external_id CHECK (length(external_id) <= 255),
    test_clock_id TEXT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL CONSTRAINT ck_customers_version CHECK (version >= 1)
);
CREATE INDEX ix_customers_test_clock ON customers (test_clock_id, id) WHERE test_clock_id IS NOT NULL;

CREATE TABLE plans (
    id TEXT NOT NULL CONSTRAINT pk_plans PRIMARY KEY,
    name TEXT NOT NULL CONSTRAINT ck_plans_name CHECK (length(name) <= 500),
    description TEXT NULL CONSTRAINT ck_plans_description CHECK (length(description) <= 5000),
    currency TEXT NOT NULL CONSTRAINT ck_plans_currency CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    price TEXT NOT NULL,
    interval_unit TEXT NOT NULL,
    interval_count INTEGER NOT NULL CONSTRAINT ck_plans_interval_count CHECK (interval_count BETWEEN 1 AND 1000),
    trial_days INTEGER NOT NULL CONSTRAINT ck_plans_trial_days CHECK (trial_days >= 0),
    archived INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL CONSTRAINT ck_plans_version CHECK (version >= 1)
);

CREATE TABLE subscriptions (
    id TEXT NOT NULL CONSTRAINT pk_subscriptions PRIMARY KEY,
    customer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    quantity INTEGER NOT NULL CONSTRAINT ck_subscriptions_quantity CHECK (quantity >= 0),
    status TEXT NOT NULL,
    schedule_start INTEGER NOT NULL,
    anchor_local INTEGER NOT NULL,
    current_period_start INTEGER NOT NULL,
    current_period_end INTEGER NOT NULL,
    trial_end INTEGER NULL,
    cancel_at_period_end INTEGER NOT NULL,
    canceled_at INTEGER NULL,
    paused_at INTEGER NULL,
    pending_change TEXT NULL,
    pending_lines TEXT NOT NULL,
    discount TEXT NULL,
    payment_method TEXT NULL CONSTRAINT ck_subscriptions_payment_method CHECK (length(payment_method) <= 255),
    latest_invoice_id TEXT NULL,
    next_action_at INTEGER NULL,
    test_clock_id TEXT NULL,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL CONSTRAINT ck_subscriptions_version CHECK (version >= 1),
    CONSTRAINT ck_subscriptions_current_period CHECK (current_period_end > current_period_start)
);
CREATE INDEX ix_subscriptions_customer ON subscriptions (customer_id, id);

CREATE TABLE invoices (
    id TEXT NOT NULL CONSTRAINT pk_invoices PRIMARY KEY,
    customer_id TEXT NOT NULL,
    subscription_id TEXT NULL,
    dedup_key TEXT NOT NULL CONSTRAINT ck_invoices_dedup_key CHECK (length(dedup_key) <= 500),
    reason TEXT NOT NULL,
    number TEXT NULL CONSTRAINT ck_invoices_number CHECK (length(number) <= 100),
    status TEXT NOT NULL,
    currency TEXT NOT NULL CONSTRAINT ck_invoices_currency CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    period_start INTEGER NULL,
    period_end INTEGER NULL,
    subtotal_minor INTEGER NOT NULL,
    discount_minor INTEGER NOT NULL,
    tax_minor INTEGER NOT NULL,
    total_minor INTEGER NOT NULL,
    credit_applied_minor INTEGER NOT NULL,
    amount_due_minor INTEGER NOT NULL CONSTRAINT ck_invoices_amount_due CHECK (amount_due_minor >= 0),
    amount_paid_minor INTEGER NOT NULL CONSTRAINT ck_invoices_amount_paid CHECK (amount_paid_minor >= 0),
    dunning TEXT NOT NULL,
    payment_attempts INTEGER NOT NULL CONSTRAINT ck_invoices_payment_attempts CHECK (payment_attempts >= 0),
    next_action_at INTEGER NULL,
    test_clock_id TEXT NULL,
    created_at INTEGER NOT NULL,
    finalized_at INTEGER NULL,
    closed_at INTEGER NULL,
    version INTEGER NOT NULL CONSTRAINT ck_invoices_version CHECK (version >= 1)
);
-- One invoice per billing key, one period invoice per (subscription, period start), one per number.
CREATE UNIQUE INDEX ux_invoices_dedup_key ON invoices (dedup_key);
CREATE UNIQUE INDEX ux_invoices_subscription_period ON invoices (subscription_id, period_start)
    WHERE reason IN ('subscription_create', 'subscription_cycle');
CREATE UNIQUE INDEX ux_invoices_number ON invoices (number);
CREATE INDEX ix_invoices_subscription ON invoices (subscription_id, created_at, id);

CREATE TABLE invoice_lines (
    invoice_id TEXT NOT NULL CONSTRAINT fk_invoice_lines_invoice REFERENCES invoices (id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL CONSTRAINT ck_invoice_lines_description CHECK (length(description) <= 1000),
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL CONSTRAINT ck_invoice_lines_currency CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    quantity INTEGER NOT NULL CONSTRAINT ck_invoice_lines_quantity CHECK (quantity >= 0),
    period_start INTEGER NULL,
    period_end INTEGER NULL,
    proration TEXT NULL,
    meter_key TEXT NULL CONSTRAINT ck_invoice_lines_meter_key CHECK (length(meter_key) <= 255),
    tax_rate TEXT NULL,
    CONSTRAINT pk_invoice_lines PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE payments (
    id TEXT NOT NULL CONSTRAINT pk_payments PRIMARY KEY,
    invoice_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    attempt INTEGER NOT NULL CONSTRAINT ck_payments_attempt CHECK (attempt >= 1),
    idempotency_key TEXT NOT NULL CONSTRAINT ck_payments_idempotency_key CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    amount_minor INTEGER NOT NULL CONSTRAINT ck_payments_amount CHECK (amount_minor >= 0),
    currency TEXT NOT NULL CONSTRAINT ck_payments_currency CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    payment_method TEXT NOT NULL CONSTRAINT ck_payments_payment_method CHECK (length(payment_method) <= 255),
    status TEXT NOT NULL,
    gateway_payment_id TEXT NULL CONSTRAINT ck_payments_gateway_payment_id CHECK (length(gateway_payment_id) <= 255),
    result TEXT NULL,
    amount_refunded_minor INTEGER NOT NULL CONSTRAINT ck_payments_amount_refunded CHECK (amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_minor),
    refund_count INTEGER NOT NULL CONSTRAINT ck_payments_refund_count CHECK (refund_count >= 0),
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL CONSTRAINT ck_payments_version CHECK (version >= 1)
);
CREATE UNIQUE INDEX ux_payments_idempotency_key ON payments (idempotency_key);
CREATE INDEX ix_payments_invoice ON payments (invoice_id, attempt);

CREATE TABLE test_clocks (
    id TEXT NOT NULL CONSTRAINT pk_test_clocks PRIMARY KEY,
    name TEXT NULL CONSTRAINT ck_test_clocks_name CHECK (length(name) <= 500),
    frozen_time INTEGER NOT NULL,
    version INTEGER NOT NULL CONSTRAINT ck_test_clocks_version CHECK (version >= 1)
);

-- The outbox. SQLite serializes writers, so id order is commit order and each row is published (position = id)
-- as it is inserted.
CREATE TABLE outbox_events (
    id INTEGER NOT NULL CONSTRAINT pk_outbox_events PRIMARY KEY AUTOINCREMENT,
    position INTEGER NULL,
    event_id TEXT NOT NULL CONSTRAINT ck_outbox_events_event_id CHECK (length(event_id) BETWEEN 1 AND 255),
    type TEXT NOT NULL CONSTRAINT ck_outbox_events_type CHECK (length(type) <= 255),
    occurred_at INTEGER NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    customer_id TEXT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_outbox_events_event_id ON outbox_events (event_id);
CREATE UNIQUE INDEX ux_outbox_events_position ON outbox_events (position);
CREATE INDEX ix_outbox_events_unpublished ON outbox_events (id) WHERE position IS NULL;
-- Writers are serialized, so a row's position is its id: published on insert.
CREATE TRIGGER tr_outbox_events_publish AFTER INSERT ON outbox_events
BEGIN
    UPDATE outbox_events SET position = NEW.id WHERE id = NEW.id;
END;

CREATE TABLE idempotency_records (
    scope TEXT NOT NULL CONSTRAINT ck_idempotency_records_scope CHECK (length(scope) <= 255),
    key TEXT NOT NULL CONSTRAINT ck_idempotency_records_key CHECK (length(key) <= 255),
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CONSTRAINT pk_idempotency_records PRIMARY KEY (scope, key)
);
CREATE INDEX ix_idempotency_records_expires ON idempotency_records (expires_at);

-- Gap-free invoice numbers: the finalizing transaction increments its sequence row; SQLite holds the write
-- lock until it commits, so a rolled-back number is handed out again.
CREATE TABLE invoice_number_sequences (
    sequence TEXT NOT NULL CONSTRAINT pk_invoice_number_sequences PRIMARY KEY,
    last_number INTEGER NOT NULL CONSTRAINT ck_invoice_number_sequences_last_number CHECK (last_number >= 0)
);
