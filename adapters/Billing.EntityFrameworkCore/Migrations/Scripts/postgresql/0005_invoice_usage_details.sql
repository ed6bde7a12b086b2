-- Billing schema v5 (PostgreSQL): what a draft needs to price its usage again at finalization, and the tier
-- breakdown of usage lines: the invoice's coupon, and per line the plan that priced it and its price breakdown.

ALTER TABLE {schema}.invoices ADD COLUMN coupon jsonb NULL;
ALTER TABLE {schema}.invoice_lines ADD COLUMN plan_id text COLLATE "C" NULL CONSTRAINT ck_invoice_lines_plan_id CHECK (length(plan_id) <= 255);
ALTER TABLE {schema}.invoice_lines ADD COLUMN breakdown jsonb NULL;
