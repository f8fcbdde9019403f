package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// rawPeer is a plain libp2p host with GossipSub and no validation: it publishes whatever it is given on a
// shard topic, like a modified client would.
type rawPeer struct {
	h     host.Host
	topic *pubsub.Topic
}

func newRawPeer(t *testing.T, topic string) *rawPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	var seq atomic.Uint64
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		// A fresh id per message, so the attacker can replay the same bytes.
		pubsub.WithMessageIdFn(func(*pb.Message) string { return string(rune(seq.Add(1))) + "x" }),
		pubsub.WithPeerExchange(false), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go drain(ctx, sub)
	return &rawPeer{h: h, topic: tp}
}

func (r *rawPeer) connect(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.h.Connect(ctx, peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func (r *rawPeer) publish(t *testing.T, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.topic.Publish(ctx, data, pubsub.WithReadiness(pubsub.MinTopicSize(1))); err != nil {
		t.Logf("adversary publish: %v", err) // expected once it is banned
	}
}

// TestAdversary: a raw libp2p peer sends invalid PoW, malformed, oversized, expired and replayed
// (stale) blocks, then a flood of blocks with bad PoW. Honest blocks keep flowing, the attacker's score
// drops and it is banned and disconnected by the nodes it reached, and nothing grows without bound.
func TestAdversary(t *testing.T) {
	params := tangle.DevNet // PoW on
	c := newCluster(t, 3, params, tcpOnly)
	connect(t, c.nodes[0], c.nodes[1])
	connect(t, c.nodes[1], c.nodes[2])
	connect(t, c.nodes[2], c.nodes[0])
	adv := newRawPeer(t, c.nodes[0].topicName(0))
	adv.connect(t, c.nodes[0])
	adv.connect(t, c.nodes[1])
	c.waitMesh(meshTimeout)
	advID := adv.h.ID()

	ctx := context.Background()
	var honest []tangle.ID
	publishHonest := func() {
		b := makeBlock(t, params, nil, 0, time.Now())
		if err := c.nodes[2].Publish(ctx, b); err != nil {
			t.Fatal(err)
		}
		honest = append(honest, b.ID())
	}
	publishHonest()
	c.waitAll(convergeTimeout, indices(0, 3), honest)

	now := time.Now()
	good := makeBlock(t, params, nil, 0, now)
	badPoW := bytes.Clone(good.Raw)
	tangle.SetNonce(badPoW, good.Nonce+1)
	stale := makeBlock(t, params, nil, 0, now.Add(-10*time.Minute)) // a replay of an old block
	expired := makeBlock(t, params, nil, 0, now.Add(-2*time.Hour))  // TTL 1 h
	twoParents := makeBlock(t, params, []tangle.ID{{1}, {2}}, 0, now)
	malformed := bytes.Clone(twoParents.Raw)
	copy(malformed[22:54], twoParents.Raw[54:86])
	copy(malformed[54:86], twoParents.Raw[22:54])
	if _, err := params.Grind(ctx, malformed); err != nil {
		t.Fatal(err)
	}
	oversized := make([]byte, 40<<10)
	rand.Read(oversized)

	for _, raw := range [][]byte{stale.Raw, stale.Raw, expired.Raw, badPoW, malformed, oversized} {
		adv.publish(t, raw)
	}
	publishHonest()
	// A flood of blocks that look valid but carry no work.
	for range 200 {
		junk := bytes.Clone(good.Raw)
		var nonce [8]byte
		rand.Read(nonce[:])
		copy(junk[len(junk)-8:], nonce[:])
		if params.CheckPoW(junk) == nil {
			continue
		}
		adv.publish(t, junk)
		if adv.h.Network().Connectedness(c.nodes[0].host.ID()) != network.Connected &&
			adv.h.Network().Connectedness(c.nodes[1].host.ID()) != network.Connected {
			break
		}
	}
	publishHonest()

	waitFor(t, convergeTimeout, "attacker banned and disconnected", func() bool {
		for _, i := range []int{0, 1} {
			n := c.nodes[i]
			if !n.gater.isBanned(advID) || n.isConnected(advID) {
				return false
			}
		}
		return true
	})
	c.waitAll(convergeTimeout, indices(0, 3), honest)

	for _, i := range []int{0, 1} {
		n := c.nodes[i]
		st := n.Status()
		t.Logf("node %d: rejected %v, banned %d, queues %+v", i, st.Counters.RejectedByReason, st.Counters.PeersBanned, st.Queues)
		if st.Counters.GossipRejected == 0 {
			t.Errorf("node %d rejected nothing", i)
		}
		if len(st.Banned) != 1 || st.Banned[0].ID != advID.String() {
			t.Errorf("node %d banned %+v, want the attacker", i, st.Banned)
		}
		if sc := n.misbehave.score(advID, time.Now()); sc < n.lim.BanThreshold {
			n.mu.Lock()
			gs, ok := n.scores[advID]
			n.mu.Unlock()
			if !ok || gs >= 0 {
				t.Errorf("node %d: attacker's scores did not drop (own %.2f, gossipsub %.1f)", i, sc, gs)
			}
		}
		if st.Queues.ValidatingMax > st.Queues.ValidatingCap || st.Queues.Notify > st.Queues.NotifyCap {
			t.Errorf("node %d: queues over their bounds: %+v", i, st.Queues)
		}
		if st.Blocks != len(honest) {
			t.Errorf("node %d stores %d blocks, want only the %d honest ones", i, st.Blocks, len(honest))
		}
	}
	// No honest node was penalised.
	for i, n := range c.nodes {
		for j, m := range c.nodes {
			if i != j && n.misbehave.score(m.host.ID(), time.Now()) != 0 {
				t.Errorf("node %d charged honest node %d", i, j)
			}
		}
	}
	// The attacker cannot come back while banned.
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := adv.h.Connect(dctx, peer.AddrInfo{ID: c.nodes[0].host.ID(), Addrs: c.nodes[0].host.Addrs()}); err == nil {
		waitFor(t, 5*time.Second, "gated connection closed", func() bool { return !c.nodes[0].isConnected(advID) })
	}
}

// TestFlood: a raw peer floods valid blocks (no PoW on this network) far beyond its budget. The node
// stores at most the budget from it, ignores the rest without penalty, and honest blocks still arrive.
func TestFlood(t *testing.T) {
	params := tangle.BenchNet
	lim := testLimits()
	lim.GossipRate, lim.GossipBurst = 50, 100
	c := newCluster(t, 3, params, tcpOnly, WithLimits(lim))
	connect(t, c.nodes[0], c.nodes[1])
	connect(t, c.nodes[1], c.nodes[2])
	adv := newRawPeer(t, c.nodes[0].topicName(0))
	adv.connect(t, c.nodes[0])
	c.waitMesh(meshTimeout)

	ctx := context.Background()
	start := time.Now()
	const flood = 1500
	var honest []tangle.ID
	for k := range flood {
		adv.publish(t, makeBlock(t, params, nil, 256, time.Now()).Raw)
		if k%300 == 0 {
			b := makeBlock(t, params, nil, 256, time.Now())
			if err := c.nodes[2].Publish(ctx, b); err != nil {
				t.Fatal(err)
			}
			honest = append(honest, b.ID())
		}
	}
	// Wait until the node has dealt with the flood: its validator counters stop moving.
	last, stable := uint64(0), 0
	waitFor(t, convergeTimeout, "flood handled", func() bool {
		s := c.nodes[0].Status().Counters
		if s.GossipReceived == last && s.GossipReceived > 0 {
			stable++
		} else {
			last, stable = s.GossipReceived, 0
		}
		return stable >= 25 // 0.5 s without news
	})
	elapsed := time.Since(start)
	c.waitAll(convergeTimeout, indices(0, 3), honest)

	st := c.nodes[0].Status()
	t.Logf("flood of %d in %v: %+v, queues %+v", flood, elapsed, st.Counters, st.Queues)
	if st.Counters.GossipRateLimited == 0 {
		t.Error("nothing was rate-limited")
	}
	budget := uint64(lim.GossipBurst) + uint64(lim.GossipRate*elapsed.Seconds()) + uint64(len(honest)) + 10
	if st.Counters.GossipAccepted > budget {
		t.Errorf("accepted %d gossiped blocks in %v, budget %d", st.Counters.GossipAccepted, elapsed, budget)
	}
	if st.Counters.GossipRejected != 0 || st.Counters.PeersBanned != 0 {
		t.Errorf("valid blocks over budget were penalised: %+v", st.Counters)
	}
	if st.Queues.ValidatingMax > st.Queues.ValidatingCap || st.Queues.SeenCache > st.Queues.SeenCacheCap {
		t.Errorf("queues over their bounds: %+v", st.Queues)
	}
}
