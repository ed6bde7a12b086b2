-- Billing schema v4 (SQLite): the unique indexes on invoice numbers and outbox positions only cover rows that have
-- one (as on PostgreSQL). SQLite writes through EF Core, which checks versions itself: nothing else changes.
DROP INDEX ux_invoices_number;
CREATE UNIQUE INDEX ux_invoices_number ON invoices (number) WHERE number IS NOT NULL;
DROP INDEX ux_outbox_events_position;
CREATE UNIQUE INDEX ux_outbox_events_position ON outbox_events (position) WHERE position IS NOT NULL;
