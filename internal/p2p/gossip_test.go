package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestGossip20Nodes: 20 nodes in a random sparse topology (each dials 2–3 others) all receive every
// block, whichever node publishes it, exactly once each.
func TestGossip20Nodes(t *testing.T) {
	params := tangle.BenchNet
	c := newCluster(t, 20, params, tcpOnly)
	rng := seedRNG(t)
	c.sparse(rng)
	c.waitMesh(20 * time.Second)

	var ids []tangle.ID
	ctx := context.Background()
	for k := range 10 {
		src := rng.IntN(len(c.nodes))
		b := makeBlock(t, params, nil, 1024, time.Now())
		if err := c.nodes[src].Publish(ctx, b); err != nil {
			t.Fatalf("publish %d at node %d: %v", k, src, err)
		}
		ids = append(ids, b.ID())
	}
	defer func() {
		if t.Failed() {
			for i, n := range c.nodes {
				st := n.Status()
				t.Logf("node %d: peers %d blocks %d counters %+v", i, len(st.Peers), st.Blocks, st.Counters)
			}
		}
	}()
	c.waitAll(30*time.Second, indices(0, len(c.nodes)), ids)
	for i, n := range c.nodes {
		// Delivered by gossip alone: nothing had to be repaired by catch-up or anti-entropy.
		if got := n.Status().Counters.Fetched; got != 0 {
			t.Errorf("node %d fetched %d blocks by request; gossip should have delivered them", i, got)
		}
	}
	for i, r := range c.recs {
		for _, id := range ids {
			if got := r.snapshot()[id]; got != 1 {
				t.Errorf("node %d: OnBlock called %d times for %s", i, got, id.Short())
			}
		}
		if has, _ := c.stores[i].Has(ids[0]); !has {
			t.Errorf("node %d: block not in store", i)
		}
	}
	st := c.nodes[0].Status()
	if len(st.Peers) == 0 || st.Blocks < len(ids) {
		t.Errorf("status: %d peers, %d blocks", len(st.Peers), st.Blocks)
	}
}
