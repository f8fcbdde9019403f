package dag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Result is the outcome of one block of a PutResults call.
type Result struct {
	// Added is true when the block was stored by this call; false when it was already stored, appeared
	// earlier in the same batch, or was rejected.
	Added bool
	// Err is non-nil when the block was rejected and not stored: it breaks the parent-age rule against a
	// stored parent, or its id was rejected before. It wraps tangle.ErrParentAge.
	Err error
}

type opKind uint8

const (
	opPut opKind = iota
	opGiveUp
	opPrune
	opHold
)

// request is one write call, handed to the writer goroutine. The writer fills in the results and
// closes done after the transaction holding it committed (or failed).
type request struct {
	op      opKind
	blocks  []*tangle.Block
	id      tangle.ID // opGiveUp
	now     int64     // opPrune: Unix ms
	hold    Hold      // opHold: the bits; set or clear them on ids; replace: clear them everywhere first
	set     bool
	replace bool
	ids     []tangle.ID
	res     []Result
	n       int // opPrune: blocks deleted; more is true when the chunk limit was reached
	more    bool
	err     error
	done    chan struct{}
}

func (r *request) weight() int {
	if r.op == opPut {
		return len(r.blocks)
	}
	return 1
}

// do sends r to the writer and waits for it. ctx bounds the wait; once sent, the request is carried
// out even if ctx ends first.
func (s *Store) do(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	s.pending.Add(1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.pending.Add(-1)
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Put stores already-validated blocks durably: it returns after the transaction that holds them has
// committed, batched with concurrent callers (group commit). added[i] is false when block i was
// already stored, was a duplicate of an earlier block of the batch, or was rejected (see PutResults).
// It updates the parent/child index, the tip pool, solidity and the expiry index. If ctx ends after the
// blocks were handed to the writer, Put returns ctx.Err() and the blocks may or may not be stored.
func (s *Store) Put(ctx context.Context, blocks ...*tangle.Block) (added []bool, err error) {
	res, err := s.PutResults(ctx, blocks...)
	if err != nil {
		return nil, err
	}
	added = make([]bool, len(res))
	for i, r := range res {
		added[i] = r.Added
	}
	return added, nil
}

// PutResults is Put that also says which blocks were rejected for the parent-age rule, and why.
func (s *Store) PutResults(ctx context.Context, blocks ...*tangle.Block) ([]Result, error) {
	if len(blocks) == 0 {
		return []Result{}, nil
	}
	for i, b := range blocks {
		if b == nil || len(b.Raw) == 0 || b.ID() == tangle.Genesis || len(b.Parents) == 0 || len(b.Parents) > tangle.MaxParents {
			return nil, fmt.Errorf("dag: Put: block %d is not a decoded block", i)
		}
	}
	r := &request{op: opPut, blocks: blocks}
	if err := s.do(ctx, r); err != nil {
		return nil, err
	}
	return r.res, nil
}

// GiveUp marks a missing parent as unavailable (expired, or nobody has it): it leaves Missing, and its
// children may become solid. Giving up a stored id does nothing. If the block arrives later it is
// stored as usual; children that became solid meanwhile stay solid.
func (s *Store) GiveUp(id tangle.ID) error {
	if id == tangle.Genesis {
		return nil
	}
	return s.do(context.Background(), &request{op: opGiveUp, id: id})
}

// run is the writer goroutine: it takes requests in batches and commits each batch in one transaction.
func (s *Store) run() {
	defer close(s.done)
	var timer *time.Timer
	batch := make([]*request, 0, 64)
	for {
		first, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		n := first.weight()
		open := true
		// Take whatever is queued already.
	drain:
		for n < s.opts.maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, r)
				n += r.weight()
			default:
				break drain
			}
		}
		// Wait for more, unless every caller in a write call is already here.
		if open && s.opts.window > 0 && n < s.opts.maxBatch && s.pending.Load() > int64(len(batch)) {
			if timer == nil {
				timer = time.NewTimer(s.opts.window)
			} else {
				timer.Reset(s.opts.window)
			}
		wait:
			for n < s.opts.maxBatch && s.pending.Load() > int64(len(batch)) {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						open = false
						break wait
					}
					batch = append(batch, r)
					n += r.weight()
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		s.batches.Add(1)
		s.batched.Add(int64(n))
		s.wr.commit(batch)
		for _, r := range batch {
			s.pending.Add(-1)
			close(r.done)
		}
		clear(batch)
		if !open {
			// Close: finish what was sent before the channel closed.
			for r := range s.reqs {
				s.wr.commit([]*request{r})
				s.pending.Add(-1)
				close(r.done)
			}
			return
		}
	}
}

// effects are the in-memory consequences of a transaction, applied only after it committed.
type effects struct {
	dBlocks, dSolid, dBytes int64
	evicted                 int64   // blocks evicted for the budget
	tips                    []tipOp // in transaction order
	rejected                []rejection
}

// tipAdd records that id became a tip candidate: stored, solid, without children.
func (e *effects) tipAdd(id tangle.ID, shard uint32, t int64) {
	e.tips = append(e.tips, tipOp{add: true, tipEntry: tipEntry{id: id, shard: shard, time: t}})
}

// tipDel records that id stopped being a tip: it got a child, or was deleted.
func (e *effects) tipDel(id tangle.ID, shard uint32) {
	e.tips = append(e.tips, tipOp{tipEntry: tipEntry{id: id, shard: shard}})
}

type rejection struct {
	id  tangle.ID
	err error
}

func (e *effects) reset() {
	e.dBlocks, e.dSolid, e.dBytes, e.evicted = 0, 0, 0, 0
	e.tips = e.tips[:0]
	e.rejected = e.rejected[:0]
}

// writer owns the write connection and its prepared statements. Only the writer goroutine (and Open,
// before it starts, and Close, after it stopped) uses it.
type writer struct {
	s    *Store
	conn *sql.Conn
	ctx  context.Context

	begin, commitSt, rollback *sql.Stmt
	lookup                    [tangle.MaxParents + 1]*sql.Stmt // [k]: k ids
	edges                     [tangle.MaxParents + 1]*sql.Stmt // [k]: child and k parents
	insBlock, insMissing      *sql.Stmt
	missingOf, delMissing     *sql.Stmt
	raiseMissing              *sql.Stmt
	children, unsolidChildren *sql.Stmt
	openParents, setSolid     *sql.Stmt
	hasChild, delBlock        *sql.Stmt
	delEdgesOf, storedNid     *sql.Stmt
	expired, dropMissing      *sql.Stmt
	dropRejected, counter     *sql.Stmt

	eff    effects
	args   []any
	nid    int64 // last node number handed out
	bytes  int64 // committed total of block encodings (meta 'bytes')
	cache  *recentCache
	filter *missingFilter

	failPut func(*tangle.Block) error // tests: make put fail for a block
}

func newWriter(s *Store, conn *sql.Conn) (*writer, error) {
	w := &writer{s: s, conn: conn, ctx: context.Background(), cache: newRecentCache(s.opts.cacheSize)}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = conn.PrepareContext(w.ctx, q)
		return st
	}
	w.begin = prep("BEGIN IMMEDIATE")
	w.commitSt = prep("COMMIT")
	w.rollback = prep("ROLLBACK")
	for k := 1; k < len(w.lookup); k++ {
		// One row per id: the stored block's nid, time, solidity and shard (NULL if not stored) and
		// the missing row's nid and state (NULL if none). The VALUES list is a co-routine; both joins
		// are unique-index seeks.
		w.lookup[k] = prep("WITH q(id) AS (VALUES " + valuesList(k, "(?%d)", 1) +
			`) SELECT q.id, b.nid, b.time, b.solid, b.shard, m.nid, m.state FROM q
			LEFT JOIN blocks b ON b.id = q.id LEFT JOIN missing m ON m.id = q.id`)
	}
	for k := 1; k < len(w.edges); k++ {
		w.edges[k] = prep("INSERT OR IGNORE INTO edges (parent, child) VALUES " + valuesList(k, "(?%d, ?1)", 2))
	}
	w.insBlock = prep(`INSERT INTO blocks (nid, id, raw, time, ttl, expires, shard, solid, hold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`)
	w.insMissing = prep(`INSERT INTO missing (nid, id, first_ref) VALUES (?, ?, ?)`)
	w.missingOf = prep(`SELECT nid, state FROM missing WHERE id = ?`)
	w.delMissing = prep(`DELETE FROM missing WHERE nid = ?`)
	// state := max(state, new); expires only matters for state 2.
	w.raiseMissing = prep(`INSERT INTO missing (nid, id, first_ref, state, expires) VALUES (?1, ?2, ?3, ?4, ?5)
		ON CONFLICT (id) DO UPDATE SET state = MAX(state, excluded.state), expires = MAX(expires, excluded.expires)`)
	w.children = prep(`SELECT b.nid, b.id, b.time, b.shard FROM edges e JOIN blocks b ON b.nid = e.child WHERE e.parent = ?`)
	w.unsolidChildren = prep(`SELECT b.nid, b.id, b.time, b.shard FROM edges e JOIN blocks b ON b.nid = e.child
		WHERE e.parent = ? AND b.solid = 0`)
	// Parents of a child that are neither stored and solid nor given up (or rejected, or pruned).
	w.openParents = prep(`SELECT COUNT(*) FROM edges e
		LEFT JOIN blocks b ON b.nid = e.parent
		LEFT JOIN missing m ON m.nid = e.parent
		WHERE e.child = ? AND COALESCE(b.solid, 0) = 0 AND COALESCE(m.state, 0) = 0`)
	w.setSolid = prep(`UPDATE blocks SET solid = 1 WHERE nid = ? AND solid = 0`)
	w.hasChild = prep(`SELECT EXISTS (SELECT 1 FROM edges WHERE parent = ?)`)
	w.delBlock = prep(`DELETE FROM blocks WHERE nid = ? RETURNING id, solid, length(raw), shard, expires`)
	w.delEdgesOf = prep(`DELETE FROM edges WHERE child = ? RETURNING parent`)
	w.storedNid = prep(`SELECT nid FROM blocks WHERE id = ?`)
	w.expired = prep(`SELECT nid FROM blocks WHERE expires <= ? ORDER BY expires LIMIT ?`)
	w.dropMissing = prep(`DELETE FROM missing WHERE nid = ?1 AND state < 2 AND NOT EXISTS (SELECT 1 FROM edges WHERE parent = ?1)`)
	w.dropRejected = prep(`DELETE FROM missing WHERE state >= 2 AND expires <= ?
		AND NOT EXISTS (SELECT 1 FROM edges WHERE parent = missing.nid)`)
	w.counter = prep(`UPDATE meta SET value = value + ? WHERE key = ?`)
	if err == nil {
		err = conn.QueryRowContext(w.ctx, `SELECT MAX(COALESCE((SELECT MAX(nid) FROM blocks), 0),
			COALESCE((SELECT MAX(nid) FROM missing), 0))`).Scan(&w.nid)
	}
	if err == nil {
		err = conn.QueryRowContext(w.ctx, `SELECT value FROM meta WHERE key = 'bytes'`).Scan(&w.bytes)
	}
	if err == nil {
		err = w.rebuildFilter()
	}
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range w.all() {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

func (w *writer) all() []*sql.Stmt {
	sts := []*sql.Stmt{w.begin, w.commitSt, w.rollback, w.insBlock, w.insMissing, w.missingOf, w.delMissing,
		w.raiseMissing, w.children, w.unsolidChildren, w.openParents, w.setSolid, w.hasChild, w.delBlock,
		w.delEdgesOf, w.storedNid, w.expired, w.dropMissing, w.dropRejected, w.counter}
	sts = append(sts, w.lookup[:]...)
	return append(sts, w.edges[:]...)
}

// nextNid hands out the next node number.
func (w *writer) nextNid() int64 {
	w.nid++
	return w.nid
}

// commit runs a batch in one transaction. On any database error the transaction is rolled back and
// every request of the batch fails with that error: nothing of the batch is stored.
func (w *writer) commit(batch []*request) {
	w.eff.reset()
	if w.filter.full() {
		_ = w.rebuildFilter() // on failure the old filter stays: still correct, only less sharp
	}
	if err := w.tx(batch); err != nil {
		w.cache.reset() // it may describe rolled-back rows
		for _, r := range batch {
			r.err, r.res = err, nil
		}
		return
	}
	w.bytes += w.eff.dBytes
	w.s.evicted.Add(w.eff.evicted)
	w.s.apply(&w.eff)
}

func (w *writer) tx(batch []*request) (err error) {
	if _, err := w.begin.ExecContext(w.ctx); err != nil {
		return fmt.Errorf("dag: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = w.rollback.ExecContext(w.ctx)
		}
	}()
	for _, r := range batch {
		switch r.op {
		case opPut:
			r.res = make([]Result, len(r.blocks))
			for i, b := range r.blocks {
				if r.res[i], err = w.put(b); err != nil {
					return fmt.Errorf("dag: put %s: %w", b.ID().Short(), err)
				}
			}
		case opGiveUp:
			if err = w.giveUp(r.id); err != nil {
				return fmt.Errorf("dag: give up %s: %w", r.id.Short(), err)
			}
		case opPrune:
			if r.n, r.more, err = w.prune(r.now); err != nil {
				return fmt.Errorf("dag: prune: %w", err)
			}
		case opHold:
			if err = w.hold(r); err != nil {
				return fmt.Errorf("dag: hold: %w", err)
			}
		}
	}
	if err = w.enforceBudget(); err != nil {
		return fmt.Errorf("dag: budget: %w", err)
	}
	for _, c := range []struct {
		d   int64
		key string
	}{{w.eff.dBlocks, "blocks"}, {w.eff.dSolid, "solid"}, {w.eff.dBytes, "bytes"}} {
		if c.d != 0 {
			if _, err = w.counter.ExecContext(w.ctx, c.d, c.key); err != nil {
				return fmt.Errorf("dag: counters: %w", err)
			}
		}
	}
	if _, err = w.commitSt.ExecContext(w.ctx); err != nil {
		return fmt.Errorf("dag: commit: %w", err)
	}
	return nil
}

// valuesList is k comma-separated tuples of an SQL VALUES list, tuple formatted with the parameter
// numbers first, first+1, …
func valuesList(k int, tuple string, first int) string {
	var b strings.Builder
	for i := range k {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, tuple, first+i)
	}
	return b.String()
}
