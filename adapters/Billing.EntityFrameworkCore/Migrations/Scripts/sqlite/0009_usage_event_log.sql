-- Billing schema v9 (SQLite): usage_event_log, an append-only log in front of usage_events (a write buffer).
-- SQLite's write-ahead log holds whole pages, and an event inserted into usage_events dirties a random page of its
-- primary key and one of its counter index: about two 4 KiB pages per event in a commit of a few hundred events. The
-- usage event store (EntityFrameworkUsageEventStore) of the process that owns the log appends accepted events here
-- instead (rows in rowid order: a few new pages per commit) and moves them into usage_events in large transactions,
-- in key order, where each random index page is written once for many events. A row here is an accepted event as
-- durable as a row of usage_events; its key was checked against usage_events and the log when it was appended.
-- seq is AUTOINCREMENT so that a number never names two rows. No secondary index; the checks are those of
-- usage_events, so that a row that was appended can always be moved.

CREATE TABLE usage_event_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL CONSTRAINT ck_usage_event_log_customer_id CHECK (length(customer_id) BETWEEN 1 AND 255),
    idempotency_key TEXT NOT NULL CONSTRAINT ck_usage_event_log_idempotency_key CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    meter_key TEXT NOT NULL CONSTRAINT ck_usage_event_log_meter_key CHECK (length(meter_key) BETWEEN 1 AND 255),
    period_start INTEGER NOT NULL,
    subscription_id TEXT NULL,
    quantity INTEGER NOT NULL CONSTRAINT ck_usage_event_log_quantity CHECK (quantity >= 0),
    timestamp INTEGER NOT NULL,
    unique_value TEXT NULL,
    properties TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    acceptance_token INTEGER NULL
);
