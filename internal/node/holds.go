package node

import (
	"context"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// holds keeps the block store's holds (dag.Hold) in step with the engines, so that the budget never
// evicts a block the node still needs.
//
// HoldUnopened is released once the inbox has handled a block (batched: one write per holdsFlush),
// except after a store failure, when the block stays held for the rescan at the next start.
//
// HoldOwn is set, every holdsOwnInterval, to exactly the blocks of the outbox's recipients that are
// published and await their receipt, plus the blocks this node published that the outbox has not yet
// recorded (pending). The outbox records a block only after Publish returns, and the own inbox may
// handle (and release) the block before that, so without pending a listing taken in between would
// leave the node's own mail unheld until the next pass. A block enters pending before it is published;
// it is held as soon as it is stored (published, or flush when the inbox was quicker: the hold is set
// before HoldUnopened is released), and leaves pending once a listing shows it recorded, or after
// ownHoldCap for blocks the outbox never records (receipts) or whose publication failed. ownMu orders
// these writes: a listing taken before a publication cannot clear its hold.
type holds struct {
	n    *Node
	mu   sync.Mutex
	ids  []tangle.ID
	wake chan struct{}

	ownMu   sync.Mutex
	pending map[tangle.ID]time.Time // published by this node, not yet seen in an outbox listing
}

const (
	holdsFlush       = 200 * time.Millisecond
	holdsBatch       = 1024
	holdsOwnInterval = 10 * time.Second
	// ownHoldCap is how long a block this node published stays held when the outbox never records it.
	ownHoldCap = 10 * time.Minute
)

func newHolds(n *Node) *holds {
	return &holds{n: n, wake: make(chan struct{}, 1), pending: map[tangle.ID]time.Time{}}
}

// publishing is called before this node publishes block id: from now on, once stored, it is held as own.
func (h *holds) publishing(id tangle.ID) {
	h.ownMu.Lock()
	h.pending[id] = time.Now()
	h.ownMu.Unlock()
}

// published is called after the publication of block id returned; err: it was not published.
func (h *holds) published(id tangle.ID, err error) {
	h.ownMu.Lock()
	defer h.ownMu.Unlock()
	if err != nil {
		delete(h.pending, id)
		return
	}
	if err := h.n.store.Hold(dag.HoldOwn, id); err != nil {
		h.n.log.Warn("holding a published block failed; will retry", "err", err)
	}
}

// handled is the inbox's Handled hook.
func (h *holds) handled(b *tangle.Block, out inbox.Outcome) {
	if out == inbox.Failed {
		return
	}
	h.mu.Lock()
	h.ids = append(h.ids, b.ID())
	full := len(h.ids) >= holdsBatch
	h.mu.Unlock()
	if full {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

func (h *holds) flush() {
	h.mu.Lock()
	ids := h.ids
	h.ids = nil
	h.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	// The node's own blocks take HoldOwn before they lose HoldUnopened (see published).
	h.ownMu.Lock()
	var own []tangle.ID
	for _, id := range ids {
		if _, ok := h.pending[id]; ok {
			own = append(own, id)
		}
	}
	err := h.n.store.Hold(dag.HoldOwn, own...)
	h.ownMu.Unlock()
	if err != nil {
		h.n.log.Warn("holding own blocks failed; they stay held unopened", "err", err)
		return
	}
	if err := h.n.store.Release(dag.HoldUnopened, ids...); err != nil {
		h.n.log.Warn("releasing handled blocks failed; they stay held until they expire", "err", err)
	}
}

// own sets HoldOwn on the published, unreceipted blocks of the outbox and on the pending ones.
func (h *holds) own(ctx context.Context) {
	items, err := h.n.mail.OutboxItems(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.n.log.Warn("listing the outbox for block holds failed; will retry", "err", err)
		}
		return
	}
	var ids []tangle.ID
	recorded := map[tangle.ID]bool{}
	for _, it := range items {
		for _, r := range it.Rcpts {
			for _, b := range r.BlockIDs {
				recorded[tangle.ID(b)] = true
				if r.State == store.RcptPublished {
					ids = append(ids, tangle.ID(b))
				}
			}
		}
	}
	h.ownMu.Lock()
	defer h.ownMu.Unlock()
	now := time.Now()
	for id, at := range h.pending {
		if recorded[id] || now.Sub(at) >= ownHoldCap {
			delete(h.pending, id)
			continue
		}
		ids = append(ids, id)
	}
	if err := h.n.store.SetHeld(dag.HoldOwn, ids...); err != nil {
		h.n.log.Warn("holding own blocks failed; will retry", "err", err)
	}
}

func (h *holds) run(ctx context.Context) {
	flush := time.NewTicker(holdsFlush)
	defer flush.Stop()
	own := time.NewTicker(holdsOwnInterval)
	defer own.Stop()
	h.own(ctx)
	for {
		select {
		case <-ctx.Done():
			h.flush()
			return
		case <-flush.C:
			h.flush()
		case <-h.wake:
			h.flush()
		case <-own.C:
			h.own(ctx)
		}
	}
}
