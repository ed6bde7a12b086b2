-- Billing schema v1 (PostgreSQL). {schema} is replaced by the configured schema name.
-- Money: amount_minor bigint + currency char(3). Instants: timestamptz (UTC). Nested values: jsonb.
-- Named CHECK constraints (ck_<table>_<field>) let the adapter report the field that bad data hit.

CREATE TABLE {schema}.customers (
    id text COLLATE "C" NOT NULL CONSTRAINT pk_customers PRIMARY KEY,
    name text NOT NULL CONSTRAINT ck_customers_name CHECK (length(name) <= 500),
    email text NOT NULL CONSTRAINT ck_customers_email CHECK (length(email) <= 500),
    currency char(3) NOT NULL CONSTRAINT ck_customers_currency CHECK (currency ~ '^[A-Z]{3}$'),
    time_zone_id text NOT NULL CONSTRAINT ck_customers_time_zone_id CHECK (length(time_zone_id) BETWEEN 1 AND 100),
    default_payment_method text NULL CONSTRAINT ck_customers_default_payment_method CHECK (length(default_payment_method) <= 255),
    credit_balance_minor bigint NOT NULL,
    tax_rates jsonb NOT NULL,
    external_id text NULL CONSTRAINT ck_customers_external_id CHECK (length(external_id) <= 255),
    test_clock_id text COLLATE "C" NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    version bigint NOT NULL CONSTRAINT ck_customers_version CHECK (version >= 1)
);
CREATE INDEX ix_customers_test_clock ON {schema}.customers (test_clock_id, id) WHERE test_clock_id IS NOT NULL;

CREATE TABLE {schema}.plans (
    id text COLLATE "C" NOT NULL CONSTRAINT pk_plans PRIMARY KEY,
    name text NOT NULL CONSTRAINT ck_plans_name CHECK (length(name) <= 500),
    description text NULL CONSTRAINT ck_plans_description CHECK (length(description) <= 5000),
    currency char(3) NOT NULL CONSTRAINT ck_plans_currency CHECK (currency ~ '^[A-Z]{3}$'),
    price jsonb NOT NULL,
    interval_unit text NOT NULL,
    interval_count integer NOT NULL CONSTRAINT ck_plans_interval_count CHECK (interval_count BETWEEN 1 AND 1000),
    trial_days integer NOT NULL CONSTRAINT ck_plans_trial_days CHECK (trial_days >= 0),
    archived boolean NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    version bigint NOT NULL CONSTRAINT ck_plans_version CHECK (version >= 1)
);

CREATE TABLE {schema}.subscriptions (
    id text COLLATE "C" NOT NULL CONSTRAINT pk_subscriptions PRIMARY KEY,
    customer_id text COLLATE "C" NOT NULL,
    plan_id text COLLATE "C" NOT NULL,
    quantity bigint NOT NULL CONSTRAINT ck_subscriptions_quantity CHECK (quantity >= 0),
    status text NOT NULL,
    schedule_start timestamptz NOT NULL,
    anchor_local timestamp NOT NULL,
    current_period_start timestamptz NOT NULL,
    current_period_end timestamptz NOT NULL,
    trial_end timestamptz NULL,
    cancel_at_period_end boolean NOT NULL,
    canceled_at timestamptz NULL,
    paused_at timestamptz NULL,
    pending_change jsonb NULL,
    pending_lines jsonb NOT NULL,
    discount jsonb NULL,
    payment_method text NULL CONSTRAINT ck_subscriptions_payment_method CHECK (length(payment_method) <= 255),
    latest_invoice_id text COLLATE "C" NULL,
    next_action_at timestamptz NULL,
    test_clock_id text COLLATE "C" NULL,
    created_at timestamptz NOT NULL,
    version bigint NOT NULL CONSTRAINT ck_subscriptions_version CHECK (version >= 1),
    CONSTRAINT ck_subscriptions_current_period CHECK (current_period_end > current_period_start)
);
CREATE INDEX ix_subscriptions_customer ON {schema}.subscriptions (customer_id, id);

CREATE TABLE {schema}.invoices (
    id text COLLATE "C" NOT NULL CONSTRAINT pk_invoices PRIMARY KEY,
    customer_id text COLLATE "C" NOT NULL,
    subscription_id text COLLATE "C" NULL,
    dedup_key text COLLATE "C" NOT NULL CONSTRAINT ck_invoices_dedup_key CHECK (length(dedup_key) <= 500),
    reason text NOT NULL,
    number text COLLATE "C" NULL CONSTRAINT ck_invoices_number CHECK (length(number) <= 100),
    status text NOT NULL,
    currency char(3) NOT NULL CONSTRAINT ck_invoices_currency CHECK (currency ~ '^[A-Z]{3}$'),
    period_start timestamptz NULL,
    period_end timestamptz NULL,
    subtotal_minor bigint NOT NULL,
    discount_minor bigint NOT NULL,
    tax_minor bigint NOT NULL,
    total_minor bigint NOT NULL,
    credit_applied_minor bigint NOT NULL,
    amount_due_minor bigint NOT NULL CONSTRAINT ck_invoices_amount_due CHECK (amount_due_minor >= 0),
    amount_paid_minor bigint NOT NULL CONSTRAINT ck_invoices_amount_paid CHECK (amount_paid_minor >= 0),
    dunning jsonb NOT NULL,
    payment_attempts integer NOT NULL CONSTRAINT ck_invoices_payment_attempts CHECK (payment_attempts >= 0),
    next_action_at timestamptz NULL,
    test_clock_id text COLLATE "C" NULL,
    created_at timestamptz NOT NULL,
    finalized_at timestamptz NULL,
    closed_at timestamptz NULL,
    version bigint NOT NULL CONSTRAINT ck_invoices_version CHECK (version >= 1)
);
-- One invoice per billing key, one period invoice per (subscription, period start), one per number.
CREATE UNIQUE INDEX ux_invoices_dedup_key ON {schema}.invoices (dedup_key);
CREATE UNIQUE INDEX ux_invoices_subscription_period ON {schema}.invoices (subscription_id, period_start)
    WHERE reason IN ('subscription_create', 'subscription_cycle');
CREATE UNIQUE INDEX ux_invoices_number ON {schema}.invoices (number);
CREATE INDEX ix_invoices_subscription ON {schema}.invoices (subscription_id, created_at, id);

CREATE TABLE {schema}.invoice_lines (
    invoice_id text COLLATE "C" NOT NULL CONSTRAINT fk_invoice_lines_invoice REFERENCES {schema}.invoices (id) ON DELETE CASCADE,
    line_no integer NOT NULL,
    kind text NOT NULL,
    description text NOT NULL CONSTRAINT ck_invoice_lines_description CHECK (length(description) <= 1000),
    amount_minor bigint NOT NULL,
    currency char(3) NOT NULL CONSTRAINT ck_invoice_lines_currency CHECK (currency ~ '^[A-Z]{3}$'),
    quantity bigint NOT NULL CONSTRAINT ck_invoice_lines_quantity CHECK (quantity >= 0),
    period_start timestamptz NULL,
    period_end timestamptz NULL,
    proration jsonb NULL,
    meter_key text NULL CONSTRAINT ck_invoice_lines_meter_key CHECK (length(meter_key) <= 255),
    tax_rate jsonb NULL,
    CONSTRAINT pk_invoice_lines PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE {schema}.payments (
    id text COLLATE "C" NOT NULL CONSTRAINT pk_payments PRIMARY KEY,
    invoice_id text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    attempt integer NOT NULL CONSTRAINT ck_payments_attempt CHECK (attempt >= 1),
    idempotency_key text COLLATE "C" NOT NULL CONSTRAINT ck_payments_idempotency_key CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    amount_minor bigint NOT NULL CONSTRAINT ck_payments_amount CHECK (amount_minor >= 0),
    currency char(3) NOT NULL CONSTRAINT ck_payments_currency CHECK (currency ~ '^[A-Z]{3}$'),
    payment_method text NOT NULL CONSTRAINT ck_payments_payment_method CHECK (length(payment_method) <= 255),
    status text NOT NULL,
    gateway_payment_id text NULL CONSTRAINT ck_payments_gateway_payment_id CHECK (length(gateway_payment_id) <= 255),
    result jsonb NULL,
    amount_refunded_minor bigint NOT NULL CONSTRAINT ck_payments_amount_refunded CHECK (amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_minor),
    refund_count integer NOT NULL CONSTRAINT ck_payments_refund_count CHECK (refund_count >= 0),
    created_at timestamptz NOT NULL,
    version bigint NOT NULL CONSTRAINT ck_payments_version CHECK (version >= 1)
);
CREATE UNIQUE INDEX ux_payments_idempotency_key ON {schema}.payments (idempotency_key);
CREATE INDEX ix_payments_invoice ON {schema}.payments (invoice_id, attempt);

CREATE TABLE {schema}.test_clocks (
    id text COLLATE "C" NOT NULL CONSTRAINT pk_test_clocks PRIMARY KEY,
    name text NULL CONSTRAINT ck_test_clocks_name CHECK (length(name) <= 500),
    frozen_time timestamptz NOT NULL,
    version bigint NOT NULL CONSTRAINT ck_test_clocks_version CHECK (version >= 1)
);

-- The outbox. Writers only insert (id from an identity); a reader publishes committed rows by giving them the
-- next positions under an advisory lock, so positions follow the order rows became visible and a reader that
-- pages by position never skips a row that committed late.
CREATE TABLE {schema}.outbox_events (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_outbox_events PRIMARY KEY,
    position bigint NULL,
    event_id text COLLATE "C" NOT NULL CONSTRAINT ck_outbox_events_event_id CHECK (length(event_id) BETWEEN 1 AND 255),
    type text NOT NULL CONSTRAINT ck_outbox_events_type CHECK (length(type) <= 255),
    occurred_at timestamptz NOT NULL,
    object_type text NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C" NULL,
    data jsonb NOT NULL
);
CREATE UNIQUE INDEX ux_outbox_events_event_id ON {schema}.outbox_events (event_id);
CREATE UNIQUE INDEX ux_outbox_events_position ON {schema}.outbox_events (position);
CREATE INDEX ix_outbox_events_unpublished ON {schema}.outbox_events (id) WHERE position IS NULL;

CREATE TABLE {schema}.idempotency_records (
    scope text COLLATE "C" NOT NULL CONSTRAINT ck_idempotency_records_scope CHECK (length(scope) <= 255),
    key text COLLATE "C" NOT NULL CONSTRAINT ck_idempotency_records_key CHECK (length(key) <= 255),
    request_hash text NOT NULL,
    response text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT pk_idempotency_records PRIMARY KEY (scope, key)
);
CREATE INDEX ix_idempotency_records_expires ON {schema}.idempotency_records (expires_at);

-- Gap-free invoice numbers: the finalizing transaction increments its sequence row and holds the row lock
-- until it commits, so a rolled-back number is handed out again.
CREATE TABLE {schema}.invoice_number_sequences (
    sequence text COLLATE "C" NOT NULL CONSTRAINT pk_invoice_number_sequences PRIMARY KEY,
    last_number bigint NOT NULL CONSTRAINT ck_invoice_number_sequences_last_number CHECK (last_number >= 0)
);
