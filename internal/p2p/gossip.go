package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// gossipTuning are the GossipSub mesh parameters (see the package doc for the reasoning).
type gossipTuning struct {
	D, Dlo, Dhi, Dscore, Dout int
	Dlazy                     int
	GossipFactor              float64
	HistoryGossip             int
	PruneBackoff              time.Duration
	Heartbeat                 time.Duration
	IDontWantThreshold        int
}

func defaultGossipTuning() gossipTuning {
	return gossipTuning{
		D: 3, Dlo: 2, Dhi: 4, Dscore: 2, Dout: 0,
		Dlazy:              3,
		GossipFactor:       0.1,
		HistoryGossip:      1,
		PruneBackoff:       15 * time.Second,
		Heartbeat:          time.Second,
		IDontWantThreshold: 512,
	}
}

// withGossipTuning is for benchmarks that compare mesh parameters.
func withGossipTuning(t gossipTuning) Option { return func(s *settings) { s.gossip = t } }

func (n *Node) gossipParams() pubsub.GossipSubParams {
	t := n.s.gossip
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi, p.Dscore, p.Dout = t.D, t.Dlo, t.Dhi, t.Dscore, t.Dout
	p.Dlazy = t.Dlazy
	p.GossipFactor = t.GossipFactor
	p.HistoryGossip = t.HistoryGossip
	p.PruneBackoff = t.PruneBackoff
	p.HeartbeatInterval = t.Heartbeat
	p.IDontWantMessageThreshold = t.IDontWantThreshold
	return p
}

// Peer scoring (GossipSub v1.1). Scores are per topic plus an application part.
//
//   - P2 first deliveries: +1 per block delivered first, capped at 20, decaying over 10 min: honest
//     relays earn headroom.
//   - P1 time in mesh: +0.01 per second, capped at +1.
//   - P3 mesh delivery deficit is off: a mail shard is quiet for long stretches, so "too few deliveries"
//     says nothing about a peer and would only churn the mesh.
//   - P4 invalid deliveries: −100 × (count²), decaying to 1% in an hour: one invalid block costs −100,
//     three −900, five −2500.
//   - P5 application score: −100 × the node's own misbehaviour score (invalid blocks on gossip and in
//     responses, unsolicited responses, malformed requests), so request-protocol abuse counts too.
//   - P6 IP colocation: −5 per peer above 10 on one IP (loopback exempt, for tests and devnets).
//   - P7 behaviour (broken IWANT promises, GRAFT floods): −10 × excess², decaying over 10 min.
//
// Thresholds: below −500 no gossip is exchanged with the peer, below −1000 we do not publish to it, below
// −2500 (about five invalid blocks) everything it sends is dropped (graylist). The node's own ban
// (disconnect and refuse for Limits.BanDuration) triggers at the same point, Limits.BanThreshold = 5.
func (n *Node) scoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	topics := make(map[string]*pubsub.TopicScoreParams)
	for _, sh := range n.shards {
		topics[n.topicName(sh)] = topicScoreParams()
	}
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	params := &pubsub.PeerScoreParams{
		Topics:        topics,
		TopicScoreCap: 50,
		AppSpecificScore: func(p peer.ID) float64 {
			return -100 * n.misbehave.score(p, time.Now())
		},
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 10,
		IPColocationFactorWhitelist: []*net.IPNet{loop4, loop6},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		RetainScore:                 30 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             -500,
		PublishThreshold:            -1000,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           1000, // PX is off; should it be turned on, only from well-scored peers
		OpportunisticGraftThreshold: 3,
	}
	return params, thresholds
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      20,
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

const graylistThreshold = -2500

// GossipSub's own bounds: the largest RPC read from a peer, and the queue in front of the validators (a
// full queue drops messages, which anti-entropy repairs). At most validateQueue × maxGossipRPC bytes wait.
const (
	maxGossipRPC  = 4*tangle.MaxBlockSize + 4096
	validateQueue = 64
)

// topicName is the gossip topic of a shard (protocol.md §7).
func (n *Node) topicName(shard uint32) string {
	return fmt.Sprintf("/tanglemail/%s/shard/%d/%d", n.params.ID, n.params.ShardBits, shard)
}

// messageID is the block id: BLAKE2b-256 of the message data, so GossipSub's duplicate suppression and
// IDONTWANT work on block ids. Messages are unsigned and carry no author or sequence number
// (StrictNoSign): blocks are anonymous, and a signature would tie a block to the relaying peer.
func messageID(m *pb.Message) string {
	id := blake2b.Sum256(m.Data)
	return string(id[:])
}

func (n *Node) startGossip() error {
	sp, st := n.scoreParams()
	topicRx := regexp.MustCompile(fmt.Sprintf(`^/tanglemail/%s/shard/[0-9]{1,2}/[0-9]{1,10}$`, n.params.ID))
	bl, err := pubsub.NewTimeCachedBlacklist(n.lim.BanDuration)
	if err != nil {
		return err
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.host,
		pubsub.WithGossipSubParams(n.gossipParams()),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithPeerScore(sp, st),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.setScores), time.Second),
		pubsub.WithFloodPublish(false),
		pubsub.WithPeerExchange(false),
		// An RPC holds at most four full blocks; larger ones are refused before they are read. Blocks a
		// little over the limit still reach the validator, so their sender is penalised.
		pubsub.WithMaxMessageSize(maxGossipRPC),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithValidateThrottle(n.lim.ValidationParallel),
		pubsub.WithBlacklist(bl),
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(
			pubsub.NewRegexpSubscriptionFilter(topicRx), 256)),
		pubsub.WithLogger(n.log.With("component", "gossipsub")),
		pubsub.WithRawTracer(n.tracer),
	)
	if err != nil {
		return fmt.Errorf("p2p: gossipsub: %w", err)
	}
	n.ps = ps
	for _, sh := range n.shards {
		t, err := n.joinTopic(sh)
		if err != nil {
			return err
		}
		sub, err := t.Subscribe(pubsub.WithBufferSize(256))
		if err != nil {
			return fmt.Errorf("p2p: subscribe shard %d: %w", sh, err)
		}
		n.subs = append(n.subs, sub)
		n.goLoop("drain", func(ctx context.Context) { drain(ctx, sub) })
	}
	return nil
}

// drain consumes a subscription: validators already stored and announced every block, the subscription
// exists to be part of the topic's mesh.
func drain(ctx context.Context, sub *pubsub.Subscription) {
	defer sub.Cancel()
	for {
		if _, err := sub.Next(ctx); err != nil {
			return
		}
	}
}

// joinTopic joins a shard topic (once) and registers its validator.
func (n *Node) joinTopic(shard uint32) (*pubsub.Topic, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t := n.topics[shard]; t != nil {
		return t, nil
	}
	name := n.topicName(shard)
	if err := n.ps.RegisterTopicValidator(name, n.validator(shard),
		pubsub.WithValidatorTimeout(n.lim.RequestTimeout),
		pubsub.WithValidatorConcurrency(n.lim.ValidationParallel)); err != nil {
		return nil, fmt.Errorf("p2p: validator for shard %d: %w", shard, err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		return nil, fmt.Errorf("p2p: join shard %d: %w", shard, err)
	}
	if !containsShard(n.shards, shard) {
		_ = t.SetScoreParams(topicScoreParams())
	}
	n.topics[shard] = t
	return t, nil
}

func containsShard(shards []uint32, s uint32) bool {
	for _, x := range shards {
		if x == s {
			return true
		}
	}
	return false
}

// setScores receives GossipSub's score snapshot every second. A peer below the graylist threshold is
// banned as well: GossipSub already ignores it, and the connection has no further use.
func (n *Node) setScores(m map[peer.ID]float64) {
	n.mu.Lock()
	n.scores = m
	n.mu.Unlock()
	for p, sc := range m {
		if sc < graylistThreshold {
			n.banPeer(p, "gossipsub score", sc)
		}
	}
}

// errWrongShard: a block gossiped on a topic that is not its shard's.
var errWrongShard = errors.New("block is not of this topic's shard")

// rejectReason classifies a validation error for counters and weighs it for misbehaviour. Time rules
// weigh less: a peer with a skewed clock is wrong, not malicious.
func rejectReason(err error) (string, float64) {
	switch {
	case errors.Is(err, tangle.ErrSize):
		return "size", 1
	case errors.Is(err, tangle.ErrVersion):
		return "version", 1
	case errors.Is(err, tangle.ErrNetwork):
		return "network", 1
	case errors.Is(err, tangle.ErrPoW):
		return "pow", 1
	case errors.Is(err, tangle.ErrMalformed), errors.Is(err, tangle.ErrParents):
		return "malformed", 1
	case errors.Is(err, tangle.ErrTTL):
		return "ttl", 1
	case errors.Is(err, tangle.ErrPayloadType), errors.Is(err, tangle.ErrPayload):
		return "payload", 1
	case errors.Is(err, tangle.ErrTime):
		return "time", 0.25
	case errors.Is(err, tangle.ErrExpired):
		return "expired", 0.25
	case errors.Is(err, errWrongShard):
		return "shard", 1
	}
	return "other", 1
}

// validator is the gossip topic validator of a shard (protocol.md §2.1 and §7). It runs before a block is
// forwarded: rate limit, full validation (size, network, PoW before decoding, fields), gossip freshness,
// topic/shard match, duplicate check, then it stores the block. Only a stored block is accepted, which
// makes GossipSub forward it. Invalid blocks are rejected (the sender's score drops; repeated offences
// ban it); duplicates and blocks over the sender's budget are ignored.
func (n *Node) validator(shard uint32) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if from == n.host.ID() {
			return pubsub.ValidationAccept // our own Publish: validated and stored before publishing
		}
		if !n.enter() {
			return pubsub.ValidationIgnore
		}
		defer n.leave()
		n.ctr.gossipReceived.Add(1)
		v := n.validating.Add(1)
		defer n.validating.Add(-1)
		for m := n.validatingMax.Load(); v > m && !n.validatingMax.CompareAndSwap(m, v); m = n.validatingMax.Load() {
		}
		if !n.gossipLimit.allow(from, time.Now()) {
			n.ctr.gossipRateLimited.Add(1)
			return pubsub.ValidationIgnore
		}
		now := n.now()
		b, err := n.params.Validate(msg.Data, now)
		if err == nil {
			err = n.params.FreshEnough(b, now)
		}
		if err == nil && b.Shard(n.params.ShardBits) != shard {
			err = errWrongShard
		}
		if err != nil {
			reason, w := rejectReason(err)
			n.ctr.gossipRejected.Add(1)
			n.ctr.reject(reason)
			n.offence(from, reason, w)
			n.log.Debug("p2p: rejected gossiped block", "peer", from.String(), "reason", reason)
			return pubsub.ValidationReject
		}
		id := b.ID()
		if n.seen.has(id) {
			n.ctr.gossipDuplicate.Add(1)
			return pubsub.ValidationIgnore
		}
		has, err := n.store.Has(id)
		if err != nil {
			n.ctr.gossipStoreErrors.Add(1)
			n.log.Error("p2p: store lookup failed", "err", err)
			return pubsub.ValidationIgnore
		}
		if has {
			n.seen.add(id)
			n.ctr.gossipDuplicate.Add(1)
			return pubsub.ValidationIgnore
		}
		// Not the validator's ctx: if GossipSub's validation timeout ended the wait after the block was
		// handed to the writer, the block could be stored without being marked seen or handed to
		// OnBlock, and nothing would fetch it again (Has is true). The wait ends only with the node.
		added, err := n.store.Put(n.ctx, b)
		if err != nil {
			n.ctr.gossipStoreErrors.Add(1)
			n.log.Error("p2p: store put failed", "block", id.Short(), "err", err)
			return pubsub.ValidationIgnore
		}
		if !added[0] {
			// Stored meanwhile by another path, or refused by the store (a parent it holds is too old for
			// this block, protocol.md §2.1). Either way: not forwarded. Not penalised: a relay that lacks
			// the parent cannot check the rule.
			if has, _ := n.store.Has(id); !has {
				n.ctr.reject("store")
			}
			n.seen.add(id)
			n.ctr.gossipDuplicate.Add(1)
			return pubsub.ValidationIgnore
		}
		n.seen.add(id)
		n.stored(b, true)
		msg.ValidatorData = b
		n.ctr.gossipAccepted.Add(1)
		return pubsub.ValidationAccept
	}
}

// stored runs after a block was newly stored, whatever the path: OnBlock handlers, and a solidifier
// wake-up when a parent may be missing. It waits for room in the OnBlock queue (backpressure on
// ingestion) unless wait is false, as for Publish, which may be called from a handler.
func (n *Node) stored(b *tangle.Block, wait bool) {
	n.ctr.stored.Add(1)
	for _, p := range b.Parents {
		if p != tangle.Genesis && !n.seen.has(p) {
			n.solid.wakeUp()
			break
		}
	}
	if wait || !n.notify.tryEnqueue(b) {
		if wait {
			n.notify.enqueue(n.ctx, b)
		} else {
			n.spawn(func() { n.notify.enqueue(n.ctx, b) })
		}
	}
}

// Publish validates b as a receiver would (including gossip freshness), stores it and publishes it on
// its shard's topic. A block of a shard the node does not subscribe to is published to that topic's
// subscribers. With no peers the block stays in the store; peers fetch it by catch-up.
func (n *Node) Publish(ctx context.Context, b *tangle.Block) error {
	if !n.enter() {
		return ErrClosed
	}
	defer n.leave()
	now := n.now()
	vb, err := n.params.Validate(b.Raw, now)
	if err != nil {
		return fmt.Errorf("p2p: publish: %w", err)
	}
	if err := n.params.FreshEnough(vb, now); err != nil {
		return fmt.Errorf("p2p: publish: %w", err)
	}
	added, err := n.store.Put(ctx, vb)
	if err != nil {
		return fmt.Errorf("p2p: publish: store: %w", err)
	}
	if !added[0] {
		if has, err := n.store.Has(vb.ID()); err == nil && !has {
			return fmt.Errorf("p2p: publish: the store refused the block (%w)", tangle.ErrParentAge)
		}
	}
	n.seen.add(vb.ID())
	if added[0] {
		n.stored(vb, false)
	}
	n.ctr.published.Add(1)
	if err := n.publishRaw(ctx, vb); err != nil {
		return err
	}
	// Right after a link comes back the shard's mesh may still be empty (it forms at the next
	// heartbeats), and GossipSub would send the block to nobody: announce it instead, so connected
	// peers fetch it by catch-up now rather than at the next anti-entropy round.
	if sh := vb.Shard(n.params.ShardBits); slices.Contains(n.shards, sh) && n.tracer.meshSize(n.topicName(sh)) == 0 {
		n.catchup.announce(n.ctx, "", sh, vb.Time)
	}
	return nil
}

func (n *Node) publishRaw(ctx context.Context, b *tangle.Block) error {
	t, err := n.joinTopic(b.Shard(n.params.ShardBits))
	if err != nil {
		return err
	}
	if err := t.Publish(ctx, b.Raw); err != nil {
		return fmt.Errorf("p2p: publish: %w", err)
	}
	return nil
}

// OnBlock registers fn to be called once for every block newly stored by this node, whatever the path
// (gossip, request, catch-up, Publish). Handlers run one at a time on one goroutine, in store order; a
// slow handler delays ingestion (the queue is bounded), so handlers should be quick and must not call
// Publish synchronously. The returned function unregisters fn.
func (n *Node) OnBlock(fn func(*tangle.Block)) (unregister func()) {
	return n.notify.add(fn)
}

// notifier delivers newly stored blocks to the OnBlock handlers.
type notifier struct {
	ch  chan *tangle.Block
	log *slog.Logger

	mu       sync.Mutex
	handlers map[int]func(*tangle.Block)
	next     int
}

func newNotifier(size int, log *slog.Logger) *notifier {
	return &notifier{ch: make(chan *tangle.Block, size), log: log, handlers: make(map[int]func(*tangle.Block))}
}

func (nt *notifier) add(fn func(*tangle.Block)) func() {
	nt.mu.Lock()
	id := nt.next
	nt.next++
	nt.handlers[id] = fn
	nt.mu.Unlock()
	return func() {
		nt.mu.Lock()
		delete(nt.handlers, id)
		nt.mu.Unlock()
	}
}

// enqueue waits for room in the queue (backpressure), or for the node to close.
func (nt *notifier) enqueue(nodeCtx context.Context, b *tangle.Block) {
	select {
	case nt.ch <- b:
	case <-nodeCtx.Done():
	}
}

func (nt *notifier) tryEnqueue(b *tangle.Block) bool {
	select {
	case nt.ch <- b:
		return true
	default:
		return false
	}
}

func (nt *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-nt.ch:
			nt.mu.Lock()
			hs := make([]func(*tangle.Block), 0, len(nt.handlers))
			for _, h := range nt.handlers {
				hs = append(hs, h)
			}
			nt.mu.Unlock()
			for _, h := range hs {
				nt.call(h, b)
			}
		}
	}
}

// call runs one handler; a panicking handler is logged and does not stop delivery to the others.
func (nt *notifier) call(h func(*tangle.Block), b *tangle.Block) {
	defer func() {
		if r := recover(); r != nil {
			nt.log.Error("p2p: OnBlock handler panicked", "block", b.ID().Short(), "panic", fmt.Sprint(r))
		}
	}()
	h(b)
}
