package dag

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

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
	if selfState == 3 {
		return Result{}, nil // evicted for the budget: not stored again (see Has)
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
	res, err := w.insBlock.ExecContext(w.ctx, nid, id[:], b.Raw, b.Time, int64(b.TTL), b.ExpiresAtMs(), int64(shard), boolInt(solid), int64(w.s.opts.holdNew))
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
