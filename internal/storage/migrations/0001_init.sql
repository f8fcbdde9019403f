-- storage.db (docs/protocol.md §12): subscriptions, operator grants and the stored blocks.
CREATE TABLE subs (
    id             BLOB PRIMARY KEY,      -- SubID, 16 random bytes
    prefix_bits    INTEGER NOT NULL,
    prefix_tag     BLOB NOT NULL,         -- 8 bytes, bits past prefix_bits zero
    pubkey         BLOB NOT NULL,         -- the subscription's Ed25519 key (never an identity key)
    retention_days INTEGER NOT NULL,
    quota_bytes    INTEGER NOT NULL,
    state          INTEGER NOT NULL,      -- 1 pending, 2 active, 3 expired
    active_until   INTEGER NOT NULL,      -- Unix ms; 0 while pending
    created_at     INTEGER NOT NULL,      -- Unix ms
    next_seq       INTEGER NOT NULL,      -- the next block's cursor (cursors are never reused)
    used_bytes     INTEGER NOT NULL,
    blocks         INTEGER NOT NULL,
    refused        INTEGER NOT NULL       -- blocks refused at the quota
) WITHOUT ROWID;
CREATE INDEX subs_pubkey ON subs(pubkey);

CREATE TABLE grants (
    token_hash  BLOB PRIMARY KEY,         -- SHA-256 of the token; the token itself is never stored
    quota_bytes INTEGER NOT NULL,
    days        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    used_by     BLOB                      -- the subscription it activated; NULL while unused
) WITHOUT ROWID;

CREATE TABLE blocks (
    sub       BLOB NOT NULL,
    seq       INTEGER NOT NULL,           -- the block's cursor in this subscription
    id        BLOB NOT NULL,              -- block id
    size      INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,           -- Unix ms
    raw       BLOB NOT NULL,              -- exactly as gossiped (sealed, PoW intact)
    PRIMARY KEY (sub, seq)
);                                        -- a rowid table: rows of up to 32 KiB do not belong in a B-tree index
CREATE UNIQUE INDEX blocks_sub_id ON blocks(sub, id);
CREATE INDEX blocks_stored ON blocks(sub, stored_at);
