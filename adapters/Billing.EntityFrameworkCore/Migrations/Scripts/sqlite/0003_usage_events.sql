-- Billing schema v3 (SQLite): usage metering.
-- usage_events: every accepted usage event, for good, unique per (customer_id, idempotency_key): the system of
-- record that invoices are priced from. usage_counters: one row per (customer, meter, period) for the durable usage
-- counter (EntityFrameworkUsageCounter). Instants are INTEGER UTC ticks; text compares BINARY (ordinal).

-- Plans carry their metered prices and entitlements (JSON arrays; empty for plans without usage pricing).
ALTER TABLE plans ADD COLUMN metered_prices TEXT NOT NULL DEFAULT '[]';
ALTER TABLE plans ADD COLUMN entitlements TEXT NOT NULL DEFAULT '[]';

CREATE TABLE usage_events (
    customer_id TEXT NOT NULL CONSTRAINT ck_usage_events_customer_id CHECK (length(customer_id) BETWEEN 1 AND 255),
    idempotency_key TEXT NOT NULL CONSTRAINT ck_usage_events_idempotency_key CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    meter_key TEXT NOT NULL CONSTRAINT ck_usage_events_meter_key CHECK (length(meter_key) BETWEEN 1 AND 255),
    period_start INTEGER NOT NULL,
    subscription_id TEXT NULL,
    quantity INTEGER NOT NULL CONSTRAINT ck_usage_events_quantity CHECK (quantity >= 0),
    timestamp INTEGER NOT NULL,
    unique_value TEXT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    received_at INTEGER NOT NULL,
    -- The counter's total right after this event (set by the durable counter; null for events appended by the store).
    total_after INTEGER NULL,
    -- 0 while an event recorded by the durable counter awaits its append by the event store (see the PostgreSQL script).
    appended INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT pk_usage_events PRIMARY KEY (customer_id, idempotency_key)
);
CREATE INDEX ix_usage_events_counter ON usage_events (customer_id, meter_key, period_start, timestamp, idempotency_key);
CREATE INDEX ix_usage_events_period ON usage_events (period_start, customer_id, meter_key);
CREATE INDEX ix_usage_events_unique_value ON usage_events (customer_id, meter_key, period_start, unique_value)
    WHERE unique_value IS NOT NULL;

CREATE TABLE usage_counters (
    customer_id TEXT NOT NULL,
    meter_key TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    total INTEGER NOT NULL,
    last_timestamp INTEGER NULL,
    last_key TEXT NULL,
    CONSTRAINT pk_usage_counters PRIMARY KEY (customer_id, meter_key, period_start)
) WITHOUT ROWID;
