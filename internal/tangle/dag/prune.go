package dag

import (
	"context"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

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
	if err := w.deleteNids(nids, false); err != nil {
		return 0, false, err
	}
	if _, err := w.dropRejected.ExecContext(w.ctx, now); err != nil {
		return 0, false, err
	}
	return len(nids), len(nids) == pruneChunk, nil
}

// deleteNids deletes stored blocks (expired, or evicted for the budget) with their edges, and keeps
// the invariants: a deleted block that still has stored children becomes a given-up missing row under
// the same nid (every edge's parent is stored or missing), and its unsolid children are re-evaluated;
// missing rows that only deleted blocks referenced go. An evicted block becomes an evicted missing row
// (state 3) until its expiry, children or not: Has reports it, and Put does not store it again, so
// catch-up and anti-entropy do not fetch what the budget just pushed out.
func (w *writer) deleteNids(nids []int64, evicted bool) error {
	parents := map[int64]struct{}{}
	ids := make([]tangle.ID, len(nids))
	for i, nid := range nids {
		d, err := w.deleteBlock(nid)
		if err != nil {
			return err
		}
		ids[i] = d.id
		if evicted {
			if _, err := w.raise(d.id, nid, 3, d.expires); err != nil {
				return err
			}
		}
		for _, p := range d.parents {
			parents[p] = struct{}{}
		}
	}
	var queue []int64
	for i, nid := range nids {
		var has bool
		if err := w.hasChild.QueryRowContext(w.ctx, nid).Scan(&has); err != nil {
			return err
		}
		if has {
			if !evicted {
				if _, err := w.raise(ids[i], nid, 1, 0); err != nil {
					return err
				}
			}
			queue = append(queue, nid)
		}
	}
	for p := range parents {
		if _, err := w.dropMissing.ExecContext(w.ctx, p); err != nil {
			return err
		}
	}
	return w.propagate(queue)
}
