// Package storage is the storage provider (docs/protocol.md §12): it keeps, beyond their TTL, the
// sealed blocks whose route tag matches a subscriber's tag prefix, up to the subscription's retention
// and quota, and serves them over the storage stream protocol (package storage/wire) to the holder of
// the subscription's key. On a public node it also publishes light clients' blocks (PoW first, then a
// per-client rate limit, then full validation, then the node's gossip) and gives them tips.
//
// # Data
//
// storage.db (internal/sqlitedb, WAL, synchronous=FULL, mode 0600): subs (one row per subscription:
// prefix, key, retention, quota, state pending→active→expired, active_until, next cursor, usage),
// grants (SHA-256 of one-time operator tokens) and blocks (subscription, cursor, block id, raw bytes
// exactly as gossiped, stored_at), and blob_charges (subscription, blob id, sealed size, expiry: the
// subscriber's blob uploads held by the node's blob store, ChargeBlob), and released (subscription,
// block id, expiry: the blocks a subscriber released, not stored for it again until the maximum TTL
// has passed, however often the node offers its block store again). No client address, no identity, no plaintext is stored: blocks are
// sealed, and the per-address limit is counted in memory.
//
// # Invariants and ordering
//
//   - Every acknowledgement is a commit: Offer returns, Create answers, Release answers OK only after
//     the transaction committed (synchronous=FULL), so a SIGKILL loses nothing acknowledged.
//   - Cursors: each subscription's next_seq is stored with the blocks in the same transaction and never
//     decreases, so a cursor is stable across restarts and never reused.
//   - Quota: a block that would take a subscription past its quota, or the provider past its disk cap,
//     is refused for that subscription; stored blocks are never evicted to make room (a stranger who
//     grinds blocks with the prefix cannot push stored mail out). Only release, retention and expiry
//     delete. A subscriber's blob uploads count in the same usage (used_bytes) from ChargeBlob, which
//     refuses past the quota, until the blob's expiry (Prune); a blob is charged once.
//   - Admission: a subscription is pending until a grant, the allowlist or Activate (payments) makes it
//     active; the active quotas never exceed the disk cap.
//
// # Locking
//
// wmu serialises write transactions (Offer, Create, Release, Activate, Grant, ChargeBlob, pruning) and the cache
// updates that follow each commit; mu guards the in-memory cache of subscriptions, the watchers and
// the per-address table and is never held across I/O. Reads (fetch) use a separate read-only pool.
// Pushes to watchers are non-blocking (a full queue drops: push is lossy, fetch is not).
package storage
