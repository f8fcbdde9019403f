package dag

import (
	"context"
	"fmt"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Hold is a set of reasons a stored block may not be evicted to keep the store within its budget
// (WithBudget). Holds never keep a block past its expiry: Prune deletes held blocks like any other.
type Hold uint8

// Holds. Each user of the store that must keep blocks has its own bit; the budget applies to the
// relay's share, the blocks nobody holds. Storage subscriptions and attachments, when they come, keep
// their blocks under their own bits and their own budgets, counted apart (Stats.HeldBytes today; one
// figure per bit then), so a flood of relayed blocks can never push them out, nor they the relay.
const (
	// HoldUnopened: stored, not yet trial-opened by this node's inbox. Set on every new block by
	// WithHoldNew; the node releases it once the inbox has handled the block.
	HoldUnopened Hold = 1 << iota
	// HoldOwn: published by this node and awaiting its receipt (the node keeps the set current with
	// SetHeld from its outbox).
	HoldOwn
)

// DefaultBudget is the budget the node uses when none is configured: 4 GiB of block encodings.
const DefaultBudget int64 = 4 << 30

// WithBudget bounds the bytes of stored block encodings (Stats.Bytes) to budget: after every write
// transaction that leaves more, the writer evicts unheld blocks in the same transaction, oldest issuing
// time first (ties: the block stored first), until the total is within budget again or only held blocks
// are left. 0 or less: no budget (blocks leave only by Prune). See the package doc, "Budget".
func WithBudget(budget int64) Option { return func(o *options) { o.budget = max(0, budget) } }

// WithHoldNew sets the holds every newly stored block starts with (the node: HoldUnopened).
func WithHoldNew(h Hold) Option { return func(o *options) { o.holdNew = h } }

// Release clears the hold bits h of the stored blocks ids (ids not stored are ignored). A block whose
// holds are all clear may be evicted when the store is over budget.
func (s *Store) Release(h Hold, ids ...tangle.ID) error {
	if len(ids) == 0 || h == 0 {
		return nil
	}
	return s.do(context.Background(), &request{op: opHold, hold: h, ids: ids})
}

// Hold sets the hold bits h on the stored blocks ids (ids not stored are ignored).
func (s *Store) Hold(h Hold, ids ...tangle.ID) error {
	if len(ids) == 0 || h == 0 {
		return nil
	}
	return s.do(context.Background(), &request{op: opHold, hold: h, set: true, ids: ids})
}

// SetHeld makes ids exactly the stored blocks with hold bit h: it clears h everywhere else. The node
// uses it to keep HoldOwn equal to its outbox's published, unreceipted blocks.
func (s *Store) SetHeld(h Hold, ids ...tangle.ID) error {
	if h == 0 {
		return nil
	}
	return s.do(context.Background(), &request{op: opHold, hold: h, set: true, replace: true, ids: ids})
}

// Budget is the store's budget in bytes (0: none).
func (s *Store) Budget() int64 { return s.opts.budget }

// hold applies one hold request inside the batch's transaction.
func (w *writer) hold(r *request) error {
	if r.replace {
		if _, err := w.conn.ExecContext(w.ctx, `UPDATE blocks SET hold = hold & ~?1 WHERE hold != 0 AND hold & ?1 != 0`,
			int64(r.hold)); err != nil {
			return err
		}
	}
	q := `UPDATE blocks SET hold = hold & ~?1 WHERE id = ?2`
	if r.set {
		q = `UPDATE blocks SET hold = hold | ?1 WHERE id = ?2`
	}
	for _, id := range r.ids {
		if _, err := w.conn.ExecContext(w.ctx, q, int64(r.hold), id[:]); err != nil {
			return err
		}
	}
	return nil
}

// evictChunk is how many eviction candidates one query lists.
const evictChunk = 256

// enforceBudget evicts unheld blocks, oldest first, while the store holds more than its budget (see
// WithBudget). It runs at the end of a write transaction, inside it.
func (w *writer) enforceBudget() error {
	budget := w.s.opts.budget
	if budget <= 0 {
		return nil
	}
	for w.bytes+w.eff.dBytes > budget {
		need := w.bytes + w.eff.dBytes - budget
		rows, err := w.conn.QueryContext(w.ctx, `SELECT nid, length(raw) FROM blocks WHERE hold = 0
			ORDER BY time, nid LIMIT ?`, evictChunk)
		if err != nil {
			return err
		}
		var nids []int64
		for rows.Next() && need > 0 {
			var nid, size int64
			if err := rows.Scan(&nid, &size); err != nil {
				rows.Close()
				return err
			}
			nids = append(nids, nid)
			need -= size
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(nids) == 0 {
			return nil // only held blocks left: they stay (Stats.HeldBytes says how much)
		}
		if err := w.deleteNids(nids, true); err != nil {
			return fmt.Errorf("evict: %w", err)
		}
		w.eff.evicted += int64(len(nids))
	}
	return nil
}
