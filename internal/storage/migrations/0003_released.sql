-- The ids of blocks a subscriber released (protocol.md §12.4), kept until no block store can still
-- hold the block (the maximum TTL after its release): a block offered again — the node re-offers its
-- block store at every start — is not stored for the subscriber a second time.
CREATE TABLE released (
    sub     BLOB NOT NULL,
    id      BLOB NOT NULL,                -- block id
    expires INTEGER NOT NULL,             -- Unix ms
    PRIMARY KEY (sub, id)
) WITHOUT ROWID;
CREATE INDEX released_expires ON released(expires);
