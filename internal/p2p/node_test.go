package p2p

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", KeyFile)
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) {
		t.Fatal("reloaded key differs")
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("garbage key file accepted")
	}
}

// TestStablePeerID: a node started twice on one data directory keeps its peer id.
func TestStablePeerID(t *testing.T) {
	dir := t.TempDir()
	params := tangle.BenchNet
	st := newMemStore(params)
	n1, err := New(context.Background(), Config{DataDir: dir}, st, params, WithLimits(testLimits()), tcpOnly)
	if err != nil {
		t.Fatal(err)
	}
	id := n1.ID()
	n1.Close()
	n2 := startNode(t, params, st, WithKeyFile(filepath.Join(dir, KeyFile)), tcpOnly)
	if n2.ID() != id {
		t.Fatalf("peer id changed across restarts: %s → %s", id, n2.ID())
	}
}

func TestConfigValidation(t *testing.T) {
	params := tangle.BenchNet
	st := newMemStore(params)
	ctx := context.Background()
	if _, err := New(ctx, Config{Bootstrap: []string{"/ip4/127.0.0.1/tcp/1"}}, st, params); err == nil {
		t.Error("bootstrap address without /p2p accepted")
	}
	if _, err := New(ctx, Config{Shards: []uint32{1}}, st, params); err == nil {
		t.Error("shard 1 accepted with 0 shard bits")
	}
	if _, err := New(ctx, Config{}, nil, params); err == nil {
		t.Error("nil store accepted")
	}
}

// TestValidatorRejects drives the gossip validator directly with each kind of bad block: every one is
// rejected (so GossipSub penalises the sender), counted by reason, and charged to the sender.
func TestValidatorRejects(t *testing.T) {
	params := tangle.DevNet
	st := newMemStore(params)
	n := startNode(t, params, st, tcpOnly)
	now := time.Now()
	good := makeBlock(t, params, nil, 0, now)

	badPoW := bytes.Clone(good.Raw)
	tangle.SetNonce(badPoW, good.Nonce+1) // almost surely below the target now
	if params.CheckPoW(badPoW) == nil {
		t.Skip("nonce+1 happens to be valid")
	}
	otherNet := makeBlock(t, tangle.BenchNet, nil, 0, now)
	expired := makeBlock(t, params, nil, 0, now.Add(-2*time.Hour)) // TTL 1 h
	stale := makeBlock(t, params, nil, 0, now.Add(-10*time.Minute))
	future := makeBlock(t, params, nil, 0, now.Add(10*time.Minute))
	// Malformed with valid PoW: parents out of order, nonce ground over the broken bytes.
	twoParents := makeBlock(t, params, []tangle.ID{{1}, {2}}, 0, now)
	malformed := bytes.Clone(twoParents.Raw)
	copy(malformed[22:54], twoParents.Raw[54:86])
	copy(malformed[54:86], twoParents.Raw[22:54])
	if _, err := params.Grind(context.Background(), malformed); err != nil {
		t.Fatal(err)
	}
	oversized := make([]byte, tangle.MaxBlockSize+1)

	cases := []struct {
		name, reason string
		raw          []byte
	}{
		{"pow", "pow", badPoW},
		{"network", "network", otherNet.Raw},
		{"expired", "expired", expired.Raw},
		{"stale replay", "time", stale.Raw},
		{"future", "time", future.Raw},
		{"malformed", "malformed", malformed},
		{"oversized", "size", oversized},
		{"truncated", "size", good.Raw[:20]},
	}
	validate := n.validator(0)
	for i, c := range cases {
		from := peer.ID(rune('a' + i))
		res := validate(context.Background(), from, &pubsub.Message{Message: &pb.Message{Data: c.raw}})
		if res != pubsub.ValidationReject {
			t.Errorf("%s: result %v, want reject", c.name, res)
		}
		if got := n.ctr.snapshot().RejectedByReason[c.reason]; got == 0 {
			t.Errorf("%s: no %q rejection counted", c.name, c.reason)
		}
		if n.misbehave.score(from, time.Now()) <= 0 {
			t.Errorf("%s: sender not charged", c.name)
		}
	}
	// The good block is accepted and stored once; its replay is ignored, not rejected.
	from := peer.ID("honest")
	if res := validate(context.Background(), from, &pubsub.Message{Message: &pb.Message{Data: good.Raw}}); res != pubsub.ValidationAccept {
		t.Fatalf("good block: %v", res)
	}
	if res := validate(context.Background(), from, &pubsub.Message{Message: &pb.Message{Data: good.Raw}}); res != pubsub.ValidationIgnore {
		t.Fatalf("replayed good block: %v, want ignore", res)
	}
	if has, _ := st.Has(good.ID()); !has {
		t.Fatal("good block not stored")
	}
	if n.misbehave.score(from, time.Now()) != 0 {
		t.Fatal("honest sender charged")
	}
}

func TestStatusJSON(t *testing.T) {
	params := tangle.BenchNet
	a := startNode(t, params, newMemStore(params), tcpOnly)
	b := startNode(t, params, newMemStore(params), tcpOnly)
	connect(t, a, b)
	waitFor(t, convergeTimeout, "catch-up", func() bool { return a.Status().Counters.CatchUps > 0 })
	st := a.Status()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"peer_id", "listen_addrs", "peers", "shards", "topics", "tips", "synced", "bytes_in", "bytes_out", "counters", "queues"} {
		if _, ok := back[k]; !ok {
			t.Errorf("status JSON lacks %q", k)
		}
	}
	if st.PeerID != a.ID() || len(st.Peers) != 1 || st.Peers[0].ID != b.ID() || !st.Synced {
		t.Errorf("status: %+v", st)
	}
	if st.BytesIn == 0 || st.BytesOut == 0 {
		t.Errorf("no traffic counted: in %d out %d", st.BytesIn, st.BytesOut)
	}
	if len(st.Topics) != 1 || st.Topics[0].Name != "/tanglemail/"+params.ID.String()+"/shard/0/0" {
		t.Errorf("topics: %+v", st.Topics)
	}
}

// TestQUIC: two nodes listening on QUIC only exchange a block.
func TestQUIC(t *testing.T) {
	params := tangle.BenchNet
	quicOnly := WithListenAddrs("/ip4/127.0.0.1/udp/0/quic-v1")
	a := startNode(t, params, newMemStore(params), quicOnly)
	b := startNode(t, params, newMemStore(params), quicOnly)
	rb := record(b)
	connect(t, a, b)
	blk := makeBlock(t, params, nil, 1024, time.Now())
	if err := a.Publish(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	waitFor(t, convergeTimeout, "block over QUIC", func() bool { return rb.hasAll([]tangle.ID{blk.ID()}) })
}

// TestStoreRefusal: a block the store refuses (its stored parent is more than ten minutes older,
// protocol.md §2.1) is neither published nor relayed, and its relay is not penalised.
func TestStoreRefusal(t *testing.T) {
	params := tangle.BenchNet
	st := openTestStore(t, params)
	n := startNode(t, params, st, tcpOnly)
	now := time.Now()
	parent := makeBlock(t, params, nil, 0, now.Add(-20*time.Minute))
	if _, err := st.Put(context.Background(), parent); err != nil {
		t.Fatal(err)
	}
	child := makeBlock(t, params, []tangle.ID{parent.ID()}, 0, now)
	if err := n.Publish(context.Background(), child); !errors.Is(err, tangle.ErrParentAge) {
		t.Fatalf("Publish: %v, want ErrParentAge", err)
	}
	child2 := makeBlock(t, params, []tangle.ID{parent.ID()}, 0, now)
	from := peer.ID("relay")
	if res := n.validator(0)(context.Background(), from, &pubsub.Message{Message: &pb.Message{Data: child2.Raw}}); res != pubsub.ValidationIgnore {
		t.Fatalf("validator: %v, want ignore", res)
	}
	if n.misbehave.score(from, time.Now()) != 0 {
		t.Fatal("relay penalised")
	}
	if n.Status().Counters.RejectedByReason["store"] != 1 {
		t.Fatalf("store refusal not counted: %+v", n.Status().Counters.RejectedByReason)
	}
}
