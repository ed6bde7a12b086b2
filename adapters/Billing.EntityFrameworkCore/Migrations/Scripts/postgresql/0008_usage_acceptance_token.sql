-- Billing schema v8 (PostgreSQL): the acceptance token of each usage event.
-- The metering service draws a 64-bit token for every event it sends to a fast usage counter (in memory, Redis); the
-- counter keeps it with the idempotency key and answers duplicates of the key with it, and the event is stored with
-- the token of the acceptance it belongs to (a duplicate with the original's). When an accepted event's append finds
-- its key stored already, the stored token tells a concurrent repeat of the event (same token: the event stays
-- accepted) from a key the counter forgot (another token or none: a duplicate, and the counter is rebuilt).
-- Null for rows stored before this version and for rows the durable counter (EntityFrameworkUsageCounter) writes
-- before their append. Adding a nullable column without a default rewrites nothing: cheap on a large table.

ALTER TABLE {schema}.usage_events ADD COLUMN acceptance_token bigint NULL;
