package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// Store is what the node needs of the block store; *dag.Store implements it (see dag's API).
type Store interface {
	// Put stores validated blocks durably; added[i] is false when block i was already stored.
	Put(ctx context.Context, blocks ...*tangle.Block) (added []bool, err error)
	Has(id tangle.ID) (bool, error)
	// Get returns dag.ErrNotFound for an unknown id.
	Get(id tangle.ID) (*tangle.Block, error)
	// Missing lists parents referenced but neither stored nor given up, oldest reference first.
	Missing(limit int) ([]tangle.ID, error)
	GiveUp(id tangle.ID) error
	// IDsSince lists stored, unexpired blocks of shard issued at or after since, in (time, id) order,
	// strictly after the cursor, at most limit.
	IDsSince(shard uint32, since time.Time, after dag.Cursor, limit int) ([]dag.Cursor, error)
	Stats() (dag.Stats, error)
}

var _ Store = (*dag.Store)(nil)

// Errors of the node's API.
var (
	ErrClosed      = errors.New("p2p: node closed")
	ErrBadAddr     = errors.New("p2p: bad peer address")
	ErrPeerBlocked = errors.New("p2p: peer is blocked")
	// ErrNoPeers says the node has no peer to publish to (PeerCount is 0). Publish itself stores the
	// block and succeeds (peers fetch it by catch-up later); layers above that will not publish into an
	// empty network (the outbox) return it, so every "no peers" is this one error for errors.Is.
	ErrNoPeers = errors.New("p2p: no peers to publish to")
)

// Node is a tanglemail peer: a libp2p host, GossipSub on the node's shard topics, the block request
// protocol, solidification and catch-up. Its methods are safe for concurrent use.
type Node struct {
	s      settings
	params tangle.Params
	store  Store
	log    *slog.Logger
	now    func() time.Time
	lim    Limits
	shards []uint32

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines

	host   host.Host
	ps     *pubsub.PubSub
	kad    *dht.IpfsDHT
	disc   *drouting.RoutingDiscovery
	mdns   mdns.Service
	gater  *gater
	bw     *bandwidth
	tracer *meshTracer
	ctr    counters
	proto  protocol.ID

	seen          *idSet
	gossipLimit   *peerBuckets
	reqLimit      *peerBuckets
	misbehave     *misbehaviour
	inbound       chan struct{} // inbound stream slots
	validating    atomic.Int64  // gossip validations in progress
	validatingMax atomic.Int64
	notify        *notifier
	solid         *solidifier
	catchup       *catchUpper
	redial        *redialer
	relayState

	// gate tracks calls (validators, stream handlers) that may touch the store, so Close can wait for
	// them: after Close returns the node never calls the store again.
	gateMu   sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	mu          sync.Mutex
	topics      map[uint32]*pubsub.Topic
	subs        []*pubsub.Subscription
	peers       map[peer.ID]*peerState     // connected peers
	peerTable   map[peer.ID]int64          // the peer table: every peer met, last in contact at (Unix ms, node clock)
	peerAddrs   map[peer.ID][]ma.Multiaddr // the peer table: addresses to re-dial a peer at (maxPeerAddrs)
	peersDirty  bool                       // the peer table changed since the peers file was saved
	scores      map[peer.ID]float64        // last GossipSub score snapshot
	inboundPeer map[peer.ID]int
	synced      bool
	bootstrap   []peer.AddrInfo
}

type peerState struct {
	since      time.Time
	outbound   bool
	caughtUp   bool
	catchingUp bool
}

// New starts a node on store for the network params. It returns once the node listens; bootstrap peers
// are dialled in the background. ctx only bounds construction: the node runs until Close.
func New(ctx context.Context, cfg Config, store Store, params tangle.Params, opts ...Option) (*Node, error) {
	s := settings{Config: cfg, limits: DefaultLimits(), gossip: defaultGossipTuning()}
	for _, o := range opts {
		o(&s)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(s.ListenAddrs) == 0 {
		s.ListenAddrs = DefaultListenAddrs
	}
	if store == nil {
		return nil, errors.New("p2p: nil store")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lim := clampLimits(s.limits)

	key, err := resolveKey(&s)
	if err != nil {
		return nil, err
	}
	shards, err := resolveShards(s.Shards, params.ShardBits)
	if err != nil {
		return nil, err
	}
	boot, err := parseAddrs(s.Bootstrap)
	if err != nil {
		return nil, err
	}

	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		s: s, params: params, store: store, log: s.log.With("component", "p2p"), now: s.now, lim: lim,
		shards: shards, ctx: nctx, cancel: cancel,
		gater:       &gater{banned: make(map[peer.ID]time.Time), now: time.Now, refuseInbound: s.refuseInbound},
		bw:          &bandwidth{},
		tracer:      newMeshTracer(),
		proto:       protocol.ID(fmt.Sprintf("/tanglemail/%s/blocks/1", params.ID)),
		seen:        newIDSet(lim.SeenCache),
		gossipLimit: newPeerBuckets(lim.GossipRate, lim.GossipBurst),
		reqLimit:    newPeerBuckets(lim.RequestRate, lim.RequestBurst),
		misbehave:   newMisbehaviour(lim.MisbehaviourHalfLife),
		inbound:     make(chan struct{}, lim.MaxInbound),
		topics:      make(map[uint32]*pubsub.Topic),
		peers:       make(map[peer.ID]*peerState),
		peerTable:   make(map[peer.ID]int64),
		peerAddrs:   make(map[peer.ID][]ma.Multiaddr),
		redial:      newRedialer(),
		scores:      make(map[peer.ID]float64),
		inboundPeer: make(map[peer.ID]int),
		bootstrap:   boot,
	}
	n.loadPeersFile()
	n.notify = newNotifier(lim.NotifyQueue, n.log)
	n.solid = newSolidifier(n)
	n.catchup = newCatchUpper(n)

	if err := n.startHost(key); err != nil {
		cancel()
		return nil, err
	}
	if err := n.startGossip(); err != nil {
		n.host.Close()
		cancel()
		return nil, err
	}
	n.host.SetStreamHandler(n.proto, n.handleStream)
	n.host.Network().Notify(&notifiee{n: n})
	idSub, err := n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		n.host.Close()
		cancel()
		return nil, fmt.Errorf("p2p: event bus: %w", err)
	}
	n.goLoop("identify", func(ctx context.Context) { n.learnAddrs(ctx, idSub) })

	n.goLoop("notify", n.notify.run)
	n.goLoop("solidify", n.solid.run)
	for range lim.MaxCatchUps {
		n.goLoop("catchup", n.catchup.run)
	}
	n.goLoop("maintain", n.maintain)

	if s.DHT {
		if err := n.startDHT(); err != nil {
			n.Close()
			return nil, err
		}
		n.goLoop("discover", n.discoverLoop)
	}
	if s.MDNS {
		n.mdns = mdns.NewMdnsService(n.host, "_tanglemail-"+params.ID.String(), &mdnsNotifee{n: n})
		if err := n.mdns.Start(); err != nil {
			n.Close()
			return nil, fmt.Errorf("p2p: mdns: %w", err)
		}
	}
	// Peers connected before the notifiee was registered (none in practice) still get a catch-up.
	for _, p := range n.host.Network().Peers() {
		n.peerConnected(p, true)
	}
	n.spawn(func() { n.dialBootstrap(n.ctx) })
	n.log.Info("p2p node started", "peer", n.host.ID().String(), "network", params.Name,
		"shards", shards, "mdns", s.MDNS, "dht", s.DHT)
	return n, nil
}

func clampLimits(l Limits) Limits {
	d := DefaultLimits()
	pos := func(v *int, def, max int) {
		if *v <= 0 {
			*v = def
		}
		if max > 0 && *v > max {
			*v = max
		}
	}
	pos(&l.MaxIDsPerGet, d.MaxIDsPerGet, wireMaxIDsPerGet)
	pos(&l.MaxIDsPerPage, d.MaxIDsPerPage, wireMaxIDsPerPage)
	pos(&l.MaxResponseBytes, d.MaxResponseBytes, wireMaxBlocksBytes)
	pos(&l.MaxInbound, d.MaxInbound, 0)
	pos(&l.MaxInboundPeer, d.MaxInboundPeer, 0)
	pos(&l.FetchParallel, d.FetchParallel, 64)
	pos(&l.MaxMissing, d.MaxMissing, 0)
	pos(&l.MaxCatchUps, d.MaxCatchUps, 64)
	pos(&l.NotifyQueue, d.NotifyQueue, 0)
	pos(&l.SeenCache, d.SeenCache, 0)
	pos(&l.ValidationParallel, d.ValidationParallel, 0)
	pos(&l.GossipBurst, d.GossipBurst, 0)
	pos(&l.RequestBurst, d.RequestBurst, 0)
	posf := func(v *float64, def float64) {
		if *v <= 0 {
			*v = def
		}
	}
	posf(&l.GossipRate, d.GossipRate)
	posf(&l.RequestRate, d.RequestRate)
	posf(&l.BanThreshold, d.BanThreshold)
	posd := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	posd(&l.MisbehaviourHalfLife, d.MisbehaviourHalfLife)
	posd(&l.BanDuration, d.BanDuration)
	posd(&l.RequestTimeout, d.RequestTimeout)
	posd(&l.SolidifyInterval, d.SolidifyInterval)
	posd(&l.SolidifyRetry, d.SolidifyRetry)
	posd(&l.SolidifyGiveUp, d.SolidifyGiveUp)
	posd(&l.CatchUpMargin, d.CatchUpMargin)
	posd(&l.CatchUpWindow, d.CatchUpWindow)
	posd(&l.AnnounceCooldown, d.AnnounceCooldown)
	posd(&l.ReconnectInterval, d.ReconnectInterval)
	pos(&l.RedialPeers, d.RedialPeers, maxPeerTable)
	posd(&l.RedialWindow, d.RedialWindow)
	posd(&l.RedialBackoffMax, d.RedialBackoffMax)
	posd(&l.DialTimeout, d.DialTimeout)
	posd(&l.PingInterval, d.PingInterval)
	posd(&l.PingTimeout, d.PingTimeout)
	posd(&l.AntiEntropyInterval, d.AntiEntropyInterval)
	posd(&l.AntiEntropyDelay, d.AntiEntropyDelay)
	if max := time.Duration(tangle.MaxTTL) * time.Second; l.CatchUpWindow > max {
		l.CatchUpWindow = max
	}
	return l
}

func resolveKey(s *settings) (ed25519.PrivateKey, error) {
	switch {
	case s.key != nil:
		return s.key, nil
	case s.keyFile != "":
		return LoadOrCreateKey(s.keyFile)
	case s.DataDir != "":
		return LoadOrCreateKey(filepath.Join(s.DataDir, KeyFile))
	}
	_, k, err := ed25519.GenerateKey(nil)
	return k, err
}

func resolveShards(want []uint32, bits int) ([]uint32, error) {
	if bits < 0 || bits > 16 {
		return nil, fmt.Errorf("p2p: shard bits %d out of range", bits)
	}
	count := uint32(1) << bits
	if len(want) == 0 {
		if count > 256 {
			return nil, fmt.Errorf("p2p: %d shards: choose the shards to subscribe to", count)
		}
		out := make([]uint32, count)
		for i := range out {
			out[i] = uint32(i)
		}
		return out, nil
	}
	out := slices.Clone(want)
	slices.Sort(out)
	out = slices.Compact(out)
	for _, sh := range out {
		if sh >= count {
			return nil, fmt.Errorf("p2p: shard %d out of range (%d shard bits)", sh, bits)
		}
	}
	return out, nil
}

// goLoop runs f in a tracked goroutine that logs a panic instead of crashing the process.
func (n *Node) goLoop(name string, f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.recoverPanic(name)
		f(n.ctx)
	}()
}

func (n *Node) recoverPanic(where string) {
	if r := recover(); r != nil {
		n.log.Error("p2p: panic recovered", "where", where, "panic", fmt.Sprint(r))
	}
}

// enter registers a call that may use the store; false once the node is closing.
func (n *Node) enter() bool {
	n.gateMu.RLock()
	defer n.gateMu.RUnlock()
	if n.closed {
		return false
	}
	n.inflight.Add(1)
	return true
}

func (n *Node) leave() { n.inflight.Done() }

// Close stops the node: it leaves the network, stops every goroutine, waits for calls that use the store
// and saves the peer table. It does not close the store. Blocks queued for OnBlock handlers but
// not yet delivered are dropped (they are in the store).
func (n *Node) Close() error {
	n.gateMu.Lock()
	if n.closed {
		n.gateMu.Unlock()
		return nil
	}
	n.closed = true
	n.gateMu.Unlock()

	now := n.now().UnixMilli()
	n.mu.Lock()
	for p := range n.peers {
		n.peerTable[p] = now
	}
	n.mu.Unlock()

	n.cancel()
	var errs []error
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.kad != nil {
		errs = append(errs, n.kad.Close())
	}
	errs = append(errs, n.closeRelay(), n.host.Close())
	n.wg.Wait()
	n.inflight.Wait()
	errs = append(errs, n.savePeersFile())
	n.log.Info("p2p node stopped", "peer", n.host.ID().String())
	return errors.Join(errs...)
}

// ID is the node's peer id.
func (n *Node) ID() string { return n.host.ID().String() }

// Addrs are the node's listen addresses with its /p2p/<peer id>, ready to give to other nodes as
// bootstrap addresses.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.host.ID().String())
	}
	return out
}

// spawn runs f in a goroutine that Close waits for; nothing runs once the node is closing.
func (n *Node) spawn(f func()) {
	if !n.enter() {
		return
	}
	go func() {
		defer n.leave()
		defer n.recoverPanic("spawn")
		f()
	}()
}

var _ io.Closer = (*Node)(nil)
