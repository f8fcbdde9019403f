-- Sealed blobs (protocol.md §13) uploaded by a subscriber's node and held by the node's blob store:
-- their sealed size counts against the subscription's quota (subs.used_bytes) until they expire.
CREATE TABLE blob_charges (
    sub     BLOB NOT NULL,
    blob    BLOB NOT NULL,                -- the blob id (32 bytes)
    bytes   INTEGER NOT NULL,             -- sealed size
    expires INTEGER NOT NULL,             -- Unix ms: the charge ends with the blob
    PRIMARY KEY (sub, blob)
) WITHOUT ROWID;
CREATE INDEX blob_charges_expires ON blob_charges(expires);
