-- 0002: the block budget (see budget.go). hold is a bit set of reasons a block may not be evicted to
-- keep the store within its budget: 1 not yet trial-opened by this node, 2 published by this node and
-- awaiting its receipt. Expiry (Prune) deletes held blocks like any other. An evicted block leaves a
-- missing row in state 3 (evicted) until its expiry, so that it is not fetched and stored again.
ALTER TABLE blocks ADD COLUMN hold INTEGER NOT NULL DEFAULT 0;

-- Eviction order: unheld blocks, oldest issuing time first.
CREATE INDEX blocks_evict ON blocks (time, nid) WHERE hold = 0;

-- Held blocks (Stats, SetHeld).
CREATE INDEX blocks_held ON blocks (nid) WHERE hold != 0;
