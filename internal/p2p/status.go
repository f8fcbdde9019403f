package p2p

import (
	"slices"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
)

// Status is a snapshot of the node for `tanglemail status` / `peers` and the web UI. It marshals to JSON
// as is; ids and addresses are strings.
type Status struct {
	PeerID      string        `json:"peer_id"`
	Network     string        `json:"network"`
	NetworkID   string        `json:"network_id"`
	ListenAddrs []string      `json:"listen_addrs"` // each with /p2p/<peer id>
	Peers       []PeerStatus  `json:"peers"`
	Banned      []BannedPeer  `json:"banned,omitempty"`
	Shards      []uint32      `json:"shards"`
	Topics      []TopicStatus `json:"topics"`
	MDNS        bool          `json:"mdns"`
	DHT         bool          `json:"dht"`

	// Relaying and NAT traversal (relay.go): reachability as AutoNAT or the configuration says
	// (public, private, unknown), whether this node runs the relay service, the static relays
	// configured, and the relayed addresses (through relays holding a reservation for this node).
	Reachability string   `json:"reachability"`
	RelayService bool     `json:"relay_service"`
	Relays       []string `json:"relays,omitempty"`
	RelayAddrs   []string `json:"relay_addrs,omitempty"`

	// Synced: a catch-up session with at least one peer has completed since start, or there is no peer
	// to catch up with.
	Synced bool `json:"synced"`

	// From the store (dag.Stats).
	Blocks     int            `json:"blocks"`
	Solid      int            `json:"solid"`
	Unsolid    int            `json:"unsolid"`
	Missing    int            `json:"missing"`
	Tips       map[uint32]int `json:"tips"` // per shard
	StoreBytes int64          `json:"store_bytes"`
	StoreError string         `json:"store_error,omitempty"`

	// Traffic: libp2p stream payload bytes since start (excluding Noise/yamux framing), and the rate over
	// the last second.
	BytesIn         int64   `json:"bytes_in"`
	BytesOut        int64   `json:"bytes_out"`
	RateIn          float64 `json:"rate_in_bytes_per_s"`
	RateOut         float64 `json:"rate_out_bytes_per_s"`
	GossipBytesIn   int64   `json:"gossip_bytes_in"`
	GossipBytesOut  int64   `json:"gossip_bytes_out"`
	RequestBytesIn  int64   `json:"request_bytes_in"`
	RequestBytesOut int64   `json:"request_bytes_out"`

	// GossipSub detail: message copies received after the first (suppressed as duplicates before
	// validation), and bytes of received control messages.
	GossipDuplicateCopies uint64 `json:"gossip_duplicate_copies"`
	GossipControlBytesIn  uint64 `json:"gossip_control_bytes_in"`

	Counters Counters    `json:"counters"`
	Queues   QueueStatus `json:"queues"`
}

// PeerStatus describes one connected peer.
type PeerStatus struct {
	ID             string    `json:"id"`
	Addrs          []string  `json:"addrs"`
	Direction      string    `json:"direction"` // inbound or outbound
	ConnectedSince time.Time `json:"connected_since"`
	Score          float64   `json:"score"`        // GossipSub peer score (updated every second)
	Misbehaviour   float64   `json:"misbehaviour"` // the node's own decaying offence score
	CaughtUp       bool      `json:"caught_up"`
	CatchingUp     bool      `json:"catching_up"`
}

// TopicStatus describes one joined gossip topic.
type TopicStatus struct {
	Name       string `json:"name"`
	Shard      uint32 `json:"shard"`
	Subscribed bool   `json:"subscribed"`
	Peers      int    `json:"peers"`      // connected peers subscribed to the topic
	MeshPeers  int    `json:"mesh_peers"` // peers in this node's GossipSub mesh for the topic
}

// BannedPeer is a peer the node refuses, and until when.
type BannedPeer struct {
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
}

// QueueStatus shows the bounded queues and how full they are.
type QueueStatus struct {
	Notify         int `json:"notify"`
	NotifyCap      int `json:"notify_cap"`
	MissingTracked int `json:"missing_tracked"`
	MissingCap     int `json:"missing_cap"`
	Inbound        int `json:"inbound_streams"`
	InboundCap     int `json:"inbound_cap"`
	CatchUpQueued  int `json:"catch_up_queued"`
	CatchUpRunning int `json:"catch_up_running"`
	SeenCache      int `json:"seen_cache"`
	SeenCacheCap   int `json:"seen_cache_cap"`
	// GossipSub's own bounded queues: RPCs dropped because a peer's outbound queue was full, and
	// messages a slow local subscription could not take.
	DroppedRPCs uint64 `json:"dropped_rpcs"`
	// Gossip validations in progress, the most seen at once, and the bound (Limits.ValidationParallel).
	Validating    int    `json:"validating"`
	ValidatingMax int    `json:"validating_max"`
	ValidatingCap int    `json:"validating_cap"`
	Undeliverable uint64 `json:"undeliverable"`
}

// Status returns a snapshot of the node.
func (n *Node) Status() Status {
	st := Status{
		PeerID:      n.host.ID().String(),
		Network:     n.params.Name,
		NetworkID:   n.params.ID.String(),
		ListenAddrs: n.Addrs(),
		Shards:      slices.Clone(n.shards),
		MDNS:        n.s.MDNS,
		DHT:         n.s.DHT,

		Reachability: n.Reachability(),
		RelayService: n.s.RelayService,
		Relays:       slices.Clone(n.s.Relays),
		RelayAddrs:   n.RelayAddrs(),
		Tips:         map[uint32]int{},
		Counters:     n.ctr.snapshot(),
	}
	n.mu.Lock()
	topics := make(map[uint32]*pubsub.Topic, len(n.topics))
	for sh, t := range n.topics {
		topics[sh] = t
	}
	n.mu.Unlock()
	for sh, t := range topics {
		name := n.topicName(sh)
		st.Topics = append(st.Topics, TopicStatus{Name: name, Shard: sh, Subscribed: containsShard(n.shards, sh),
			Peers: len(t.ListPeers()), MeshPeers: n.tracer.meshSize(name)})
	}
	slices.SortFunc(st.Topics, func(a, b TopicStatus) int { return int(a.Shard) - int(b.Shard) })
	if n.enter() {
		ds, err := n.store.Stats()
		n.leave()
		if err != nil {
			st.StoreError = err.Error()
		} else {
			st.Blocks, st.Solid, st.Unsolid, st.Missing, st.StoreBytes = ds.Blocks, ds.Solid, ds.Unsolid, ds.Missing, ds.Bytes
			for k, v := range ds.Tips {
				st.Tips[k] = v
			}
		}
	}
	bw := n.bw.GetBandwidthTotals()
	st.BytesIn, st.BytesOut, st.RateIn, st.RateOut = bw.TotalIn, bw.TotalOut, bw.RateIn, bw.RateOut
	st.GossipBytesIn, st.GossipBytesOut = n.bw.gossipIn.Load(), n.bw.gossipOut.Load()
	st.RequestBytesIn, st.RequestBytesOut = n.bw.reqIn.Load(), n.bw.reqOut.Load()
	st.GossipDuplicateCopies, st.GossipControlBytesIn = n.tracer.duplicates.Load(), n.tracer.ctrlBytesIn.Load()

	now := time.Now()
	n.mu.Lock()
	for p, ps := range n.peers {
		dir := "inbound"
		if ps.outbound {
			dir = "outbound"
		}
		st.Peers = append(st.Peers, PeerStatus{
			ID: p.String(), Direction: dir, ConnectedSince: ps.since, Score: n.scores[p],
			CaughtUp: ps.caughtUp, CatchingUp: ps.catchingUp,
		})
	}
	st.Synced = n.synced || len(n.peers) == 0
	st.Queues.Inbound = len(n.inbound)
	n.mu.Unlock()
	for i := range st.Peers {
		p := &st.Peers[i]
		id, err := decodePeer(p.ID)
		if err != nil {
			continue
		}
		p.Misbehaviour = n.misbehave.score(id, now)
		for _, c := range n.host.Network().ConnsToPeer(id) {
			p.Addrs = append(p.Addrs, c.RemoteMultiaddr().String())
			if c.Stat().Direction == network.DirOutbound {
				p.Direction = "outbound"
			}
		}
	}
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int { return strings.Compare(a.ID, b.ID) })
	for p, until := range n.gater.list() {
		st.Banned = append(st.Banned, BannedPeer{ID: p.String(), Until: until})
	}
	slices.SortFunc(st.Banned, func(a, b BannedPeer) int { return strings.Compare(a.ID, b.ID) })
	st.Queues.Notify, st.Queues.NotifyCap = len(n.notify.ch), cap(n.notify.ch)
	st.Queues.MissingTracked, st.Queues.MissingCap = n.solid.pendingCount(), n.lim.MaxMissing
	st.Queues.InboundCap = cap(n.inbound)
	st.Queues.CatchUpQueued, st.Queues.CatchUpRunning = n.catchup.counts()
	st.Queues.SeenCache, st.Queues.SeenCacheCap = n.seen.len(), n.lim.SeenCache
	st.Queues.Validating, st.Queues.ValidatingMax = int(n.validating.Load()), int(n.validatingMax.Load())
	st.Queues.ValidatingCap = n.lim.ValidationParallel
	st.Queues.DroppedRPCs, st.Queues.Undeliverable = n.tracer.droppedRPCs.Load(), n.tracer.undeliverable.Load()
	return st
}
