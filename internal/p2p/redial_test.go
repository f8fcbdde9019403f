package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestRedialBackoff: the back-off doubles from 1 s up to the cap; a connect anywhere resets every
// back-off.
func TestRedialBackoff(t *testing.T) {
	r := newRedialer()
	p, q := peer.ID("p"), peer.ID("q")
	now := time.Unix(1000, 0)
	var waits []time.Duration
	for range 6 {
		if !r.start(p, now) {
			t.Fatal("dial not due after the back-off")
		}
		if r.start(p, now) {
			t.Fatal("two dials of one peer at once")
		}
		r.failed(p, now, 5*time.Second)
		next := r.state[p].next
		waits = append(waits, next.Sub(now))
		if r.start(p, next.Add(-time.Millisecond)) {
			t.Fatal("dial before the back-off ended")
		}
		now = next
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("back-offs %v, want %v", waits, want)
		}
	}
	r.connected(q) // a link came back
	if !r.start(p, now.Add(-time.Hour)) {
		t.Fatal("back-off not reset when another peer connected")
	}
	r.failed(p, now, 5*time.Second)
	r.resetAll() // the local network changed
	if !r.start(p, now) {
		t.Fatal("back-off not reset when the network changed")
	}
}

// TestRedialAfterRestart: b dials a; a (no bootstrap peers) restarts on a new port. Nobody can dial a
// at its old address, so the link comes back only if a re-dials b from its peers file, and it must.
// Then a block published at b reaches a.
func TestRedialAfterRestart(t *testing.T) {
	params := tangle.BenchNet
	dir := t.TempDir()
	as := openTestStore(t, params)
	a, err := New(context.Background(), Config{DataDir: dir}, as, params,
		WithLimits(testLimits()), WithLogger(testLogger()), tcpOnly)
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, params, openTestStore(t, params), tcpOnly)
	connect(t, b, a)
	waitFor(t, convergeTimeout, "b's addresses in a's peer table", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.peerAddrs[b.host.ID()]) > 0
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, convergeTimeout, "b sees a gone", func() bool { return b.PeerCount() == 0 })

	a2, err := New(context.Background(), Config{DataDir: dir}, as, params,
		WithLimits(testLimits()), WithLogger(testLogger()), tcpOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	rec := record(a2)
	start := time.Now()
	waitFor(t, convergeTimeout, "a re-dials b after its restart", func() bool { return a2.isConnected(b.host.ID()) })
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("re-dial took %v, want within 10 s", d)
	}
	blk := makeBlock(t, params, nil, 512, time.Now())
	if err := b.Publish(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	waitFor(t, convergeTimeout, "block from b at a", func() bool { return rec.hasAll([]tangle.ID{blk.ID()}) })
	if d := time.Since(sent); d > 10*time.Second {
		t.Errorf("block published after the re-dial took %v to arrive, want within 10 s", d)
	}
}
