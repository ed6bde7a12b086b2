-- Billing schema v6 (PostgreSQL): cheaper usage-event appends.
-- usage_events had two secondary indexes that every append writes: ix_usage_events_counter (customer_id, meter_key,
-- period_start, timestamp, idempotency_key) and ix_usage_events_period (period_start, customer_id, meter_key). One
-- narrower index serves every reader: equality on its three columns finds a counter's events (list, aggregates,
-- counter rebuilds), and its leading period_start finds the counters of a period. Appends write one index entry less
-- per event, and a shorter one (the entries of a counter are equal, so the btree deduplicates them). Listing a
-- counter in (timestamp, key) order and its Last aggregate now sort the counter's rows, which those reads fetch
-- anyway. ix_usage_events_unique_value (unique-count meters) stays as it is.
-- On a large usage_events table the index build blocks appends while it runs (the migrator runs a migration in one
-- transaction, which rules out CREATE INDEX CONCURRENTLY): migrate at a quiet time.

DROP INDEX {schema}.ix_usage_events_counter;
DROP INDEX {schema}.ix_usage_events_period;
CREATE INDEX ix_usage_events_counter ON {schema}.usage_events (period_start, customer_id, meter_key);
