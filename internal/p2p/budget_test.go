package p2p

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// TestFloodWithinBudget: a peer floods valid blocks (bench network) at two honest nodes whose block
// stores have a small budget. Mail between the honest nodes still arrives, their own mail stays held
// until its "receipt", and neither store ever holds more than its budget of unheld blocks.
func TestFloodWithinBudget(t *testing.T) {
	params := tangle.BenchNet
	const budget = 256 << 10
	const blockSize = 8 << 10
	open := func() *dag.Store {
		st, err := dag.Open(filepath.Join(t.TempDir(), "blocks.db"), params,
			dag.WithBudget(budget), dag.WithHoldNew(dag.HoldUnopened))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	sa, sb := open(), open()
	a := startNode(t, params, sa, tcpOnly)
	b := startNode(t, params, sb, tcpOnly)
	f := startNode(t, params, openTestStore(t, params), tcpOnly) // the flooder: no budget
	// The honest nodes' "inbox": trial-open (here: record) and release, as the node wires it.
	recs := map[*Node]*recorder{}
	for n, st := range map[*Node]*dag.Store{a: sa, b: sb} {
		recs[n] = record(n)
		n.OnBlock(func(blk *tangle.Block) {
			if err := st.Release(dag.HoldUnopened, blk.ID()); err != nil {
				t.Errorf("release: %v", err)
			}
		})
	}
	connect(t, a, b)
	connect(t, f, a)
	connect(t, f, b)
	c := &cluster{t: t, params: params, nodes: []*Node{a, b, f}}
	c.waitMesh(meshTimeout)

	// Watch the stores while the flood runs.
	var mu sync.Mutex
	worst := map[*dag.Store]int64{}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, st := range []*dag.Store{sa, sb} {
				s, err := st.Stats()
				if err != nil {
					continue
				}
				mu.Lock()
				worst[st] = max(worst[st], s.Bytes-s.HeldBytes)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	ctx := context.Background()
	var mail, flooded []tangle.ID
	var mailBytes int64
	const flood = 240 // 1.9 MiB: 7.5 budgets
	for i := range flood {
		blk := makeBlock(t, params, nil, blockSize, time.Now())
		if err := f.Publish(ctx, blk); err != nil {
			t.Fatalf("flood %d: %v", i, err)
		}
		flooded = append(flooded, blk.ID())
		if i%40 == 20 {
			m := makeBlock(t, params, nil, 2048, time.Now())
			if err := a.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			if err := sa.Hold(dag.HoldOwn, m.ID()); err != nil { // awaiting its receipt
				t.Fatal(err)
			}
			mail = append(mail, m.ID())
			mailBytes += int64(len(m.Raw))
		}
	}
	waitFor(t, convergeTimeout, "honest mail at b", func() bool { return recs[b].hasAll(mail) })
	// Settled: every flood block stored (or stored and evicted) at both, and handed to the "inbox",
	// which released it: only a's own mail is still held.
	waitFor(t, convergeTimeout, "the flood handled", func() bool {
		for _, st := range []*dag.Store{sa, sb} {
			for _, id := range flooded {
				if has, _ := st.Has(id); !has {
					return false
				}
			}
		}
		sta, _ := sa.Stats()
		stb, _ := sb.Stats()
		return sta.HeldBytes == mailBytes && stb.HeldBytes == 0
	})
	close(stop)
	<-watched
	for name, st := range map[string]*dag.Store{"a": sa, "b": sb} {
		s, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d blocks, %d bytes (%d held), %d evicted; worst unheld %d bytes; budget %d",
			name, s.Blocks, s.Bytes, s.HeldBytes, s.Evicted, worst[st], budget)
		if worst[st] > budget {
			t.Errorf("%s: %d bytes of unheld blocks stored, budget %d", name, worst[st], budget)
		}
		if s.Evicted == 0 {
			t.Errorf("%s: nothing evicted", name)
		}
		if s.Bytes > budget {
			t.Errorf("%s: %d bytes stored at the end, budget %d", name, s.Bytes, budget)
		}
	}
	// a's own mail, awaiting receipts, is all still there.
	for _, id := range mail {
		if has, _ := sa.Has(id); !has {
			t.Errorf("a evicted its own mail %s before its receipt", id.Short())
		}
	}
}
