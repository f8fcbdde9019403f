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
// evicts a block the node still needs: HoldUnopened is released once the inbox has handled a block
// (batched: one write per holdsFlush), except after a store failure, when the block stays held for the
// rescan at the next start; HoldOwn is set, every holdsOwnInterval, to exactly the blocks of the
// outbox's recipients that are published and await their receipt. A block the node just published is
// held unopened until its own inbox has handled it, and is the newest in the store anyway, last in the
// eviction order.
type holds struct {
	n    *Node
	mu   sync.Mutex
	ids  []tangle.ID
	wake chan struct{}
}

const (
	holdsFlush       = 200 * time.Millisecond
	holdsBatch       = 1024
	holdsOwnInterval = 10 * time.Second
)

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
	if err := h.n.store.Release(dag.HoldUnopened, ids...); err != nil {
		h.n.log.Warn("releasing handled blocks failed; they stay held until they expire", "err", err)
	}
}

// own sets HoldOwn on the published, unreceipted blocks of the outbox.
func (h *holds) own(ctx context.Context) {
	items, err := h.n.mail.OutboxItems(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.n.log.Warn("listing the outbox for block holds failed; will retry", "err", err)
		}
		return
	}
	var ids []tangle.ID
	for _, it := range items {
		for _, r := range it.Rcpts {
			if r.State != store.RcptPublished {
				continue
			}
			for _, b := range r.BlockIDs {
				ids = append(ids, tangle.ID(b))
			}
		}
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
