-- Billing schema v6 (SQLite): one secondary index on usage_events for counters and periods instead of two (see the
-- PostgreSQL script): (period_start, customer_id, meter_key) finds a counter's events and the counters of a period.

DROP INDEX ix_usage_events_counter;
DROP INDEX ix_usage_events_period;
CREATE INDEX ix_usage_events_counter ON usage_events (period_start, customer_id, meter_key);
