-- 0001: the block store (see the package doc of internal/tangle/dag).

-- Key/value facts about the store: the network it belongs to and running totals that Stats reads
-- without scanning blocks. The writer updates the totals in the transaction that changes them.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value ANY NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('blocks', 0), ('solid', 0), ('bytes', 0);

-- One row per stored block. raw is the exact wire encoding; the other columns are copies of its fields
-- (or derived from them) so that the store never has to decode a block to index it.
CREATE TABLE blocks (
	rid     INTEGER PRIMARY KEY,      -- insertion order; blocks are big, so not WITHOUT ROWID
	id      BLOB    NOT NULL UNIQUE,  -- H(raw), 32 bytes
	raw     BLOB    NOT NULL,
	time    INTEGER NOT NULL,         -- issuing time, Unix ms
	ttl     INTEGER NOT NULL,         -- seconds
	expires INTEGER NOT NULL,         -- time + ttl·1000, Unix ms, saturated
	shard   INTEGER NOT NULL,
	solid   INTEGER NOT NULL          -- 0 or 1; never goes back to 0
);

-- Catch-up (IDsSince) and tip-pool rebuild: per shard in (time, id) order.
CREATE INDEX blocks_shard_time ON blocks (shard, time, id);

-- Prune.
CREATE INDEX blocks_expires ON blocks (expires);

-- Parent → child references of stored children. The parent need not be stored (see missing). Edges to
-- Genesis are not recorded.
CREATE TABLE edges (
	parent BLOB NOT NULL,
	child  BLOB NOT NULL,
	PRIMARY KEY (parent, child)
) WITHOUT ROWID;

CREATE INDEX edges_child ON edges (child); -- the primary key (parent) is appended implicitly

-- Ids that stored blocks reference (or once referenced) but that are not stored themselves.
--   state 0: missing, wanted (Missing lists these, oldest first by seq);
--   state 1: given up (GiveUp) or pruned while it still had children: counts as solid for its children;
--   state 2: rejected (it broke the parent-age rule): counts as given up, and Put refuses the id until
--            expires.
-- Invariant: the parent of every edge is either a stored block or has a row here.
CREATE TABLE missing (
	seq       INTEGER PRIMARY KEY,    -- first-reference order
	id        BLOB    NOT NULL UNIQUE,
	first_ref INTEGER NOT NULL,       -- Unix ms, the store's clock
	state     INTEGER NOT NULL DEFAULT 0,
	expires   INTEGER NOT NULL DEFAULT 0  -- state 2: when the row may be pruned, Unix ms
);

CREATE INDEX missing_state ON missing (state, seq);
