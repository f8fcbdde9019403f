-- 0001: the block store (see the package doc of internal/tangle/dag).

-- Key/value facts about the store: the network it belongs to and running totals that Stats reads
-- without scanning blocks. The writer updates the totals in the transaction that changes them.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value ANY NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('blocks', 0), ('solid', 0), ('bytes', 0);

-- Every id the store knows — a stored block or a missing parent — has a node number (nid), handed out
-- in increasing order by the writer when the id is first stored or first referenced. A missing parent
-- that arrives keeps its nid, and so does a stored block that is pruned or rejected while it still has
-- children. Edges are between nids: blocks reference recent parents, so edge inserts land near the end
-- of the edge b-trees instead of on random pages, which is what keeps the write volume per block low.

-- One row per stored block. raw is the exact wire encoding, nonce included; the other columns are
-- copies of its fields (or derived from them), so the store never decodes a block to index it. id is
-- the block's key (unique); nid is the rowid: rows of a kilobyte or more do not suit WITHOUT ROWID.
CREATE TABLE blocks (
	nid     INTEGER PRIMARY KEY,
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

-- Parent → child references of stored children, by nid, keyed both ways. The parent need not be
-- stored (see missing). Edges to Genesis are not recorded.
CREATE TABLE edges (
	parent INTEGER NOT NULL,
	child  INTEGER NOT NULL,
	PRIMARY KEY (parent, child)
) WITHOUT ROWID;

CREATE INDEX edges_child ON edges (child); -- the primary key (parent) is appended implicitly

-- Ids that stored blocks reference (or once referenced) but that are not stored themselves.
--   state 0: missing, wanted (Missing lists these in nid order, which is first-reference order);
--   state 1: given up (GiveUp) or pruned while it still had children: counts as solid for its children;
--   state 2: rejected (it broke the parent-age rule): counts as given up, and Put refuses the id until
--            expires.
-- Invariants: the parent of every edge is a stored block or a missing row; no id is both.
CREATE TABLE missing (
	nid       INTEGER PRIMARY KEY,
	id        BLOB    NOT NULL UNIQUE,
	first_ref INTEGER NOT NULL,           -- Unix ms, the store's clock
	state     INTEGER NOT NULL DEFAULT 0,
	expires   INTEGER NOT NULL DEFAULT 0  -- state 2: when the row may be pruned, Unix ms
);

CREATE INDEX missing_state ON missing (state); -- the rowid (nid) is appended implicitly
