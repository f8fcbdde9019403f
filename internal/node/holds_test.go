package node

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// TestBlockHolds: the node keeps its block store's holds in step with the engines. Bob's inbox handles
// every block, so nothing stays held at bob; alice's mail, published and awaiting a receipt (bob's
// receipt clock stands still until the test lets it run), stays held at alice, and only it; once the
// receipt comes, nothing is held.
func TestBlockHolds(t *testing.T) {
	ctx := context.Background()
	alice := startNode(t, testConfig(t, t.TempDir()))
	bobDir := t.TempDir()
	cfg := testConfig(t, bobDir)
	cfg.Bootstrap = alice.Network().Addrs()
	clock := &stoppedReceiptClock{}
	clock.stopped.Store(true)
	cfg.receiptClock = clock
	bob := startNode(t, cfg)
	waitFor(t, "peering", 30*time.Second, func() bool { return alice.Network().PeerCount() == 1 })
	bobAddr := bob.Identity().Address().Mail()
	submit(t, alice, []string{bobAddr}, "From: <"+alice.Identity().Address().Mail()+">\r\nTo: <"+bobAddr+
		">\r\nSubject: held\r\n\r\nkept until the receipt\r\n")
	waitFor(t, "the mail at bob", 60*time.Second, func() bool { return len(inboxMessages(t, bob, store.RoleInbox)) == 1 })

	var own int64
	waitFor(t, "alice's recipient published", 60*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(ctx)
		if err != nil || len(items) != 1 || items[0].Rcpts[0].State != store.RcptPublished {
			return false
		}
		own = 0
		for _, id := range items[0].Rcpts[0].BlockIDs {
			b, err := alice.Blocks().Get(tangle.ID(id))
			if err != nil {
				return false
			}
			own += int64(len(b.Raw))
		}
		return own > 0
	})
	waitFor(t, "only alice's own mail held at alice, nothing at bob", 60*time.Second, func() bool {
		as, err1 := alice.Blocks().Stats()
		bs, err2 := bob.Blocks().Stats()
		return err1 == nil && err2 == nil && as.HeldBytes == own && bs.HeldBytes == 0 && bs.Bytes > 0
	})

	// Bob's receipt clock runs: the receipt comes, and alice releases her mail.
	clock.stopped.Store(false)
	waitFor(t, "the receipt at alice", 60*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(ctx)
		return err == nil && len(items) == 1 && items[0].Rcpts[0].State == store.RcptDelivered
	})
	waitFor(t, "nothing held at alice", 60*time.Second, func() bool {
		as, err := alice.Blocks().Stats()
		return err == nil && as.HeldBytes == 0
	})
}

// stoppedReceiptClock is an outbox.ReceiptClock that stands still while stopped: no receipt falls due
// (its waits pass in real time, but Now does not move), however long the test or the machine takes.
type stoppedReceiptClock struct {
	stopped atomic.Bool
	at      atomic.Int64 // UnixNano of Now while stopped, set at the first call
}

func (c *stoppedReceiptClock) Now() time.Time {
	if !c.stopped.Load() {
		return time.Now()
	}
	c.at.CompareAndSwap(0, time.Now().UnixNano())
	return time.Unix(0, c.at.Load())
}

func (c *stoppedReceiptClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TestOwnHoldBeforeRecorded: a block the node publishes is held as its own from the moment it is
// stored, before the outbox records it, whichever comes first of the publication's return and the
// inbox's release of HoldUnopened; an outbox listing taken before the record does not clear the hold;
// a hold never recorded ends after ownHoldCap.
func TestOwnHoldBeforeRecorded(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, testConfig(t, t.TempDir()))
	build := func() *tangle.Block {
		var tag tangle.Tag
		rand.Read(tag[:])
		payload := make([]byte, 200)
		rand.Read(payload)
		b, err := n.cfg.Network.Build(ctx, tangle.Header{
			Network: n.cfg.Network.ID, Time: time.Now().UnixMilli(), TTL: 3600,
			Parents: n.Blocks().SelectParents(0, 2), Tag: tag,
			PayloadType: tangle.PayloadSealed, Payload: payload,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	held := func(want int64) {
		t.Helper()
		st, err := n.Blocks().Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.HeldBytes != want {
			t.Fatalf("%d bytes held, want %d", st.HeldBytes, want)
		}
	}
	h := n.holds

	// Published through the outbox's publisher; the inbox's release comes before any outbox listing.
	a := build()
	if err := (fullNetwork{n.net, n.store, h}).Publish(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := n.Blocks().Release(dag.HoldUnopened, a.ID()); err != nil { // as the inbox's flush would
		t.Fatal(err)
	}
	held(int64(len(a.Raw)))
	h.own(ctx) // a listing without a
	held(int64(len(a.Raw)))

	// The inbox handles the block before the publication returns: flush holds it before releasing it.
	b := build()
	h.publishing(b.ID())
	if _, err := n.Blocks().Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	h.handled(b, inbox.NotForUs)
	h.flush()
	held(int64(len(a.Raw) + len(b.Raw)))
	h.own(ctx)
	held(int64(len(a.Raw) + len(b.Raw)))
	h.published(b.ID(), nil)

	// Never recorded by the outbox: the hold ends after ownHoldCap.
	h.ownMu.Lock()
	for id := range h.pending {
		h.pending[id] = time.Now().Add(-ownHoldCap)
	}
	h.ownMu.Unlock()
	h.own(ctx)
	held(0)
}
