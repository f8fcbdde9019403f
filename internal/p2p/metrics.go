package p2p

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// bandwidth is the host's libp2p bandwidth reporter: exact byte totals (the stream payload bytes the
// swarm reports, before Noise and yamux framing), split into gossip, block requests and the rest.
// Rates are sampled by the node's maintenance loop. Nothing is kept per peer, so it does not grow.
type bandwidth struct {
	in, out             atomic.Int64
	gossipIn, gossipOut atomic.Int64
	reqIn, reqOut       atomic.Int64

	lastRecv sync.Map // peer.ID → *atomic.Int64: when a stream from the peer last gave bytes (Unix ns)

	mu              sync.Mutex
	lastIn, lastOut int64
	lastAt          time.Time
	rateIn, rateOut float64
}

var _ metrics.Reporter = (*bandwidth)(nil)

// heardFrom is how long ago a stream from p last gave bytes (a large value if never).
func (b *bandwidth) heardFrom(p peer.ID) time.Duration {
	if v, ok := b.lastRecv.Load(p); ok {
		return time.Since(time.Unix(0, v.(*atomic.Int64).Load()))
	}
	return time.Duration(1<<63 - 1)
}

func protoClass(p protocol.ID) int {
	s := string(p)
	switch {
	case strings.HasPrefix(s, "/meshsub/"):
		return 1
	case strings.HasPrefix(s, "/tanglemail/") && strings.HasSuffix(s, "/blocks/1"):
		return 2
	}
	return 0
}

func (b *bandwidth) LogSentMessage(n int64) { b.out.Add(n) }
func (b *bandwidth) LogRecvMessage(n int64) { b.in.Add(n) }
func (b *bandwidth) LogSentMessageStream(n int64, p protocol.ID, _ peer.ID) {
	switch protoClass(p) {
	case 1:
		b.gossipOut.Add(n)
	case 2:
		b.reqOut.Add(n)
	}
}
func (b *bandwidth) LogRecvMessageStream(n int64, p protocol.ID, from peer.ID) {
	v, ok := b.lastRecv.Load(from)
	if !ok {
		v, _ = b.lastRecv.LoadOrStore(from, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(time.Now().UnixNano())
	switch protoClass(p) {
	case 1:
		b.gossipIn.Add(n)
	case 2:
		b.reqIn.Add(n)
	}
}
func (b *bandwidth) GetBandwidthForPeer(peer.ID) metrics.Stats         { return metrics.Stats{} }
func (b *bandwidth) GetBandwidthForProtocol(protocol.ID) metrics.Stats { return metrics.Stats{} }
func (b *bandwidth) GetBandwidthTotals() metrics.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return metrics.Stats{TotalIn: b.in.Load(), TotalOut: b.out.Load(), RateIn: b.rateIn, RateOut: b.rateOut}
}
func (b *bandwidth) GetBandwidthByPeer() map[peer.ID]metrics.Stats         { return nil }
func (b *bandwidth) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats { return nil }
func (b *bandwidth) Reset()                                                {}
func (b *bandwidth) TrimIdle(time.Time)                                    {}

// sample updates the rates from the totals since the previous sample.
func (b *bandwidth) sample(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, out := b.in.Load(), b.out.Load()
	if !b.lastAt.IsZero() {
		if dt := now.Sub(b.lastAt).Seconds(); dt > 0 {
			b.rateIn = float64(in-b.lastIn) / dt
			b.rateOut = float64(out-b.lastOut) / dt
		}
	}
	b.lastIn, b.lastOut, b.lastAt = in, out, now
}

// counters are the node's event counters (monotonic). They are exported through Status.
type counters struct {
	gossipReceived    atomic.Uint64
	gossipAccepted    atomic.Uint64
	gossipDuplicate   atomic.Uint64
	gossipRateLimited atomic.Uint64
	gossipRejected    atomic.Uint64
	gossipStoreErrors atomic.Uint64

	published atomic.Uint64
	stored    atomic.Uint64 // newly stored blocks, any path

	requestsSent    atomic.Uint64
	requestsFailed  atomic.Uint64
	requestsServed  atomic.Uint64
	requestsRefused atomic.Uint64
	fetched         atomic.Uint64 // newly stored through get-blocks (solidification and catch-up)
	fetchInvalid    atomic.Uint64 // invalid or unsolicited blocks in responses
	solidifyAsked   atomic.Uint64
	solidifyGivenUp atomic.Uint64
	regossiped      atomic.Uint64

	catchUps       atomic.Uint64
	catchUpsFailed atomic.Uint64
	catchUpBlocks  atomic.Uint64
	antiEntropy    atomic.Uint64
	announcesSent  atomic.Uint64
	announcesRecv  atomic.Uint64

	peersBanned atomic.Uint64
	redials     atomic.Uint64 // re-dials of known peers started
	deadLinks   atomic.Uint64 // connections closed for unanswered pings

	rejectMu sync.Mutex
	rejected map[string]uint64 // by reason
}

func (c *counters) reject(reason string) {
	c.rejectMu.Lock()
	if c.rejected == nil {
		c.rejected = make(map[string]uint64)
	}
	c.rejected[reason]++
	c.rejectMu.Unlock()
}

// Counters is a snapshot of the node's event counters since start.
type Counters struct {
	GossipReceived    uint64            `json:"gossip_received"`     // blocks that reached the validator from a peer
	GossipAccepted    uint64            `json:"gossip_accepted"`     // valid, stored and forwarded
	GossipDuplicate   uint64            `json:"gossip_duplicate"`    // already stored (not forwarded)
	GossipRateLimited uint64            `json:"gossip_rate_limited"` // over the sender's budget (ignored)
	GossipRejected    uint64            `json:"gossip_rejected"`     // invalid (sender penalised)
	GossipStoreErrors uint64            `json:"gossip_store_errors"` // store failures while validating
	RejectedByReason  map[string]uint64 `json:"rejected_by_reason"`  // size, version, network, pow, malformed, ...
	Published         uint64            `json:"published"`           // blocks published by this node
	Stored            uint64            `json:"stored"`              // newly stored blocks, any path
	RequestsSent      uint64            `json:"requests_sent"`
	RequestsFailed    uint64            `json:"requests_failed"`
	RequestsServed    uint64            `json:"requests_served"`
	RequestsRefused   uint64            `json:"requests_refused"` // busy or malformed
	Fetched           uint64            `json:"fetched"`          // newly stored from responses
	FetchInvalid      uint64            `json:"fetch_invalid"`    // invalid or unsolicited blocks in responses
	SolidifyAsked     uint64            `json:"solidify_asked"`   // missing-parent requests sent (ids)
	SolidifyGivenUp   uint64            `json:"solidify_given_up"`
	Regossiped        uint64            `json:"regossiped"` // fresh fetched parents relayed on gossip
	CatchUps          uint64            `json:"catch_ups"`  // completed catch-up sessions
	CatchUpsFailed    uint64            `json:"catch_ups_failed"`
	CatchUpBlocks     uint64            `json:"catch_up_blocks"` // newly stored by catch-up and anti-entropy
	AntiEntropy       uint64            `json:"anti_entropy"`    // completed anti-entropy rounds
	AnnouncesSent     uint64            `json:"announces_sent"`
	AnnouncesReceived uint64            `json:"announces_received"`
	PeersBanned       uint64            `json:"peers_banned"`
	Redials           uint64            `json:"redials"`    // re-dials of known peers started
	DeadLinks         uint64            `json:"dead_links"` // connections closed for unanswered pings
}

func (c *counters) snapshot() Counters {
	s := Counters{
		GossipReceived:    c.gossipReceived.Load(),
		GossipAccepted:    c.gossipAccepted.Load(),
		GossipDuplicate:   c.gossipDuplicate.Load(),
		GossipRateLimited: c.gossipRateLimited.Load(),
		GossipRejected:    c.gossipRejected.Load(),
		GossipStoreErrors: c.gossipStoreErrors.Load(),
		Published:         c.published.Load(),
		Stored:            c.stored.Load(),
		RequestsSent:      c.requestsSent.Load(),
		RequestsFailed:    c.requestsFailed.Load(),
		RequestsServed:    c.requestsServed.Load(),
		RequestsRefused:   c.requestsRefused.Load(),
		Fetched:           c.fetched.Load(),
		FetchInvalid:      c.fetchInvalid.Load(),
		SolidifyAsked:     c.solidifyAsked.Load(),
		SolidifyGivenUp:   c.solidifyGivenUp.Load(),
		Regossiped:        c.regossiped.Load(),
		CatchUps:          c.catchUps.Load(),
		CatchUpsFailed:    c.catchUpsFailed.Load(),
		CatchUpBlocks:     c.catchUpBlocks.Load(),
		AntiEntropy:       c.antiEntropy.Load(),
		AnnouncesSent:     c.announcesSent.Load(),
		AnnouncesReceived: c.announcesRecv.Load(),
		PeersBanned:       c.peersBanned.Load(),
		Redials:           c.redials.Load(),
		DeadLinks:         c.deadLinks.Load(),
		RejectedByReason:  map[string]uint64{},
	}
	c.rejectMu.Lock()
	for k, v := range c.rejected {
		s.RejectedByReason[k] = v
	}
	c.rejectMu.Unlock()
	return s
}
