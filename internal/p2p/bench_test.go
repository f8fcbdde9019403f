package p2p

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// benchNet is a network of nodes on loopback TCP with product limits (not the tests' short timers), on
// the real SQLite store, PoW off (BenchNet), each node dialling 3 random others.
type benchNet struct {
	nodes  []*Node
	stores []*dag.Store

	mu       sync.Mutex
	received map[tangle.ID]map[int]time.Time // receipt time per block and node
	done     map[tangle.ID]chan struct{}
}

func newBenchNet(b *testing.B, size int, opts ...Option) *benchNet {
	b.Helper()
	params := tangle.BenchNet
	bn := &benchNet{received: map[tangle.ID]map[int]time.Time{}, done: map[tangle.ID]chan struct{}{}}
	all := append([]Option{tcpOnly, WithLogger(testLogger())}, opts...)
	if v := os.Getenv("P2P_BENCH_TUNING"); v != "" { // D,Dlo,Dhi,Dlazy,HistoryGossip,PruneBackoff: for comparing mesh parameters
		tu := defaultGossipTuning()
		if _, err := fmt.Sscanf(v, "%d,%d,%d,%d,%d,%v", &tu.D, &tu.Dlo, &tu.Dhi, &tu.Dlazy, &tu.HistoryGossip, &tu.PruneBackoff); err != nil {
			b.Fatalf("P2P_BENCH_TUNING: %v", err)
		}
		tu.Dout = max(0, min(tu.Dlo-1, tu.D/2-1))
		tu.Dscore = min(tu.Dscore, tu.Dhi)
		all = append(all, withGossipTuning(tu))
	}
	for range size {
		st, err := dag.Open(filepath.Join(b.TempDir(), "blocks.db"), params)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		bn.stores = append(bn.stores, st)
		n, err := New(context.Background(), Config{}, st, params, all...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		idx := len(bn.nodes)
		n.OnBlock(func(blk *tangle.Block) { bn.onBlock(idx, blk) })
		bn.nodes = append(bn.nodes, n)
	}
	rng := mrand.New(mrand.NewPCG(1, 2)) // a fixed topology: runs are comparable
	c := &cluster{t: b, params: params, nodes: bn.nodes}
	for i := range bn.nodes {
		targets := map[int]bool{}
		if i > 0 {
			targets[rng.IntN(i)] = true
		}
		for len(targets) < 3 {
			if j := rng.IntN(size); j != i {
				targets[j] = true
			}
		}
		for j := range targets {
			connect(b, bn.nodes[i], bn.nodes[j])
		}
	}
	c.waitMesh(30 * time.Second)
	// Measure a settled network, not its first minute: wait until no node has changed its mesh for three
	// heartbeats (the first grafts oversubscribe well-connected nodes, which then prune).
	waitFor(b, 90*time.Second, "settled meshes", func() bool {
		for _, n := range bn.nodes {
			if n.tracer.stableFor() < 3*time.Second {
				return false
			}
		}
		return true
	})
	return bn
}

func (bn *benchNet) onBlock(idx int, blk *tangle.Block) {
	now := time.Now()
	bn.mu.Lock()
	defer bn.mu.Unlock()
	id := blk.ID()
	if bn.received[id] == nil {
		bn.received[id] = map[int]time.Time{}
	}
	bn.received[id][idx] = now
	if len(bn.received[id]) == len(bn.nodes) {
		if ch := bn.done[id]; ch != nil {
			close(ch)
		}
	}
}

// makeBlock builds a block of exactly size bytes as node src's outbox would: parents are tips of its
// store (URTS), so a block that gossip failed to deliver somewhere is fetched as a missing parent when
// the next block arrives.
func (bn *benchNet) makeBlock(b *testing.B, src, size int) *tangle.Block {
	parents := bn.stores[src].SelectParents(0, 4)
	return makeBlock(b, tangle.BenchNet, parents, size, time.Now())
}

func (bn *benchNet) expect(id tangle.ID) chan struct{} {
	bn.mu.Lock()
	defer bn.mu.Unlock()
	ch := make(chan struct{})
	bn.done[id] = ch
	return ch
}

type traffic struct{ total, gossip, ctrl, dups int64 }

func (bn *benchNet) traffic() (t traffic) {
	for _, n := range bn.nodes {
		s := n.Status()
		t.total += s.BytesIn
		t.gossip += s.GossipBytesIn
		t.ctrl += int64(s.GossipControlBytesIn)
		t.dups += int64(s.GossipDuplicateCopies)
	}
	return t
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// BenchmarkGossipLatency50: 50 nodes, 1 KiB blocks published one after another from random nodes; the
// latency of a block at a node is the time from Publish to the node's OnBlock (validated and stored).
// Reports p50 and p99 over all (block, receiving node) pairs.
func BenchmarkGossipLatency50(b *testing.B) {
	bn := newBenchNet(b, 50)
	rng := mrand.New(mrand.NewPCG(3, 4))
	var lat []float64
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src := rng.IntN(len(bn.nodes))
		blk := bn.makeBlock(b, src, 1024)
		done := bn.expect(blk.ID())
		b.StartTimer()
		start := time.Now()
		if err := bn.nodes[src].Publish(ctx, blk); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("block %d not delivered to all nodes within 30 s", i)
		}
		b.StopTimer()
		bn.mu.Lock()
		for idx, at := range bn.received[blk.ID()] {
			if idx != src {
				lat = append(lat, float64(at.Sub(start).Microseconds())/1000)
			}
		}
		delete(bn.received, blk.ID())
		bn.mu.Unlock()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
	b.ReportMetric(percentile(lat, 1), "max-ms")
}

// BenchmarkGossipAmplification: 50 nodes, 1 KiB blocks published at 20 blocks/s from random nodes.
// Reports the bytes each node received (all libp2p stream payload: gossip, control, requests,
// identify) per unique block, divided by the block size; gossip-ampl counts the GossipSub streams only.
func BenchmarkGossipAmplification(b *testing.B) {
	bn := newBenchNet(b, 50)
	rng := mrand.New(mrand.NewPCG(5, 6))
	ctx := context.Background()
	const size = 1024
	blocks := make([]*tangle.Block, b.N)
	dones := make([]chan struct{}, b.N)
	t0 := bn.traffic()
	b.ResetTimer()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	sent := make([]time.Time, len(blocks))
	for i := range blocks {
		<-tick.C
		src := rng.IntN(len(bn.nodes))
		blk := bn.makeBlock(b, src, size)
		blocks[i], dones[i] = blk, bn.expect(blk.ID())
		sent[i] = time.Now()
		if err := bn.nodes[src].Publish(ctx, blk); err != nil {
			b.Fatal(err)
		}
	}
	for i, d := range dones {
		select {
		case <-d:
		case <-time.After(60 * time.Second):
			b.Fatalf("block %d not delivered to all nodes", i)
		}
	}
	b.StopTimer()
	var worst time.Duration // slowest block to reach every node
	bn.mu.Lock()
	late := 0 // receipts more than a second after publishing (a mesh gap bridged by IHAVE or a fetch)
	for i, blk := range blocks {
		for _, at := range bn.received[blk.ID()] {
			worst = max(worst, at.Sub(sent[i]))
			if at.Sub(sent[i]) > time.Second {
				late++
			}
		}
	}
	bn.mu.Unlock()
	b.ReportMetric(float64(late)/float64(len(bn.nodes)*b.N), "late-frac")
	// Count the trailing control traffic too (IHAVE for the last blocks goes out at the next heartbeat):
	// a measurement window, not a wait for a condition.
	time.Sleep(2 * time.Second)
	t1 := bn.traffic()
	denom := float64(len(bn.nodes)) * float64(b.N) * size
	b.ReportMetric(float64(t1.total-t0.total)/denom, "ampl")
	b.ReportMetric(float64(t1.gossip-t0.gossip)/denom, "gossip-ampl")
	b.ReportMetric(float64(t1.ctrl-t0.ctrl)/denom, "control-ampl")
	b.ReportMetric(float64(t1.dups-t0.dups)/float64(len(bn.nodes)*b.N), "dup-copies")
	mesh := 0
	for _, n := range bn.nodes {
		mesh += n.tracer.meshSize(n.topicName(0))
	}
	b.ReportMetric(float64(mesh)/float64(len(bn.nodes)), "mesh-size")
}

// BenchmarkCatchUp: a node missing 10,000 blocks (1 KiB, a DAG of 2–4 parents issued over the last 50
// minutes) connects to a peer that has them; blocks/s from the connection until it stored them all.
func BenchmarkCatchUp(b *testing.B) {
	params := tangle.BenchNet
	const count = 10_000
	src := openTestStore(b, params)
	now := time.Now()
	var ids []tangle.ID
	batch := make([]*tangle.Block, 0, 500)
	rng := mrand.New(mrand.NewPCG(7, 8))
	for i := range count {
		var parents []tangle.ID
		if len(ids) > 0 {
			for range 2 + rng.IntN(3) {
				parents = append(parents, ids[max(0, len(ids)-1-rng.IntN(20))])
			}
		}
		issued := now.Add(-50 * time.Minute).Add(time.Duration(i) * 300 * time.Millisecond)
		blk := makeBlock(b, params, parents, 1024, issued)
		ids = append(ids, blk.ID())
		batch = append(batch, blk)
		if len(batch) == cap(batch) || i == count-1 {
			if _, err := src.Put(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	server := startNode(b, params, src, tcpOnly, WithLimits(DefaultLimits()))

	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openTestStore(b, params)
		n, err := New(context.Background(), Config{}, st, params, tcpOnly, WithLimits(DefaultLimits()))
		if err != nil {
			b.Fatal(err)
		}
		var got sync.WaitGroup
		got.Add(count)
		n.OnBlock(func(*tangle.Block) { got.Done() })
		b.StartTimer()
		start := time.Now()
		connect(b, n, server)
		got.Wait()
		elapsed += time.Since(start)
		b.StopTimer()
		if s, _ := st.Stats(); s.Blocks != count || s.Solid != count {
			b.Fatalf("caught up %d blocks, %d solid, want %d", s.Blocks, s.Solid, count)
		}
		n.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(count*b.N)/elapsed.Seconds(), "blocks/s")
}
