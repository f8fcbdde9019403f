package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestPartitionHeal: two halves are cut apart (connections closed, each side refusing the other), blocks
// are published on both sides, then the cut is healed through two new cross links (and the re-dialler
// restores the two earlier ones): every node ends up with every block, including nodes with no cross link
// (catch-up, announcements, anti-entropy).
func TestPartitionHeal(t *testing.T) {
	params := tangle.BenchNet
	c := newCluster(t, 8, params, tcpOnly)
	A, B := indices(0, 4), indices(4, 8)
	for _, half := range [][]int{A, B} { // a ring in each half
		for k := range half {
			connect(t, c.nodes[half[k]], c.nodes[half[(k+1)%len(half)]])
		}
	}
	connect(t, c.nodes[0], c.nodes[4])
	connect(t, c.nodes[2], c.nodes[6])
	c.waitMesh(meshTimeout)

	ctx := context.Background()
	before := makeBlock(t, params, nil, 512, time.Now())
	if err := c.nodes[1].Publish(ctx, before); err != nil {
		t.Fatal(err)
	}
	c.waitAll(convergeTimeout, indices(0, 8), []tangle.ID{before.ID()})

	// Cut.
	for _, a := range A {
		for _, b := range B {
			if err := c.nodes[a].BlockPeer(c.nodes[b].ID(), time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := c.nodes[b].BlockPeer(c.nodes[a].ID(), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, convergeTimeout, "partition", func() bool {
		for _, a := range A {
			for _, b := range B {
				if c.nodes[a].isConnected(c.nodes[b].host.ID()) {
					return false
				}
			}
		}
		return true
	})

	var idsA, idsB []tangle.ID
	for k := range 4 {
		ba := makeBlock(t, params, nil, 512, time.Now())
		bb := makeBlock(t, params, nil, 512, time.Now())
		if err := c.nodes[A[k]].Publish(ctx, ba); err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[B[k]].Publish(ctx, bb); err != nil {
			t.Fatal(err)
		}
		idsA, idsB = append(idsA, ba.ID()), append(idsB, bb.ID())
	}
	c.waitAll(convergeTimeout, A, idsA)
	c.waitAll(convergeTimeout, B, idsB)
	for _, a := range A {
		for _, id := range idsB {
			if has, _ := c.stores[a].Has(id); has {
				t.Fatalf("node %d has a block from across the partition", a)
			}
		}
	}

	// Heal through two cross links only.
	for _, a := range A {
		for _, b := range B {
			c.nodes[a].UnblockPeer(c.nodes[b].ID())
			c.nodes[b].UnblockPeer(c.nodes[a].ID())
		}
	}
	connect(t, c.nodes[1], c.nodes[5])
	connect(t, c.nodes[3], c.nodes[7])
	all := append(append([]tangle.ID{}, idsA...), idsB...)
	c.waitAll(convergeTimeout, indices(0, 8), all)
	for i, r := range c.recs {
		for _, id := range all {
			if got := r.snapshot()[id]; got != 1 {
				t.Errorf("node %d: OnBlock called %d times for %s", i, got, id.Short())
			}
		}
	}
}

// TestOfflineCatchUp: a node is stopped (its store and data directory kept), the others publish, and on
// restart it catches up with exactly the blocks it missed.
func TestOfflineCatchUp(t *testing.T) {
	params := tangle.BenchNet
	c := newCluster(t, 4, params, tcpOnly)
	for k := range 4 {
		connect(t, c.nodes[k], c.nodes[(k+1)%4])
	}
	dir := t.TempDir()
	xs := openTestStore(t, params)
	x, err := New(context.Background(), Config{DataDir: dir}, xs, params,
		WithLimits(testLimits()), WithLogger(testLogger()), tcpOnly)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, x, c.nodes[0])
	connect(t, x, c.nodes[2])
	xrec := record(x)
	c.waitMesh(meshTimeout)

	ctx := context.Background()
	var early []tangle.ID
	for k := range 3 {
		b := makeBlock(t, params, nil, 512, time.Now())
		if err := c.nodes[k].Publish(ctx, b); err != nil {
			t.Fatal(err)
		}
		early = append(early, b.ID())
	}
	waitFor(t, convergeTimeout, "early blocks at x", func() bool { return xrec.hasAll(early) })
	xid := x.ID()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, convergeTimeout, "x gone", func() bool {
		for _, n := range c.nodes {
			if len(n.host.Network().ConnsToPeer(x.host.ID())) > 0 {
				return false
			}
		}
		return true
	})

	var missed []tangle.ID
	for k := range 10 {
		b := makeBlock(t, params, nil, 512, time.Now())
		if err := c.nodes[k%4].Publish(ctx, b); err != nil {
			t.Fatal(err)
		}
		missed = append(missed, b.ID())
	}
	c.waitAll(convergeTimeout, indices(0, 4), missed)

	// Restart on the same store and data directory, with one bootstrap peer.
	x2, err := New(context.Background(), Config{DataDir: dir, Bootstrap: []string{c.nodes[1].Addrs()[0]}}, xs, params,
		WithLimits(testLimits()), WithLogger(testLogger()), tcpOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	if x2.ID() != xid {
		t.Fatalf("peer id changed: %s → %s", xid, x2.ID())
	}
	x2rec := record(x2)
	waitFor(t, convergeTimeout, "missed blocks after restart", func() bool { return x2rec.hasAll(missed) })
	waitFor(t, convergeTimeout, "catch-up and anti-entropy done", func() bool {
		s := x2.Status()
		return s.Synced && s.Counters.CatchUps > 0 && s.Counters.AntiEntropy > 0
	})
	got := x2rec.snapshot()
	if len(got) != len(missed) {
		t.Errorf("restarted node was handed %d blocks, want exactly the %d it missed", len(got), len(missed))
	}
	for _, id := range missed {
		if got[id] != 1 {
			t.Errorf("missed block %s delivered %d times", id.Short(), got[id])
		}
	}
	for _, id := range early {
		if has, _ := xs.Has(id); !has {
			t.Errorf("early block %s lost from the store", id.Short())
		}
	}
}

// TestChildBeforeParent: a child is gossiped while its parent exists only in the publisher's store. Every
// node requests the parent (solidification) and the child becomes solid everywhere. With a fresh parent
// the first node to fetch it relays it on gossip; an older parent (outside the gossip window) travels
// hop by hop through requests.
func TestChildBeforeParent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		parentAge time.Duration
	}{
		{"fresh parent", 0},
		{"old parent", 8 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := tangle.BenchNet
			c := newCluster(t, 6, params, tcpOnly)
			for k := 0; k+1 < len(c.nodes); k++ { // a line: the parent is up to five hops away
				connect(t, c.nodes[k], c.nodes[k+1])
			}
			c.waitMesh(meshTimeout)
			now := time.Now()
			parent := makeBlock(t, params, nil, 512, now.Add(-tc.parentAge))
			child := makeBlock(t, params, []tangle.ID{parent.ID()}, 512, now)
			if _, err := c.stores[0].Put(context.Background(), parent); err != nil {
				t.Fatal(err)
			}
			if err := c.nodes[0].Publish(context.Background(), child); err != nil {
				t.Fatal(err)
			}
			c.waitAll(convergeTimeout, indices(1, 6), []tangle.ID{child.ID(), parent.ID()})
			waitFor(t, convergeTimeout, "child solid everywhere", func() bool {
				for _, st := range c.stores {
					if ok, _ := st.IsSolid(child.ID()); !ok {
						return false
					}
				}
				return true
			})
			var fetched, givenUp uint64
			for _, n := range c.nodes {
				s := n.Status().Counters
				fetched += s.Fetched
				givenUp += s.SolidifyGivenUp
			}
			if fetched == 0 {
				t.Error("no block was fetched by request")
			}
			if givenUp != 0 {
				t.Errorf("%d missing blocks given up", givenUp)
			}
		})
	}
}
