-- Billing schema v5 (SQLite): what a draft needs to price its usage again at finalization, and the tier
-- breakdown of usage lines: the invoice's coupon, and per line the plan that priced it and its price breakdown.

ALTER TABLE invoices ADD COLUMN coupon TEXT NULL;
ALTER TABLE invoice_lines ADD COLUMN plan_id TEXT NULL CONSTRAINT ck_invoice_lines_plan_id CHECK (length(plan_id) <= 255);
ALTER TABLE invoice_lines ADD COLUMN breakdown TEXT NULL;
