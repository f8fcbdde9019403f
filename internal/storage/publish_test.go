package storage

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// startP2P starts a full node on a fresh block store, loopback TCP only.
func startP2P(t testing.TB, params tangle.Params) (*p2p.Node, *dag.Store) {
	t.Helper()
	st, err := dag.Open(filepath.Join(t.TempDir(), "blocks.db"), params)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p2p.New(context.Background(), p2p.Config{}, st, params, p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); st.Close() })
	return n, st
}

// TestPublish: a public node validates a light client's block, PoW first: a block with bad PoW is
// refused with a clear error and never reaches the store or another node; a good one is gossiped.
func TestPublish(t *testing.T) {
	params := testParams()
	a, aStore := startP2P(t, params)
	b, bStore := startP2P(t, params)
	ctx := tctx(t)
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[tangle.ID]bool{}
	got := make(chan tangle.ID, 16)
	b.OnBlock(func(blk *tangle.Block) {
		mu.Lock()
		seen[blk.ID()] = true
		mu.Unlock()
		got <- blk.ID()
	})
	p, err := Open(Config{Dir: t.TempDir(), Params: params, Public: true, Publisher: a, Tips: aStore, PublishBurst: 3, PublishRate: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	a.HandleStream(p.Protocol(), p.Serve)

	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	apid, err := h.ConnectAddr(ctx, a.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	sess, err := wire.Dial(ctx, h, apid, params.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	// Bad PoW: refused, not stored, not forwarded.
	bad := mkBlock(t, params, tangle.Tag{1}, 600, time.Now())
	raw := append([]byte(nil), bad.Raw...)
	for n := uint64(1); ; n++ {
		tangle.SetNonce(raw, n)
		if params.CheckPoW(raw) != nil {
			break
		}
	}
	badID := tangle.ID(blake2b.Sum256(raw))
	wantCode(t, sess.Publish(ctx, raw), wire.CodeBadPoW)
	// Good PoW, but issued an hour in the future: a bad block.
	future := mkBlock(t, params, tangle.Tag{2}, 600, time.Now().Add(time.Hour))
	wantCode(t, sess.Publish(ctx, future.Raw), wire.CodeBadBlock)

	// A good block: stored by the public node and gossiped to b.
	good := mkBlock(t, params, tangle.Tag{3}, 600, time.Now())
	if err := sess.Publish(ctx, good.Raw); err != nil {
		t.Fatal(err)
	}
	if has, _ := aStore.Has(good.ID()); !has {
		t.Fatal("published block not stored by the public node")
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("published block not gossiped")
	}
	mu.Lock()
	if seen[badID] {
		t.Fatal("the block with bad PoW was forwarded")
	}
	mu.Unlock()
	for _, s := range []*dag.Store{aStore, bStore} {
		if has, _ := s.Has(badID); has {
			t.Fatal("the block with bad PoW was stored")
		}
	}
	// The per-client rate limit (burst 3: bad PoW is checked before the limit and does not count).
	if err := sess.Publish(ctx, mkBlock(t, params, tangle.Tag{5}, 600, time.Now()).Raw); err != nil {
		t.Fatal(err)
	}
	wantCode(t, sess.Publish(ctx, mkBlock(t, params, tangle.Tag{4}, 600, time.Now()).Raw), wire.CodeRateLimited)
	// Tips for the client's next block.
	tips, err := sess.Tips(ctx, 0, 2)
	if err != nil || len(tips) == 0 {
		t.Fatalf("tips %v %v", tips, err)
	}
	// The light client is not a gossip peer.
	for a.PeerCount() != 1 {
		if ctx.Err() != nil {
			t.Fatalf("public node counts %d peers, want 1 (the light client is not one)", a.PeerCount())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A provider that is not public refuses to publish.
	srv := startServer(t, Config{Params: params})
	c := dial(t, srv)
	wantCode(t, c.s.Publish(ctx, good.Raw), wire.CodeRefused)
}
