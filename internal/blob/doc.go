// Package blob owns sealed blobs: content too large for the gossip path (attachments), encrypted once
// with a fresh key, content-addressed, stored on disk and pulled over a libp2p stream protocol by the
// recipient's node. docs/protocol.md §13 is normative for the format, the Ref and the wire protocol.
//
// # Format (§13.1)
//
// A blob is an age-style STREAM: ChaCha20-Poly1305 over 64 KiB plaintext chunks, each with the nonce
// 11-byte big-endian counter ‖ last-chunk flag, so chunks cannot be reordered, dropped or the blob
// truncated. The key is 32 random bytes per blob. The manifest is LE64(size) ‖ H(sealed chunk i)…, and
// the blob id is H("tanglemail/v1/blob" ‖ manifest): a fetcher checks a manifest from any holder against
// the id, then every chunk on its own as it arrives, before it touches the disk. Sealer and Reader
// stream: neither side ever holds more than one chunk of a blob in memory.
//
// # Ref (§13.2)
//
// A Ref (id, size, key, holders) travels only inside sealed mail envelopes; DecodeRef is bounded and
// fuzzed (FuzzDecodeRef).
//
// # Store (store.go)
//
// Store keeps blobs in one directory (0700, files 0600): <id>.blob holds the sealed chunks at fixed
// offsets, <id>.meta (atomicfile) the manifest, expiry and the bitmap of chunks on disk. A chunk counts
// as held only after the data file was fsync'd and the bitmap written (Sync), so a fetch or an upload
// resumes after a crash from what is durable, and an upload is acknowledged only then. The store has a
// byte budget (space is reserved when a blob is begun) and a TTL per blob (Prune). One mutex guards the
// index; file reads and writes use ReadAt/WriteAt outside it.
//
// # Transfer (§13.3–13.5)
//
// Server serves get-manifest, get-chunks and put on <prefix>/blob/1, asking an Authorize hook first.
// Client.Fetch pulls a blob over the routes Plan gives (contacts directly; a stranger's own node only
// through a relay, never dialled directly), resumes from the durable bitmap after a broken stream,
// refuses a chunk whose hash is wrong and moves to the next holder. Client.Put uploads to a provider.
// Relayed routes are meant for a Client whose Dialer is a one-time host (the node uses a
// p2p.ClientHost per private fetch): a Dialer's host may use any connection or address it knows for
// the holder's peer id. Hooks for the sender's progress: Client.Uploaded, Server.Served. An Authorize
// error that wraps ErrBudget answers quota full (a provider charging its subscriber's quota).
package blob
