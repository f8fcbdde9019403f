-- Subscriber: which subscription each sent transaction pays, and whether its payment is settled (the
-- provider activated it, or refused it for good). An unsettled one is resumed by the next
-- "storage subscribe" for that subscription instead of paying a new quote (no double payment after
-- an interrupted run). Rows written before this migration have no sub and are never resumed.
ALTER TABLE sent_tx ADD COLUMN sub BLOB;
ALTER TABLE sent_tx ADD COLUMN settled_at INTEGER;  -- Unix ms; NULL while the payment may still activate
CREATE INDEX sent_tx_open ON sent_tx (sub, created_at) WHERE settled_at IS NULL;
