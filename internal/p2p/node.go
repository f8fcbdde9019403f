package p2p

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	dutil "github.com/libp2p/go-libp2p/p2p/discovery/util"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
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

	// gate tracks calls (validators, stream handlers) that may touch the store, so Close can wait for
	// them: after Close returns the node never calls the store again.
	gateMu   sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	mu          sync.Mutex
	topics      map[uint32]*pubsub.Topic
	subs        []*pubsub.Subscription
	peers       map[peer.ID]*peerState // connected peers
	contacts    map[peer.ID]int64      // last contact, Unix ms (node clock)
	scores      map[peer.ID]float64    // last GossipSub score snapshot
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
		gater:       newGater(),
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
		contacts:    make(map[peer.ID]int64),
		scores:      make(map[peer.ID]float64),
		inboundPeer: make(map[peer.ID]int),
		bootstrap:   boot,
	}
	n.loadContacts()
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

func parseAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range addrs {
		ai, err := parseAddr(a)
		if err != nil {
			return nil, err
		}
		out = append(out, *ai)
	}
	return out, nil
}

func parseAddr(a string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(a)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadAddr, a, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("%w %q (want .../p2p/<peer id>): %v", ErrBadAddr, a, err)
	}
	return ai, nil
}

// startHost builds the libp2p host: TCP and QUIC, Noise, yamux, our gater and bandwidth reporter, and
// nothing that dials out on its own: no relay, no NAT port mapping, no hole punching, no AutoNAT probing
// (reachability is fixed to private), no metrics registration in a global registry.
func (n *Node) startHost(key ed25519.PrivateKey) error {
	pk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return fmt.Errorf("p2p: key: %w", err)
	}
	cm, err := connmgr.NewConnManager(64, 128, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return err
	}
	h, err := libp2p.New(
		libp2p.Identity(pk),
		libp2p.ListenAddrStrings(n.s.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.BandwidthReporter(n.bw),
		libp2p.ConnectionGater(n.gater),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("tanglemail"),
	)
	if err != nil {
		return fmt.Errorf("p2p: host: %w", err)
	}
	n.host = h
	return nil
}

// startDHT runs a Kademlia DHT server in the private /tanglemail namespace. Its only bootstrap peers are
// the configured ones; it never uses libp2p's default (public IPFS) list.
func (n *Node) startDHT() error {
	kad, err := dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix("/tanglemail"),
		dht.BootstrapPeers(n.bootstrap...),
		dht.DisableValues(),
	)
	if err != nil {
		return fmt.Errorf("p2p: dht: %w", err)
	}
	n.kad = kad
	n.disc = drouting.NewRoutingDiscovery(kad)
	if err := kad.Bootstrap(n.ctx); err != nil {
		return fmt.Errorf("p2p: dht bootstrap: %w", err)
	}
	for _, sh := range n.shards {
		dutil.Advertise(n.ctx, n.disc, n.topicName(sh))
	}
	return nil
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
// and saves the peers' contact times. It does not close the store. Blocks queued for OnBlock handlers but
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
		n.contacts[p] = now
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
	errs = append(errs, n.host.Close())
	n.wg.Wait()
	n.inflight.Wait()
	errs = append(errs, n.saveContacts())
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

// Connect dials a peer given as a multiaddr with /p2p/<peer id>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	ai, err := parseAddr(addr)
	if err != nil {
		return err
	}
	if n.gater.isBanned(ai.ID) {
		return ErrPeerBlocked
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// BlockPeer disconnects a peer and refuses connections to and from it for d (an operator's block, and
// how tests partition a network). UnblockPeer lifts it.
func (n *Node) BlockPeer(id string, d time.Duration) error {
	p, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddr, err)
	}
	n.gater.ban(p, time.Now().Add(d))
	return n.host.Network().ClosePeer(p)
}

// UnblockPeer lifts a block set by BlockPeer or by misbehaviour. It does not reconnect.
func (n *Node) UnblockPeer(id string) error {
	p, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddr, err)
	}
	n.gater.unban(p)
	return nil
}

// offence records misbehaviour by p and bans it once its score reaches the threshold.
func (n *Node) offence(p peer.ID, reason string, weight float64) {
	if score := n.misbehave.add(p, weight, time.Now()); score >= n.lim.BanThreshold {
		n.banPeer(p, reason, score)
	}
}

// banPeer disconnects p and refuses it for Limits.BanDuration, in the connection gater and in GossipSub.
func (n *Node) banPeer(p peer.ID, reason string, score float64) {
	if n.gater.isBanned(p) {
		return
	}
	n.gater.ban(p, time.Now().Add(n.lim.BanDuration))
	n.ctr.peersBanned.Add(1)
	n.log.Warn("p2p: banning misbehaving peer", "peer", p.String(), "reason", reason,
		"score", score, "for", n.lim.BanDuration)
	n.spawn(func() {
		n.ps.BlacklistPeer(p)
		_ = n.host.Network().ClosePeer(p)
	})
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

// dialBootstrap connects to every bootstrap peer not yet connected, in parallel.
func (n *Node) dialBootstrap(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ai := range n.bootstrap {
		if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := n.host.Connect(cctx, ai); err != nil {
				n.log.Debug("p2p: bootstrap dial failed", "peer", ai.ID.String(), "err", err)
			}
		}(ai)
	}
	wg.Wait()
}

// maintain samples bandwidth, re-dials bootstrap peers when alone, runs DHT discovery and saves contact
// times.
func (n *Node) maintain(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastDial, lastSave, lastDisc, lastAE time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n.bw.sample(now)
			if now.Sub(lastDial) >= n.lim.ReconnectInterval && len(n.host.Network().Peers()) == 0 && len(n.bootstrap) > 0 {
				lastDial = now
				n.dialBootstrap(ctx)
			}
			if n.disc != nil && now.Sub(lastDisc) >= n.lim.ReconnectInterval {
				lastDisc = now
				n.discover(ctx)
			}
			if now.Sub(lastAE) >= n.lim.AntiEntropyInterval {
				lastAE = now
				if ps := n.caughtUpPeers(); len(ps) > 0 {
					n.catchup.schedule(ps[mrand.IntN(len(ps))], kindAntiEntropy, nil)
				}
			}
			if now.Sub(lastSave) >= time.Minute {
				lastSave = now
				if err := n.saveContacts(); err != nil {
					n.log.Warn("p2p: save peers", "err", err)
				}
			}
		}
	}
}

// targetPeers is how many peers DHT discovery tries to keep.
const targetPeers = 8

func (n *Node) discover(ctx context.Context) {
	if len(n.host.Network().Peers()) >= targetPeers {
		return
	}
	for _, sh := range n.shards {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		found, err := dutil.FindPeers(fctx, n.disc, n.topicName(sh))
		cancel()
		if err != nil {
			continue
		}
		for _, ai := range found {
			if ai.ID == n.host.ID() || len(ai.Addrs) == 0 || n.host.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = n.host.Connect(cctx, ai)
			cancel()
			if len(n.host.Network().Peers()) >= targetPeers {
				return
			}
		}
	}
}

// notifiee turns connection events into peer state and catch-up.
type notifiee struct{ n *Node }

func (nf *notifiee) Listen(network.Network, ma.Multiaddr)      {}
func (nf *notifiee) ListenClose(network.Network, ma.Multiaddr) {}
func (nf *notifiee) Connected(_ network.Network, c network.Conn) {
	nf.n.peerConnected(c.RemotePeer(), c.Stat().Direction == network.DirOutbound)
}
func (nf *notifiee) Disconnected(nw network.Network, c network.Conn) {
	p := c.RemotePeer()
	if nw.Connectedness(p) == network.Connected {
		return // another connection remains
	}
	nf.n.peerDisconnected(p)
}

func (n *Node) peerConnected(p peer.ID, outbound bool) {
	n.mu.Lock()
	if _, ok := n.peers[p]; ok {
		n.mu.Unlock()
		return
	}
	n.peers[p] = &peerState{since: time.Now(), outbound: outbound}
	n.mu.Unlock()
	n.catchup.schedule(p, kindConnect, nil)
	// Once the topic mesh has formed (a few heartbeats), compare the recent window: blocks gossiped
	// between the connect-time listing and the mesh are repaired here.
	time.AfterFunc(n.lim.AntiEntropyDelay, func() {
		if n.isConnected(p) {
			n.catchup.schedule(p, kindAntiEntropy, nil)
		}
	})
}

func (n *Node) peerDisconnected(p peer.ID) {
	n.mu.Lock()
	if _, ok := n.peers[p]; ok {
		delete(n.peers, p)
		n.contacts[p] = n.now().UnixMilli()
		n.trimContactsLocked()
	}
	n.mu.Unlock()
	n.tracer.removePeer(p)
	n.catchup.forget(p)
}

// connectedPeers lists connected, unbanned peers.
func (n *Node) connectedPeers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]peer.ID, 0, len(n.peers))
	for p := range n.peers {
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.DeleteFunc(out, n.gater.isBanned)
}

// caughtUpPeers lists connected peers with a completed catch-up session.
func (n *Node) caughtUpPeers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for p, ps := range n.peers {
		if ps.caughtUp {
			out = append(out, p)
		}
	}
	return out
}

// maxContacts bounds the persisted contact table.
const maxContacts = 1024

func (n *Node) trimContactsLocked() {
	if len(n.contacts) <= maxContacts {
		return
	}
	type kv struct {
		p peer.ID
		t int64
	}
	all := make([]kv, 0, len(n.contacts))
	for p, t := range n.contacts {
		all = append(all, kv{p, t})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.t - a.t) })
	for _, e := range all[maxContacts:] {
		delete(n.contacts, e.p)
	}
}

// contactsFile is the JSON layout of PeersFile: peer id → last contact, Unix ms.
type contactsFile struct {
	Network  string           `json:"network"`
	Contacts map[string]int64 `json:"contacts"`
}

func (n *Node) loadContacts() {
	if n.s.DataDir == "" {
		return
	}
	data, err := os.ReadFile(filepath.Join(n.s.DataDir, PeersFile))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("p2p: read peers file", "err", err)
		}
		return
	}
	var cf contactsFile
	if err := json.Unmarshal(data, &cf); err != nil || cf.Network != n.params.Name {
		n.log.Warn("p2p: ignoring peers file", "err", err)
		return
	}
	for id, t := range cf.Contacts {
		if p, err := peer.Decode(id); err == nil {
			n.contacts[p] = t
		}
	}
	n.trimContactsLocked()
}

func (n *Node) saveContacts() error {
	if n.s.DataDir == "" {
		return nil
	}
	n.mu.Lock()
	cf := contactsFile{Network: n.params.Name, Contacts: make(map[string]int64, len(n.contacts))}
	now := n.now().UnixMilli()
	for p := range n.peers {
		n.contacts[p] = now
	}
	for p, t := range n.contacts {
		cf.Contacts[p.String()] = t
	}
	n.mu.Unlock()
	data, err := json.Marshal(&cf)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(n.s.DataDir, PeersFile), data, 0o600)
}

// mdnsNotifee dials peers found on the LAN.
type mdnsNotifee struct{ n *Node }

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.spawn(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("p2p: mdns dial failed", "peer", ai.ID.String(), "err", err)
		}
	})
}

var _ io.Closer = (*Node)(nil)

func decodePeer(s string) (peer.ID, error) { return peer.Decode(s) }
