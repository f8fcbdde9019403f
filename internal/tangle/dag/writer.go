package dag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
)

// request is one write call, handed to the writer goroutine. The writer fills in the results and
// closes done after the transaction holding it committed (or failed).
type request struct {
	op     opKind
	blocks []*tangle.Block
	id     tangle.ID // opGiveUp
	now    int64     // opPrune: Unix ms
	res    []Result
	n      int // opPrune: blocks deleted; more is true when the chunk limit was reached
	more   bool
	err    error
	done   chan struct{}
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

// pruneChunk is the most blocks Prune deletes in one transaction, so that Puts are not held up long.
const pruneChunk = 2000

// Prune deletes the blocks whose issuing time + TTL ≤ now, their edges, and the missing-parent rows that
// only pruned blocks referenced; it returns how many blocks it deleted. It works in transactions of at
// most pruneChunk blocks, between which Puts proceed. Children of a pruned block keep their solidity;
// a pruned block that still has stored children is recorded as given up, so its unsolid children can
// become solid.
func (s *Store) Prune(now time.Time) (int, error) {
	total := 0
	for {
		r := &request{op: opPrune, now: now.UnixMilli()}
		if err := s.do(context.Background(), r); err != nil {
			return total, err
		}
		total += r.n
		if !r.more {
			return total, nil
		}
	}
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
	e.dBlocks, e.dSolid, e.dBytes = 0, 0, 0
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
		var b strings.Builder
		b.WriteString("WITH q(id) AS (VALUES ")
		for i := range k {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "(?%d)", i+1)
		}
		b.WriteString(`) SELECT q.id, b.nid, b.time, b.solid, b.shard, m.nid, m.state FROM q
			LEFT JOIN blocks b ON b.id = q.id LEFT JOIN missing m ON m.id = q.id`)
		w.lookup[k] = prep(b.String())
	}
	for k := 1; k < len(w.edges); k++ {
		var b strings.Builder
		b.WriteString("INSERT OR IGNORE INTO edges (parent, child) VALUES ")
		for i := range k {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "(?%d, ?1)", i+2)
		}
		w.edges[k] = prep(b.String())
	}
	w.insBlock = prep(`INSERT INTO blocks (nid, id, raw, time, ttl, expires, shard, solid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
	w.dropRejected = prep(`DELETE FROM missing WHERE state = 2 AND expires <= ?
		AND NOT EXISTS (SELECT 1 FROM edges WHERE parent = missing.nid)`)
	w.counter = prep(`UPDATE meta SET value = value + ? WHERE key = ?`)
	if err == nil {
		err = conn.QueryRowContext(w.ctx, `SELECT MAX(COALESCE((SELECT MAX(nid) FROM blocks), 0),
			COALESCE((SELECT MAX(nid) FROM missing), 0))`).Scan(&w.nid)
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
		}
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

// known is what the writer knows about an id.
type known struct {
	stored bool
	meta         // stored: the block's fields
	nid    int64 // missing row's nid (stored: meta.nid)
	state  int64 // missing row's state, −1: no row
}

// put stores one block inside the batch's transaction. In the common case — parents stored recently,
// nobody waiting for the block — that is two statements: the block insert and one insert of all its
// edges; the parents come from the recent-block cache and the missing filter says no child waits.
func (w *writer) put(b *tangle.Block) (Result, error) {
	if w.failPut != nil {
		if err := w.failPut(b); err != nil {
			return Result{}, err
		}
	}
	id := b.ID()
	if _, ok := w.cache.get(id); ok {
		return Result{}, nil // stored recently
	}
	// A missing row for the block: children wait for it, or it was rejected.
	selfNid, selfState := int64(0), int64(-1)
	if w.filter.mayHave(id) {
		err := w.missingOf.QueryRowContext(w.ctx, id[:]).Scan(&selfNid, &selfState)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Result{}, err
		}
	}
	if selfState == 2 {
		return Result{Err: &tangle.ValidationError{Err: tangle.ErrParentAge, Detail: "block was rejected before"}}, nil
	}
	// The parents other than Genesis: from the cache, else one lookup for all the others.
	var pbuf [tangle.MaxParents]tangle.ID
	ps := pbuf[:0]
	for _, p := range b.Parents {
		if p != tangle.Genesis && !slices.Contains(ps, p) { // decoded blocks have unique parents anyway
			ps = append(ps, p)
		}
	}
	var parents [tangle.MaxParents]known
	var misses []tangle.ID
	for i, p := range ps {
		if m, ok := w.cache.get(p); ok {
			parents[i] = known{stored: true, meta: m, state: -1}
		} else {
			misses = append(misses, p)
		}
	}
	if len(misses) > 0 {
		info, err := w.lookupIDs(misses)
		if err != nil {
			return Result{}, err
		}
		for i, p := range ps {
			if k, ok := info[p]; ok {
				parents[i] = k
				if k.stored {
					w.cache.put(p, k.meta)
				}
			}
		}
	}
	// Parent-age rule against stored parents; solidity.
	solid := true
	for i, p := range ps {
		k := parents[i]
		switch {
		case k.stored:
			if err := w.checkParentTime(id, b.Time, p, k.time); err != nil {
				return w.rejectNew(b, selfNid, err)
			}
			solid = solid && k.solid
		case k.state >= 1: // given up, pruned or rejected
		default:
			solid = false
		}
	}
	nid := selfNid
	if selfState >= 0 {
		if _, err := w.delMissing.ExecContext(w.ctx, nid); err != nil {
			return Result{}, err
		}
	} else {
		nid = w.nextNid()
	}
	shard := b.Shard(w.s.params.ShardBits)
	res, err := w.insBlock.ExecContext(w.ctx, nid, id[:], b.Raw, b.Time, int64(b.TTL), b.ExpiresAtMs(), int64(shard), boolInt(solid))
	if err != nil {
		return Result{}, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return Result{}, err // stored before, and no longer in the cache
	}
	w.cache.put(id, meta{nid: nid, time: b.Time, shard: shard, solid: solid})
	w.eff.dBlocks++
	w.eff.dBytes += int64(len(b.Raw))
	if solid {
		w.eff.dSolid++
	}
	if len(ps) > 0 {
		now := w.s.opts.now().UnixMilli()
		args := append(w.args[:0], nid)
		for i, p := range ps {
			k := &parents[i]
			switch {
			case k.stored:
				args = append(args, k.meta.nid)
				w.eff.tipDel(p, k.shard)
			case k.state >= 0:
				args = append(args, k.nid)
			default: // first reference: a new missing row
				k.nid = w.nextNid()
				if _, err := w.insMissing.ExecContext(w.ctx, k.nid, p[:], now); err != nil {
					return Result{}, err
				}
				w.filter.add(p)
				args = append(args, k.nid)
			}
		}
		w.args = args
		if _, err := w.edges[len(ps)].ExecContext(w.ctx, args...); err != nil {
			return Result{}, err
		}
	}
	if selfState < 0 {
		// Nothing referenced this block, so it has no stored children: a new tip if solid.
		if solid {
			w.eff.tipAdd(id, shard, b.Time)
		}
		return Result{Added: true}, nil
	}
	// Children arrived first. Check the parent-age rule against each, then propagate solidity.
	kids, err := w.query(w.children, nid)
	if err != nil {
		return Result{}, err
	}
	var queue []int64
	kept := 0
	for _, c := range kids {
		if err := w.checkParentTime(c.id, c.time, id, b.Time); err != nil {
			if err := w.rejectStored(c.nid, err, &queue); err != nil {
				return Result{}, err
			}
			continue
		}
		kept++
	}
	if solid {
		queue = append(queue, nid)
	}
	if err := w.propagate(queue); err != nil {
		return Result{}, err
	}
	if kept == 0 && solid { // every child was rejected
		w.eff.tipAdd(id, shard, b.Time)
	}
	return Result{Added: true}, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// lookupIDs runs the lookup statement for ids (1..8 of them).
func (w *writer) lookupIDs(ids []tangle.ID) (map[tangle.ID]known, error) {
	args := w.args[:0]
	for i := range ids {
		args = append(args, ids[i][:])
	}
	w.args = args
	rows, err := w.lookup[len(ids)].QueryContext(w.ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	info := make(map[tangle.ID]known, len(ids))
	var (
		raw                              []byte
		bnid, t, sol, shard, mnid, state sql.NullInt64
	)
	for rows.Next() {
		if err := rows.Scan(&raw, &bnid, &t, &sol, &shard, &mnid, &state); err != nil {
			return nil, err
		}
		k := known{state: -1}
		if bnid.Valid {
			k.stored = true
			k.meta = meta{nid: bnid.Int64, time: t.Int64, solid: sol.Int64 != 0, shard: uint32(shard.Int64)}
		}
		if mnid.Valid {
			k.nid, k.state = mnid.Int64, state.Int64
		}
		info[idOf(raw)] = k
	}
	return info, rows.Err()
}

// checkParentTime is params.CheckParent on issuing times (the rule reads nothing else), with the
// error's detail naming the real ids.
func (w *writer) checkParentTime(child tangle.ID, childTime int64, parent tangle.ID, parentTime int64) error {
	if err := w.s.params.CheckParent(&tangle.Block{Time: childTime}, &tangle.Block{Time: parentTime}); err != nil {
		return &tangle.ValidationError{Err: tangle.ErrParentAge, Detail: fmt.Sprintf(
			"parent %s issued at %d ms, child %s at %d ms", parent.Short(), parentTime, child.Short(), childTime)}
	}
	return nil
}

// rejectNew records a block that breaks the parent-age rule and is not stored (selfNid: its missing
// row's nid, 0 if none). If stored children wait for it, they may now become solid.
func (w *writer) rejectNew(b *tangle.Block, selfNid int64, verr error) (Result, error) {
	id := b.ID()
	nid, err := w.raise(id, selfNid, 2, b.ExpiresAtMs())
	if err != nil {
		return Result{}, err
	}
	w.eff.rejected = append(w.eff.rejected, rejection{id: id, err: verr})
	if err := w.propagate([]int64{nid}); err != nil {
		return Result{}, err
	}
	return Result{Err: verr}, nil
}

// rejectStored deletes a stored block that breaks the parent-age rule and records it as rejected; its
// own children stay, and it is queued so that the unsolid ones are re-evaluated.
func (w *writer) rejectStored(nid int64, verr error, queue *[]int64) error {
	d, err := w.deleteBlock(nid)
	if err != nil {
		return err
	}
	if _, err := w.raise(d.id, nid, 2, d.expires); err != nil {
		return err
	}
	w.eff.rejected = append(w.eff.rejected, rejection{id: d.id, err: verr})
	*queue = append(*queue, nid)
	return nil
}

// raise creates the missing row of id (with nid, or a new nid if 0) or raises its state to state
// (1 given up or pruned, 2 rejected). It returns the row's nid.
func (w *writer) raise(id tangle.ID, nid, state, expires int64) (int64, error) {
	fresh := nid == 0
	if fresh {
		nid = w.nextNid()
	}
	w.filter.add(id)
	if _, err := w.raiseMissing.ExecContext(w.ctx, nid, id[:], w.s.opts.now().UnixMilli(), state, expires); err != nil {
		return 0, err
	}
	if fresh { // the row may have existed already, under its own nid
		var got int64
		if err := w.missingOf.QueryRowContext(w.ctx, id[:]).Scan(&got, new(int64)); err != nil {
			return 0, err
		}
		nid = got
	}
	return nid, nil
}

type deleted struct {
	id      tangle.ID
	parents []int64
	expires int64
}

// deleteBlock deletes a stored block and its edges to its parents, and keeps the counters, the cache
// and the tip pool in step. The missing rows of its parents are left to the caller.
func (w *writer) deleteBlock(nid int64) (deleted, error) {
	var d deleted
	rows, err := w.delEdgesOf.QueryContext(w.ctx, nid)
	if err != nil {
		return d, err
	}
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return d, err
		}
		d.parents = append(d.parents, p)
	}
	if err := rows.Close(); err != nil {
		return d, err
	}
	var (
		raw                []byte
		solid, size, shard int64
	)
	if err := w.delBlock.QueryRowContext(w.ctx, nid).Scan(&raw, &solid, &size, &shard, &d.expires); err != nil {
		return d, err
	}
	d.id = idOf(raw)
	w.cache.del(d.id)
	w.eff.dBlocks--
	w.eff.dBytes -= size
	if solid != 0 {
		w.eff.dSolid--
	}
	w.eff.tipDel(d.id, uint32(shard))
	return d, nil
}

type child struct {
	nid   int64
	id    tangle.ID
	time  int64
	shard uint32
}

// query runs a children statement (nid, id, time, shard rows) for nid.
func (w *writer) query(st *sql.Stmt, nid int64) ([]child, error) {
	rows, err := st.QueryContext(w.ctx, nid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []child
	for rows.Next() {
		var (
			c     child
			raw   []byte
			shard int64
		)
		if err := rows.Scan(&c.nid, &raw, &c.time, &shard); err != nil {
			return nil, err
		}
		c.id, c.shard = idOf(raw), uint32(shard)
		out = append(out, c)
	}
	return out, rows.Err()
}

// propagate re-evaluates, transitively, the unsolid stored children of the nids in queue: nodes that
// just became solid, or were given up, rejected or pruned. It works with an explicit stack, not
// recursion, so deep chains cannot overflow anything; solid never goes back to 0, so it terminates.
func (w *writer) propagate(queue []int64) error {
	for len(queue) > 0 {
		x := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		kids, err := w.query(w.unsolidChildren, x)
		if err != nil {
			return err
		}
		for _, c := range kids {
			var open int
			if err := w.openParents.QueryRowContext(w.ctx, c.nid).Scan(&open); err != nil {
				return err
			}
			if open > 0 {
				continue
			}
			res, err := w.setSolid.ExecContext(w.ctx, c.nid)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			w.eff.dSolid++
			w.cache.setSolid(c.id)
			queue = append(queue, c.nid)
			var has bool
			if err := w.hasChild.QueryRowContext(w.ctx, c.nid).Scan(&has); err != nil {
				return err
			}
			if !has {
				w.eff.tipAdd(c.id, c.shard, c.time)
			}
		}
	}
	return nil
}

// giveUp marks id as given up (unless it is stored) and re-evaluates its children.
func (w *writer) giveUp(id tangle.ID) error {
	if _, ok := w.cache.get(id); ok {
		return nil
	}
	err := w.storedNid.QueryRowContext(w.ctx, id[:]).Scan(new(int64))
	if err == nil {
		return nil // stored
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	nid, err := w.raise(id, 0, 1, 0)
	if err != nil {
		return err
	}
	return w.propagate([]int64{nid})
}

// prune deletes up to pruneChunk expired blocks (see Store.Prune).
func (w *writer) prune(now int64) (n int, more bool, err error) {
	rows, err := w.expired.QueryContext(w.ctx, now, pruneChunk)
	if err != nil {
		return 0, false, err
	}
	var nids []int64
	for rows.Next() {
		var nid int64
		if err := rows.Scan(&nid); err != nil {
			rows.Close()
			return 0, false, err
		}
		nids = append(nids, nid)
	}
	if err := rows.Close(); err != nil {
		return 0, false, err
	}
	parents := map[int64]struct{}{}
	ids := make([]tangle.ID, len(nids))
	for i, nid := range nids {
		d, err := w.deleteBlock(nid)
		if err != nil {
			return 0, false, err
		}
		ids[i] = d.id
		for _, p := range d.parents {
			parents[p] = struct{}{}
		}
	}
	// A pruned block that still has stored children becomes a given-up missing row under the same nid,
	// so that the invariant (every edge's parent is stored or missing) holds and its unsolid children
	// can become solid.
	var queue []int64
	for i, nid := range nids {
		var has bool
		if err := w.hasChild.QueryRowContext(w.ctx, nid).Scan(&has); err != nil {
			return 0, false, err
		}
		if has {
			if _, err := w.raise(ids[i], nid, 1, 0); err != nil {
				return 0, false, err
			}
			queue = append(queue, nid)
		}
	}
	// Missing rows that only pruned blocks referenced.
	for p := range parents {
		if _, err := w.dropMissing.ExecContext(w.ctx, p); err != nil {
			return 0, false, err
		}
	}
	if _, err := w.dropRejected.ExecContext(w.ctx, now); err != nil {
		return 0, false, err
	}
	if err := w.propagate(queue); err != nil {
		return 0, false, err
	}
	return len(nids), len(nids) == pruneChunk, nil
}

// rebuildFilter fills a fresh missing filter from the table, sized for it.
func (w *writer) rebuildFilter() error {
	var n int
	if err := w.conn.QueryRowContext(w.ctx, `SELECT COUNT(*) FROM missing`).Scan(&n); err != nil {
		return err
	}
	f := newMissingFilter(n)
	rows, err := w.conn.QueryContext(w.ctx, `SELECT id FROM missing`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		f.add(idOf(raw))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	f.adds = n
	w.filter = f
	return nil
}
