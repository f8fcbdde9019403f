// Package dag is the block store: the blocks of the tangle in SQLite, their parent/child index,
// solidity, the per-shard tip pool (URTS parent selection), catch-up listing and expiry (pruning). It
// stores blocks that the caller has already validated (tangle.Params.Validate, protocol.md §2.1
// rules 1–6); the one rule that needs other blocks, the parent-age rule, it checks itself.
//
// # API
//
//	var ErrNotFound, ErrClosed, ErrCorrupt, ErrSchema error
//	func Open(path string, params tangle.Params, opts ...Option) (*Store, error)
//	    options: WithClock, WithBatchWindow, WithMaxBatch, WithRejectHandler, WithReadConns,
//	             WithBudget, WithHoldNew
//	func (s *Store) Close() error
//	func (s *Store) Put(ctx, blocks ...*tangle.Block) (added []bool, err error)
//	func (s *Store) PutResults(ctx, blocks ...*tangle.Block) ([]Result, error) // Put, with rejections
//	func (s *Store) Has(id) (bool, error)                     // stored, or evicted for the budget
//	func (s *Store) Get(id) (*tangle.Block, error)            // ErrNotFound; decoded afresh from raw
//	func (s *Store) Children(id) ([]tangle.ID, error)
//	func (s *Store) IsSolid(id) (bool, error)
//	func (s *Store) Missing(limit int) ([]tangle.ID, error)   // oldest reference first
//	func (s *Store) GiveUp(id) error
//	func (s *Store) SelectParents(shard uint32, n int) []tangle.ID
//	func (s *Store) IDsSince(shard uint32, since time.Time, after Cursor, limit int) ([]Cursor, error)
//	func (s *Store) Prune(now time.Time) (int, error)
//	func (s *Store) Stats() (Stats, error)
//	func (s *Store) Hold(h Hold, ids ...tangle.ID) error      // HoldUnopened, HoldOwn
//	func (s *Store) Release(h Hold, ids ...tangle.ID) error
//	func (s *Store) SetHeld(h Hold, ids ...tangle.ID) error   // exactly these hold h
//
// # Budget
//
// WithBudget bounds the bytes of stored block encodings. Each block has a hold bit set (column hold):
// HoldUnopened (new blocks start with WithHoldNew's holds; the node releases it once its inbox has
// handled the block), HoldOwn (the node's own blocks awaiting a receipt). At the end of every write
// transaction that leaves the store over budget, the writer evicts unheld blocks in the same
// transaction, oldest issuing time first, ties by nid (index blocks_evict), never by tag, id or TTL
// (protocol.md §7.1 says why). Held blocks are never evicted but are pruned at expiry like the rest;
// Stats.HeldBytes counts them. An evicted block leaves a missing row in state 3 until its expiry: it
// counts as given up for its children, Has reports it, and Put does not store it again, so catch-up does
// not fetch back what the budget pushed out. Eviction and Prune share deleteNids.
//
// Definitions. A block is solid when every parent is Genesis, or stored and solid, or given up —
// GiveUp, or rejected (below), or pruned while the block was stored. Solidity never goes back: a
// child stays solid when its parent is later pruned, or a given-up parent arrives after all. A tip is
// a stored, solid block without stored children; SelectParents draws from the tips issued in
// [now − TipEligible, now + ClockSkew] (the upper bound keeps every parent within the parent-age rule
// of a child issued now). Unsolid blocks are not tips: a node does not approve what it cannot check.
//
// Parent-age rule (protocol.md §2.1): whenever a child and a parent are both known — at Put of the
// child, or when a parent arrives after its children — params.CheckParent decides. A new block that
// breaks it is not stored: PutResults reports it in Result.Err (Put as added = false). A stored child
// that breaks it against a late parent is deleted in the parent's transaction. Either way the id is
// recorded as rejected: Put refuses it until it expires, its own stored children (if any) count it as
// given up, and the WithRejectHandler callback hears of it after the commit.
//
// # Storage
//
// One SQLite file (modernc.org/sqlite, pure Go) in WAL mode with synchronous=FULL. Durability contract:
// a Put that returned nil has committed, and the commit survives a process crash and a power loss. In
// WAL mode synchronous=FULL fsyncs the WAL at every commit, which is what that needs (given a disk
// that honours flushes). NORMAL would fsync
// only at checkpoints: still consistent after a power loss, but the last commits can be lost, so it
// would break the contract (it is durable only against a process crash). A transaction is never half
// applied, so a crash never leaves a half-written block, a block without its edges, or counters out of
// step. The schema is a list of numbered migrations (migrations/NNNN_name.sql, embedded) recorded in
// table schema_version (package sqlitedb); Open applies the pending ones in one transaction and refuses a file from a
// newer program or another network (ErrSchema), or one that is not a database (ErrCorrupt).
//
// Tables (migrations/0001_init.sql documents each column): blocks (nid, id, raw, time, ttl, expires,
// shard, solid; indexes on id, (shard, time, id) for IDsSince and the tip rebuild, and expires for
// Prune); edges (parent, child), keyed both ways, without edges to Genesis; missing (ids referenced but
// not stored: state 0 wanted, 1 given up or pruned, 2 rejected); meta (the network's name and the
// running totals Stats reads). Every id the store knows — stored block or missing parent — has a node
// number (nid), handed out in increasing order when the id is first stored or referenced, and kept when a
// missing parent arrives or a stored block with children is pruned or rejected. Edges are between nids:
// a block's parents are recent, so its edges land near the end of the edge b-trees, where keying them
// by random 32-byte ids dirtied one random page per edge, about five pages of WAL per block in all.
// Invariants: the parent of every edge is a stored block or a missing row, never both; the ids of the
// missing table are never stored; solid never goes from 1 to 0.
//
// The WAL is checkpointed every 8,192 pages (32 MiB) rather than SQLite's 1,000, so that an index
// page changed by many batches is copied to the database file once; journal_size_limit keeps the file
// from staying large.
//
// # Concurrency
//
// Writes — Put, GiveUp, Prune, Hold/Release/SetHeld — are requests to one writer goroutine, which owns the only write
// connection and its prepared statements. It takes the first request, then whatever is queued, then
// waits up to the batch window (WithBatchWindow, default 2 ms) for more, stopping early at WithMaxBatch
// blocks (default 1024) or when every caller inside a write call is already in the batch, so a lone
// writer does not wait at all. The whole batch is one IMMEDIATE transaction; every caller returns after
// it committed. On a database error the batch is rolled back and all its callers get the error. Within
// a batch, requests and blocks are applied in order: a duplicate within the batch, like an
// already-stored block, is added = false, and a child put before its parent in the same batch becomes
// solid when the parent comes. Prune works in transactions of at most 2,000 blocks, between which other
// batches commit.
//
// Per block, in the common case — parents stored recently, nothing waiting for the block — the writer
// runs two statements: the block insert (which also catches an old duplicate by its unique id) and one
// multi-row insert of its edges. Two in-memory aids owned by the writer goroutine make that possible
// (cache.go): a recent-block cache (the last 65,536 blocks stored or looked up: nid, time, shard,
// solid), which answers the parent lookups and the duplicate check for recent blocks, and a Bloom
// filter over the missing table's ids, which answers "does anything wait for this block?" with no false
// negatives. A cache miss costs one lookup statement for all the missing parents; a filter hit one
// query. Both err only on the safe side; the cache is emptied when a transaction rolls back and starts
// empty at Open, where the filter is rebuilt from the table. Out-of-order arrivals cost more: when a block arrives that others reference, its
// stored children are checked against the parent-age rule and solidity is propagated, iteratively with
// an explicit stack (no recursion), in the same transaction.
//
// Reads use a separate pool of query-only connections; in WAL mode they run concurrently with the
// writer and see every committed transaction, so a read after Put returned sees the blocks.
//
// The tip pool is memory only, rebuilt from the database at Open. (One difference: a block whose only
// child is rejected or pruned does not return to the pool until the next Open.) The writer collects the changes of a
// transaction (tips added, tips that got a child or were deleted, rejections) and applies them under
// the pool's mutex only after the commit, in transaction order, so the pool never shows uncommitted
// blocks. Lock order: Store.closeMu (held for reading while a request is handed over; Close takes it
// for writing, then waits for the writer to drain) is never held while waiting for a commit; the tip
// pool mutex is a leaf. The reject callback runs on the writer goroutine after the commit, before the
// batch's callers are released; it must not write to the store.
package dag
