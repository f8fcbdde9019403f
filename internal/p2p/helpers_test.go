package p2p

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// testStore is a Store that can also tell solidity (both memStore and dag.Store can).
type testStore interface {
	Store
	IsSolid(id tangle.ID) (bool, error)
}

// testLimits are DefaultLimits with timers short enough for tests.
func testLimits() Limits {
	l := DefaultLimits()
	l.SolidifyInterval = 200 * time.Millisecond
	l.SolidifyRetry = 500 * time.Millisecond
	l.AnnounceCooldown = 200 * time.Millisecond
	l.ReconnectInterval = time.Second
	l.AntiEntropyInterval = time.Second
	l.AntiEntropyDelay = time.Second
	l.RequestTimeout = 10 * time.Second
	return l
}

// testLogger logs to stderr when P2P_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tcpOnly listens on loopback TCP only (the large tests: cheaper than QUIC under -race).
var tcpOnly = WithListenAddrs("/ip4/127.0.0.1/tcp/0")

// startNode starts a node with test limits, mDNS and DHT off, and closes it at the end of the test.
func startNode(t testing.TB, params tangle.Params, store Store, opts ...Option) *Node {
	t.Helper()
	all := append([]Option{WithLimits(testLimits()), WithLogger(testLogger())}, opts...)
	n, err := New(context.Background(), Config{}, store, params, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	n.tracer.setOnChange(events.ring)
	return n
}

// bell wakes every waiter at once: ring closes the channel that wait returned and makes a new one.
type bell struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBell() *bell { return &bell{ch: make(chan struct{})} }

func (b *bell) ring() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func (b *bell) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// events rings on the events tests wait for: a block handed to a recorder, a mesh change at any node,
// a peer table change (see startNode and record).
var events = newBell()

func connect(t testing.TB, a, b *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	if err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// makeBlock builds a valid block of params with the given parents, exact wire size and issuing time.
// size 0 means a small block.
func makeBlock(t testing.TB, params tangle.Params, parents []tangle.ID, size int, issued time.Time) *tangle.Block {
	t.Helper()
	if len(parents) == 0 {
		parents = []tangle.ID{tangle.Genesis}
	}
	parents = tangle.SortParents(parents)
	payloadLen := tangle.MinSealedPayload + 16
	if size > 0 {
		payloadLen = size - tangle.Overhead - tangle.IDSize*len(parents)
	}
	payload := make([]byte, payloadLen)
	rand.Read(payload)
	var tag tangle.Tag
	rand.Read(tag[:])
	h := tangle.Header{
		Network: params.ID, Time: issued.UnixMilli(), TTL: 3600, Parents: parents, Tag: tag,
		PayloadType: tangle.PayloadSealed, Payload: payload,
	}
	b, err := params.Build(context.Background(), h)
	if err != nil {
		t.Fatalf("build block: %v", err)
	}
	return b
}

// recorder collects what a node's OnBlock handler sees.
type recorder struct {
	mu  sync.Mutex
	got map[tangle.ID]int
}

func record(n *Node) *recorder {
	r := &recorder{got: map[tangle.ID]int{}}
	n.OnBlock(func(b *tangle.Block) {
		r.mu.Lock()
		r.got[b.ID()]++
		r.mu.Unlock()
		events.ring()
	})
	return r
}

func (r *recorder) hasAll(ids []tangle.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if r.got[id] == 0 {
			return false
		}
	}
	return true
}

func (r *recorder) snapshot() map[tangle.ID]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[tangle.ID]int, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// Deadlines of the network-convergence waits. An idle machine meets them in a few seconds (the 20-node
// mesh forms in 2–7 s under -race); they are set for a loaded 2-core machine, where GossipSub's 1 s
// heartbeats run late and a GRAFT refused by a full mesh waits out the 15 s prune backoff, once or twice.
const (
	meshTimeout     = 90 * time.Second
	convergeTimeout = 60 * time.Second
)

// waitFor waits until cond holds, and fails the test after timeout. It re-checks cond on every event
// (a block delivered, a mesh change: see events) and at least every 100 ms for conditions that no event
// announces (counters, connections). Deadlines are generous on purpose: they bound a failing test, and
// a loaded 2-core machine running the race detector may be ten times slower than an idle one; every
// wait longer than a second is logged, so slow convergence shows before it fails.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	defer func() {
		if d := time.Since(start); d > time.Second {
			t.Logf("waited %v for %s", d.Round(time.Millisecond), what)
		}
	}()
	for {
		ev := events.wait() // before cond: an event during cond still wakes us
		if cond() {
			return
		}
		select {
		case <-ev:
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// cluster is a set of nodes with their stores and recorders.
type cluster struct {
	t      testing.TB
	params tangle.Params
	nodes  []*Node
	stores []testStore
	recs   []*recorder
}

func newCluster(t testing.TB, size int, params tangle.Params, opts ...Option) *cluster {
	c := &cluster{t: t, params: params}
	for range size {
		st := openTestStore(t, params)
		n := startNode(t, params, st, opts...)
		c.nodes = append(c.nodes, n)
		c.stores = append(c.stores, st)
		c.recs = append(c.recs, record(n))
	}
	return c
}

// sparse connects the nodes at random: node i dials one earlier node (so the graph is connected) and
// one or two more random others: every node dials 2–3 peers.
func (c *cluster) sparse(rng *mrand.Rand) {
	for i := range c.nodes {
		targets := map[int]bool{}
		if i > 0 {
			targets[rng.IntN(i)] = true
		}
		want := 2 + rng.IntN(2)
		for len(targets) < want {
			j := rng.IntN(len(c.nodes))
			if j != i {
				targets[j] = true
			}
		}
		for j := range targets {
			connect(c.t, c.nodes[i], c.nodes[j])
		}
	}
}

// waitMesh waits until every node with peers is in its shard-0 mesh with at least one of them, as in a
// network that has been running for a few heartbeats. (Not Dlo: a peer that pruned us leaves a
// one-minute backoff before we may graft it again.)
func (c *cluster) waitMesh(timeout time.Duration) {
	c.t.Helper()
	defer func() {
		if c.t.Failed() {
			for i, n := range c.nodes {
				c.t.Logf("node %d: %d peers, mesh %d, topic peers %d", i, len(n.host.Network().Peers()),
					n.tracer.meshSize(n.topicName(0)), len(n.topics[0].ListPeers()))
			}
		}
	}()
	waitFor(c.t, timeout, "gossip meshes", func() bool {
		for _, n := range c.nodes {
			want := min(len(n.host.Network().Peers()), 1)
			if n.tracer.meshSize(n.topicName(0)) < want {
				return false
			}
		}
		return true
	})
}

// waitAll waits until every listed node has recorded every id.
func (c *cluster) waitAll(timeout time.Duration, nodes []int, ids []tangle.ID) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("%d blocks at %d nodes", len(ids), len(nodes)), func() bool {
		for _, i := range nodes {
			if !c.recs[i].hasAll(ids) {
				return false
			}
		}
		return true
	})
}

func indices(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// seedRNG returns a logged random seed's generator, so a failing topology can be replayed.
func seedRNG(t testing.TB) *mrand.Rand {
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	seed := uint64(n.Int64())
	if s := os.Getenv("P2P_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("topology seed %d (P2P_TEST_SEED)", seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
