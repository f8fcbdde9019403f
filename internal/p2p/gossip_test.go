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
	c.waitMesh(meshTimeout)

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
	c.waitAll(convergeTimeout, indices(0, len(c.nodes)), ids)
	// Delivered by gossip: at most a few deliveries may come from anti-entropy, when a thin mesh
	// (D=3) momentarily leaves a node outside it and IHAVE gossip missed it too.
	var fetched uint64
	for _, n := range c.nodes {
		fetched += n.Status().Counters.Fetched
	}
	if total := uint64(len(c.nodes) * len(ids)); fetched > total/20 {
		t.Errorf("%d of %d deliveries were fetched by request; gossip should deliver nearly all", fetched, total)
	} else if fetched > 0 {
		t.Logf("%d of %d deliveries repaired by anti-entropy", fetched, total)
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
