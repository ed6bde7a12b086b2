-- Billing schema v9 (PostgreSQL): nothing. Version 9 adds usage_event_log on SQLite, a write buffer in front of
-- usage_events for SQLite's page-sized write-ahead log (see the SQLite script); PostgreSQL logs row changes, not
-- whole pages per commit, and keeps appending to usage_events directly. The version exists on both providers so
-- that a schema version means the same on both.

SELECT 1;
