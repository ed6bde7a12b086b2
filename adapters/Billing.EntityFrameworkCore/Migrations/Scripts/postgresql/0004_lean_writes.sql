-- Billing schema v4 (PostgreSQL): cheaper writes on the billing-run hot path.
-- Draft invoices have no number and new outbox rows no position yet: the unique indexes on those columns only need the
-- rows that have one, so inserting a draft or an event no longer adds an entry to them (lookups by number or position
-- compare with a value, which implies NOT NULL, so they still use the indexes).
DROP INDEX {schema}.ux_invoices_number;
CREATE UNIQUE INDEX ux_invoices_number ON {schema}.invoices (number) WHERE number IS NOT NULL;
DROP INDEX {schema}.ux_outbox_events_position;
CREATE UNIQUE INDEX ux_outbox_events_position ON {schema}.outbox_events (position) WHERE position IS NOT NULL;

-- Claiming due work only sets claim_expires_at, which no index covers: free space on each page lets PostgreSQL write
-- that as a heap-only (HOT) update, without new index entries. Applies to pages written from now on.
ALTER TABLE {schema}.subscriptions SET (fillfactor = 90);
ALTER TABLE {schema}.invoices SET (fillfactor = 90);

-- Optimistic concurrency inside one statement batch: the adapter updates a versioned row with
-- WITH u AS (UPDATE … WHERE id = … AND version = … RETURNING 1) SELECT expect_current_version((SELECT count(*) FROM u), …)
-- so a stale version aborts the whole batch (SQLSTATE 40001) before anything commits.
CREATE FUNCTION {schema}.expect_current_version(updated bigint, object_type text, object_id text, expected_version bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF updated <> 1 THEN
        RAISE EXCEPTION 'stale write: % % is no longer at version %', object_type, object_id, expected_version
            USING ERRCODE = '40001';
    END IF;
END
$$;
