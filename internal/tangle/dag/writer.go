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
		if b == nil || len(b.Raw) == 0 || len(b.Parents) == 0 || len(b.Parents) > tangle.MaxParents {
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
	lookup                    [tangle.MaxParents + 2]*sql.Stmt // [k]: k ids
	edges                     [tangle.MaxParents + 1]*sql.Stmt // [k]: child and k parents
	insBlock, insMissing      *sql.Stmt
	delMissing, setMissing    *sql.Stmt
	children, unsolidChildren *sql.Stmt
	openParents, setSolid     *sql.Stmt
	hasChild, delBlock        *sql.Stmt
	delEdgesOf, giveUpSt      *sql.Stmt
	expired, dropMissing      *sql.Stmt
	dropRejected, counter     *sql.Stmt
	stored                    *sql.Stmt

	eff  effects
	args []any
}

func newWriter(s *Store, conn *sql.Conn) (*writer, error) {
	w := &writer{s: s, conn: conn, ctx: context.Background()}
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
		in := placeholders(1, k)
		// Stored ids with their time, solidity and shard; then the missing rows of the others.
		w.lookup[k] = prep(`SELECT id, time, solid, shard, -1 FROM blocks WHERE id IN (` + in + `)
			UNION ALL SELECT id, 0, 0, 0, state FROM missing WHERE id IN (` + in + `)`)
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
	w.insBlock = prep(`INSERT INTO blocks (id, raw, time, ttl, expires, shard, solid) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`)
	w.insMissing = prep(`INSERT INTO missing (id, first_ref) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`)
	w.delMissing = prep(`DELETE FROM missing WHERE id = ?`)
	// state := max(state, new); expires only matters for state 2.
	w.setMissing = prep(`INSERT INTO missing (id, first_ref, state, expires) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (id) DO UPDATE SET state = MAX(state, excluded.state), expires = MAX(expires, excluded.expires)`)
	w.children = prep(`SELECT b.id, b.time, b.solid, b.shard FROM edges e JOIN blocks b ON b.id = e.child WHERE e.parent = ?`)
	w.unsolidChildren = prep(`SELECT b.id, b.time, b.shard FROM edges e JOIN blocks b ON b.id = e.child
		WHERE e.parent = ? AND b.solid = 0`)
	// Parents of a child that are neither stored and solid nor given up (or rejected, or pruned).
	w.openParents = prep(`SELECT COUNT(*) FROM edges e
		LEFT JOIN blocks b ON b.id = e.parent
		LEFT JOIN missing m ON m.id = e.parent
		WHERE e.child = ? AND COALESCE(b.solid, 0) = 0 AND COALESCE(m.state, 0) = 0`)
	w.setSolid = prep(`UPDATE blocks SET solid = 1 WHERE id = ? AND solid = 0`)
	w.hasChild = prep(`SELECT EXISTS (SELECT 1 FROM edges WHERE parent = ?)`)
	w.delBlock = prep(`DELETE FROM blocks WHERE id = ? RETURNING solid, length(raw), shard, expires`)
	w.delEdgesOf = prep(`DELETE FROM edges WHERE child = ? RETURNING parent`)
	w.expired = prep(`SELECT id FROM blocks WHERE expires <= ? ORDER BY expires LIMIT ?`)
	w.dropMissing = prep(`DELETE FROM missing WHERE id = ?1 AND state < 2 AND NOT EXISTS (SELECT 1 FROM edges WHERE parent = ?1)`)
	w.dropRejected = prep(`DELETE FROM missing WHERE state = 2 AND expires <= ?
		AND NOT EXISTS (SELECT 1 FROM edges WHERE parent = missing.id)`)
	w.counter = prep(`UPDATE meta SET value = value + ? WHERE key = ?`)
	w.stored = prep(`SELECT EXISTS (SELECT 1 FROM blocks WHERE id = ?)`)
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// placeholders returns "?from, …, ?(from+k−1)".
func placeholders(from, k int) string {
	var b strings.Builder
	for i := range k {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "?%d", from+i)
	}
	return b.String()
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
	sts := []*sql.Stmt{w.begin, w.commitSt, w.rollback, w.insBlock, w.insMissing, w.delMissing, w.setMissing,
		w.children, w.unsolidChildren, w.openParents, w.setSolid, w.hasChild, w.delBlock, w.delEdgesOf,
		w.expired, w.dropMissing, w.dropRejected, w.counter, w.stored}
	sts = append(sts, w.lookup[:]...)
	return append(sts, w.edges[:]...)
}

// commit runs a batch in one transaction. On any database error the transaction is rolled back and
// every request of the batch fails with that error: nothing of the batch is stored.
func (w *writer) commit(batch []*request) {
	w.eff.reset()
	err := w.tx(batch)
	if err != nil {
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

// known is what the lookup found out about an id.
type known struct {
	stored bool
	time   int64
	solid  bool
	shard  uint32
	state  int64 // missing row state, −1: no row
}

// put stores one block inside the batch's transaction (see the package doc for the steps).
func (w *writer) put(b *tangle.Block) (Result, error) {
	id := b.ID()
	// One statement tells whether the block is stored, whether it has a missing row, and the same of
	// each parent other than Genesis.
	ids := make([]tangle.ID, 0, tangle.MaxParents+1)
	ids = append(ids, id)
	for _, p := range b.Parents {
		if p != tangle.Genesis {
			ids = append(ids, p)
		}
	}
	info, err := w.lookupIDs(ids)
	if err != nil {
		return Result{}, err
	}
	self := info[id]
	if self.stored {
		return Result{}, nil
	}
	if self.state == 2 {
		return Result{Err: &tangle.ValidationError{Err: tangle.ErrParentAge, Detail: "block was rejected before"}}, nil
	}
	// Parent-age rule against stored parents; solidity.
	solid := true
	for _, p := range ids[1:] {
		k := info[p]
		switch {
		case k.stored:
			if err := w.checkParent(b, p, k.time); err != nil {
				return w.rejectNew(b, err)
			}
			solid = solid && k.solid
		case k.state >= 1: // given up, pruned or rejected
		default:
			solid = false
		}
	}
	shard := b.Shard(w.s.params.ShardBits)
	res, err := w.insBlock.ExecContext(w.ctx, id[:], b.Raw, b.Time, int64(b.TTL), b.ExpiresAtMs(), int64(shard), boolInt(solid))
	if err != nil {
		return Result{}, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return Result{}, err // stored earlier in this batch
	}
	w.eff.dBlocks++
	w.eff.dBytes += int64(len(b.Raw))
	if solid {
		w.eff.dSolid++
	}
	if len(ids) > 1 {
		args := w.args[:0]
		args = append(args, id[:])
		for _, p := range ids[1:] {
			args = append(args, p[:])
		}
		w.args = args
		if _, err := w.edges[len(ids)-1].ExecContext(w.ctx, args...); err != nil {
			return Result{}, err
		}
	}
	now := w.s.opts.now().UnixMilli()
	for _, p := range ids[1:] {
		k := info[p]
		switch {
		case k.stored:
			w.eff.tipDel(p, k.shard)
		case k.state < 0:
			if _, err := w.insMissing.ExecContext(w.ctx, p[:], now); err != nil {
				return Result{}, err
			}
		}
	}
	if self.state < 0 {
		// Nothing referenced this block, so it has no stored children: a new tip if solid.
		if solid {
			w.eff.tipAdd(id, shard, b.Time)
		}
		return Result{Added: true}, nil
	}
	// Children arrived first. Check the parent-age rule against each, then propagate solidity.
	if _, err := w.delMissing.ExecContext(w.ctx, id[:]); err != nil {
		return Result{}, err
	}
	kids, err := w.childrenOf(id)
	if err != nil {
		return Result{}, err
	}
	var queue []tangle.ID
	kept := 0
	for _, c := range kids {
		if err := w.checkParentTime(c.id, c.time, id, b.Time); err != nil {
			if err := w.rejectStored(c.id, err, &queue); err != nil {
				return Result{}, err
			}
			continue
		}
		kept++
	}
	if solid {
		queue = append(queue, id)
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

// lookupIDs runs the lookup statement for ids (1..9 of them).
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
	for _, id := range ids {
		info[id] = known{state: -1}
	}
	var (
		raw                 []byte
		t, sol, shard, stat int64
	)
	for rows.Next() {
		if err := rows.Scan(&raw, &t, &sol, &shard, &stat); err != nil {
			return nil, err
		}
		id := idOf(raw)
		k := info[id]
		if stat < 0 {
			k.stored, k.time, k.solid, k.shard = true, t, sol != 0, uint32(shard)
		} else {
			k.state = stat
		}
		info[id] = k
	}
	return info, rows.Err()
}

// checkParent applies params.CheckParent to a child and a stored parent known by id and issuing time.
func (w *writer) checkParent(child *tangle.Block, parent tangle.ID, parentTime int64) error {
	return w.checkParentTime(child.ID(), child.Time, parent, parentTime)
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

// rejectNew records a block that breaks the parent-age rule and is not stored. If stored children wait
// for it, they may now become solid.
func (w *writer) rejectNew(b *tangle.Block, verr error) (Result, error) {
	id := b.ID()
	if _, err := w.setMissing.ExecContext(w.ctx, id[:], w.s.opts.now().UnixMilli(), 2, b.ExpiresAtMs()); err != nil {
		return Result{}, err
	}
	w.eff.rejected = append(w.eff.rejected, rejection{id: id, err: verr})
	if err := w.propagate([]tangle.ID{id}); err != nil {
		return Result{}, err
	}
	return Result{Err: verr}, nil
}

// rejectStored deletes a stored block that breaks the parent-age rule and records it as rejected; its
// own children stay, and id is queued so that the unsolid ones are re-evaluated.
func (w *writer) rejectStored(id tangle.ID, verr error, queue *[]tangle.ID) error {
	d, err := w.deleteBlock(id)
	if err != nil {
		return err
	}
	if _, err := w.setMissing.ExecContext(w.ctx, id[:], w.s.opts.now().UnixMilli(), 2, d.expires); err != nil {
		return err
	}
	w.eff.rejected = append(w.eff.rejected, rejection{id: id, err: verr})
	*queue = append(*queue, id)
	return nil
}

type deleted struct {
	parents []tangle.ID
	expires int64
}

// deleteBlock deletes a stored block and its edges to its parents, and keeps the counters and the tip
// pool in step. The missing rows of its parents are left to the caller.
func (w *writer) deleteBlock(id tangle.ID) (deleted, error) {
	var d deleted
	rows, err := w.delEdgesOf.QueryContext(w.ctx, id[:])
	if err != nil {
		return d, err
	}
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return d, err
		}
		d.parents = append(d.parents, idOf(p))
	}
	if err := rows.Close(); err != nil {
		return d, err
	}
	var solid, size, shard int64
	if err := w.delBlock.QueryRowContext(w.ctx, id[:]).Scan(&solid, &size, &shard, &d.expires); err != nil {
		return d, err
	}
	w.eff.dBlocks--
	w.eff.dBytes -= size
	if solid != 0 {
		w.eff.dSolid--
	}
	w.eff.tipDel(id, uint32(shard))
	return d, nil
}

type child struct {
	id    tangle.ID
	time  int64
	solid bool
	shard uint32
}

func (w *writer) childrenOf(id tangle.ID) ([]child, error) {
	rows, err := w.children.QueryContext(w.ctx, id[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []child
	for rows.Next() {
		var (
			raw         []byte
			t, s, shard int64
		)
		if err := rows.Scan(&raw, &t, &s, &shard); err != nil {
			return nil, err
		}
		out = append(out, child{id: idOf(raw), time: t, solid: s != 0, shard: uint32(shard)})
	}
	return out, rows.Err()
}

// propagate re-evaluates, transitively, the unsolid stored children of the ids in queue: ids that just
// became solid, or were given up, rejected or pruned. It works with an explicit stack, not recursion,
// so deep chains cannot overflow anything; solid never goes back to 0, so it terminates.
func (w *writer) propagate(queue []tangle.ID) error {
	for len(queue) > 0 {
		x := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		rows, err := w.unsolidChildren.QueryContext(w.ctx, x[:])
		if err != nil {
			return err
		}
		var kids []child
		for rows.Next() {
			var (
				raw      []byte
				t, shard int64
			)
			if err := rows.Scan(&raw, &t, &shard); err != nil {
				rows.Close()
				return err
			}
			kids = append(kids, child{id: idOf(raw), time: t, shard: uint32(shard)})
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, c := range kids {
			var open int
			if err := w.openParents.QueryRowContext(w.ctx, c.id[:]).Scan(&open); err != nil {
				return err
			}
			if open > 0 {
				continue
			}
			res, err := w.setSolid.ExecContext(w.ctx, c.id[:])
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			w.eff.dSolid++
			queue = append(queue, c.id)
			var has bool
			if err := w.hasChild.QueryRowContext(w.ctx, c.id[:]).Scan(&has); err != nil {
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
	var stored bool
	if err := w.stored.QueryRowContext(w.ctx, id[:]).Scan(&stored); err != nil {
		return err
	}
	if stored {
		return nil
	}
	if _, err := w.setMissing.ExecContext(w.ctx, id[:], w.s.opts.now().UnixMilli(), 1, 0); err != nil {
		return err
	}
	return w.propagate([]tangle.ID{id})
}

// prune deletes up to pruneChunk expired blocks (see Store.Prune).
func (w *writer) prune(now int64) (n int, more bool, err error) {
	rows, err := w.expired.QueryContext(w.ctx, now, pruneChunk)
	if err != nil {
		return 0, false, err
	}
	var ids []tangle.ID
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			rows.Close()
			return 0, false, err
		}
		ids = append(ids, idOf(raw))
	}
	if err := rows.Close(); err != nil {
		return 0, false, err
	}
	parents := map[tangle.ID]struct{}{}
	for _, id := range ids {
		d, err := w.deleteBlock(id)
		if err != nil {
			return 0, false, err
		}
		for _, p := range d.parents {
			parents[p] = struct{}{}
		}
	}
	// A pruned block that still has stored children becomes a given-up missing row, so that the
	// invariant (every edge's parent is stored or has a missing row) holds and its unsolid children
	// can become solid.
	var queue []tangle.ID
	for _, id := range ids {
		var has bool
		if err := w.hasChild.QueryRowContext(w.ctx, id[:]).Scan(&has); err != nil {
			return 0, false, err
		}
		if has {
			if _, err := w.setMissing.ExecContext(w.ctx, id[:], now, 1, 0); err != nil {
				return 0, false, err
			}
			queue = append(queue, id)
		}
	}
	// Missing rows that only pruned blocks referenced.
	for p := range parents {
		if _, err := w.dropMissing.ExecContext(w.ctx, p[:]); err != nil {
			return 0, false, err
		}
	}
	if _, err := w.dropRejected.ExecContext(w.ctx, now); err != nil {
		return 0, false, err
	}
	if err := w.propagate(queue); err != nil {
		return 0, false, err
	}
	return len(ids), len(ids) == pruneChunk, nil
}
