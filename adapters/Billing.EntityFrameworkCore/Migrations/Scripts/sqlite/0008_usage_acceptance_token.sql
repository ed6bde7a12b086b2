-- Billing schema v8 (SQLite): the acceptance token of each usage event (see the PostgreSQL script). Null for rows
-- stored before this version.

ALTER TABLE usage_events ADD COLUMN acceptance_token INTEGER NULL;
