-- Billing schema v3 (PostgreSQL): usage metering.
-- usage_events: every accepted usage event, for good, unique per (customer_id, idempotency_key): the system of
-- record that invoices are priced from. usage_counters: one row per (customer, meter, period) for the durable usage
-- counter (EntityFrameworkUsageCounter), which serializes the events of a counter on that row.
-- Keys and ids are COLLATE "C", so ordering and the Last tie-break are ordinal (byte order of UTF-8).

-- Plans carry their metered prices and entitlements (JSON arrays; empty for plans without usage pricing).
ALTER TABLE {schema}.plans ADD COLUMN metered_prices jsonb NOT NULL DEFAULT '[]';
ALTER TABLE {schema}.plans ADD COLUMN entitlements jsonb NOT NULL DEFAULT '[]';

CREATE TABLE {schema}.usage_events (
    customer_id text COLLATE "C" NOT NULL CONSTRAINT ck_usage_events_customer_id CHECK (length(customer_id) BETWEEN 1 AND 255),
    idempotency_key text COLLATE "C" NOT NULL CONSTRAINT ck_usage_events_idempotency_key CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    meter_key text COLLATE "C" NOT NULL CONSTRAINT ck_usage_events_meter_key CHECK (length(meter_key) BETWEEN 1 AND 255),
    period_start timestamptz NOT NULL,
    subscription_id text COLLATE "C" NULL,
    quantity bigint NOT NULL CONSTRAINT ck_usage_events_quantity CHECK (quantity >= 0),
    timestamp timestamptz NOT NULL,
    unique_value text COLLATE "C" NULL,
    properties jsonb NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL,
    -- The counter's total right after this event (set by the durable counter; null for events appended by the store).
    total_after bigint NULL,
    -- False while an event recorded by the durable counter awaits its append by the event store (the metering
    -- service counts first, then appends): that append completes the row (subscription, properties) and reports it
    -- as stored by the append; later appends of the key report it as stored already.
    appended boolean NOT NULL DEFAULT true,
    CONSTRAINT pk_usage_events PRIMARY KEY (customer_id, idempotency_key)
);
-- A counter's events in list order (timestamp, key); also serves the aggregates and Last (read backwards).
CREATE INDEX ix_usage_events_counter ON {schema}.usage_events (customer_id, meter_key, period_start, timestamp, idempotency_key);
-- The counters of a period.
CREATE INDEX ix_usage_events_period ON {schema}.usage_events (period_start, customer_id, meter_key);
-- Unique-count meters: is this value new in the counter?
CREATE INDEX ix_usage_events_unique_value ON {schema}.usage_events (customer_id, meter_key, period_start, unique_value)
    WHERE unique_value IS NOT NULL;

CREATE TABLE {schema}.usage_counters (
    customer_id text COLLATE "C" NOT NULL,
    meter_key text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    total bigint NOT NULL,
    -- The latest event by (timestamp, key) of a Last meter.
    last_timestamp timestamptz NULL,
    last_key text COLLATE "C" NULL,
    CONSTRAINT pk_usage_counters PRIMARY KEY (customer_id, meter_key, period_start)
);

-- Records counter events in order; one result row (outcome, total) per event, in order. Outcomes: 0 accepted,
-- 1 duplicate, 2 over the limit. Aggregations: 0 sum, 1 count, 2 max, 3 last, 4 unique count (the rules of
-- UsageCounterState). The call is one transaction: the batch's counter rows are created and locked first, in key
-- order (so concurrent batches never deadlock on them), then each event is checked and applied on its own. A key
-- taken meanwhile by another counter of the customer (its row is committed when ON CONFLICT returns) is a duplicate.
CREATE FUNCTION {schema}.record_usage_events(
    p_customer_ids text[], p_meter_keys text[], p_period_starts timestamptz[], p_aggregations smallint[],
    p_quantities bigint[], p_keys text[], p_timestamps timestamptz[], p_unique_values text[], p_hard_limits bigint[],
    p_received_at timestamptz[])
RETURNS TABLE (o_outcome smallint, o_total bigint)
LANGUAGE plpgsql
AS $$
DECLARE
    v_total bigint;
    v_new bigint;
    v_last_ts timestamptz;
    v_last_key text;
    v_existing bigint;
    v_later boolean;
BEGIN
    INSERT INTO {schema}.usage_counters AS c (customer_id, meter_key, period_start, total)
    SELECT DISTINCT u.customer_id COLLATE "C", u.meter_key COLLATE "C", u.period_start, 0::bigint
    FROM unnest(p_customer_ids, p_meter_keys, p_period_starts) AS u(customer_id, meter_key, period_start)
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;

    PERFORM 1 FROM {schema}.usage_counters AS c
    WHERE (c.customer_id, c.meter_key, c.period_start) IN (
        SELECT u.customer_id, u.meter_key, u.period_start
        FROM unnest(p_customer_ids, p_meter_keys, p_period_starts) AS u(customer_id, meter_key, period_start))
    ORDER BY c.customer_id, c.meter_key, c.period_start
    FOR UPDATE OF c;

    FOR i IN 1 .. coalesce(cardinality(p_keys), 0) LOOP
        SELECT c.total, c.last_timestamp, c.last_key INTO v_total, v_last_ts, v_last_key
        FROM {schema}.usage_counters AS c
        WHERE c.customer_id = p_customer_ids[i] AND c.meter_key = p_meter_keys[i] AND c.period_start = p_period_starts[i];

        SELECT e.total_after INTO v_existing
        FROM {schema}.usage_events AS e
        WHERE e.customer_id = p_customer_ids[i] AND e.idempotency_key = p_keys[i];
        IF FOUND THEN
            o_outcome := 1;
            o_total := coalesce(v_existing, v_total);
            RETURN NEXT;
            CONTINUE;
        END IF;

        v_later := false;
        CASE p_aggregations[i]
            WHEN 0 THEN v_new := v_total + p_quantities[i];
            WHEN 1 THEN v_new := v_total + 1;
            WHEN 2 THEN v_new := greatest(v_total, p_quantities[i]);
            WHEN 3 THEN
                v_later := v_last_ts IS NULL OR p_timestamps[i] > v_last_ts
                    OR (p_timestamps[i] = v_last_ts AND p_keys[i] COLLATE "C" > v_last_key COLLATE "C");
                v_new := CASE WHEN v_later THEN p_quantities[i] ELSE v_total END;
            WHEN 4 THEN
                v_new := CASE WHEN EXISTS (
                    SELECT 1 FROM {schema}.usage_events AS e
                    WHERE e.customer_id = p_customer_ids[i] AND e.meter_key = p_meter_keys[i]
                      AND e.period_start = p_period_starts[i] AND e.unique_value = p_unique_values[i])
                    THEN v_total ELSE v_total + 1 END;
        END CASE;

        IF p_hard_limits[i] IS NOT NULL AND v_new > p_hard_limits[i] THEN
            o_outcome := 2;
            o_total := v_total;
            RETURN NEXT;
            CONTINUE;
        END IF;

        INSERT INTO {schema}.usage_events AS e (customer_id, idempotency_key, meter_key, period_start, quantity,
            timestamp, unique_value, received_at, total_after, appended)
        VALUES (p_customer_ids[i], p_keys[i], p_meter_keys[i], p_period_starts[i], p_quantities[i],
            p_timestamps[i], p_unique_values[i], p_received_at[i], v_new, false)
        ON CONFLICT (customer_id, idempotency_key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT e.total_after INTO v_existing
            FROM {schema}.usage_events AS e
            WHERE e.customer_id = p_customer_ids[i] AND e.idempotency_key = p_keys[i];
            o_outcome := 1;
            o_total := coalesce(v_existing, v_total);
            RETURN NEXT;
            CONTINUE;
        END IF;

        UPDATE {schema}.usage_counters AS c
        SET total = v_new,
            last_timestamp = CASE WHEN v_later THEN p_timestamps[i] ELSE c.last_timestamp END,
            last_key = CASE WHEN v_later THEN p_keys[i] ELSE c.last_key END
        WHERE c.customer_id = p_customer_ids[i] AND c.meter_key = p_meter_keys[i] AND c.period_start = p_period_starts[i];
        o_outcome := 0;
        o_total := v_new;
        RETURN NEXT;
    END LOOP;
END;
$$;
