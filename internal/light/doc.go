// Package light is the light client's link to its storage providers (protocol.md §12): it keeps
// no Tangle, receives the blocks of its route-tag prefix from one or more providers (live while
// connected, stored while it was away), hands them to the inbox to trial-open and file, and hands the
// blocks the outbox builds to a provider to publish.
//
// It owns light.db (one row per provider: the fetch cursor and the quota notices sent) and one Client
// per provider subscription. The engines stay where they are: a Client reaches the inbox through Filer
// and is itself an outbox.Publisher and outbox.Tips (Clients combines several), so the light client is
// another implementation of those small interfaces, not a second copy of the engines. It does not
// import the wire protocol either: Provider mirrors wire.Session's methods and internal/node adapts one
// to the other.
//
// Invariants and ordering:
//   - Nothing the provider stored is lost: a page of blocks is filed (committed by the inbox) before the
//     cursor is advanced past it in light.db (synchronous=FULL), and the provider is told to Release
//     only up to a cursor already persisted. A crash between the steps fetches the page again; the
//     inbox files nothing twice (replay keys), so the only cost is a second trial-open.
//   - The cursor is exclusive and opaque: the client never tells the provider which blocks were its
//     own (it releases everything up to a cursor, protocol.md §12).
//   - Live push is lossy by nature. A session first opens the watch stream and then fetches from the
//     cursor, so a block stored meanwhile is seen at least once; pushed blocks at or below the cursor,
//     or already filed by an earlier push, are dropped as duplicates. A push whose cursor does not follow
//     the persisted one directly starts a fetch from the cursor, which finds anything that was lost.
//   - Blocks from a provider are validated (network, PoW, fields) except for expiry: stored blocks may
//     be past their TTL. Invalid ones are counted and skipped, never filed.
//   - Quota: at each session start and every StatusInterval the client reads the subscription's usage;
//     the first time it reaches 80 % and the first time it is full, one notice is filed in the INBOX
//     (Notify), once each until usage falls below 80 % again (recorded in light.db across restarts).
//
// Locking: a Client's session state (the current provider, its tips cache, its status) is guarded by
// one mutex held only for field access, never across a network call. Counters are atomics.
package light
