package p2p

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// maxTrackedPeers bounds every per-peer map below; beyond it the stalest entries are dropped.
const maxTrackedPeers = 4096

// bucket is a token bucket: rate tokens per second, at most burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// peerBuckets is a token bucket per peer.
type peerBuckets struct {
	mu    sync.Mutex
	rate  float64
	burst float64
	m     map[peer.ID]*bucket
}

func newPeerBuckets(rate float64, burst int) *peerBuckets {
	return &peerBuckets{rate: rate, burst: float64(burst), m: make(map[peer.ID]*bucket)}
}

// allow takes one token from p's bucket at now; false when the bucket is empty.
func (pb *peerBuckets) allow(p peer.ID, now time.Time) bool {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	b := pb.m[p]
	if b == nil {
		if len(pb.m) >= maxTrackedPeers {
			pb.evictFull(now)
		}
		b = &bucket{tokens: pb.burst, last: now}
		pb.m[p] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(pb.burst, b.tokens+el*pb.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// evictFull drops buckets that have refilled completely (they carry no state). Called with mu held.
func (pb *peerBuckets) evictFull(now time.Time) {
	for p, b := range pb.m {
		if b.tokens+now.Sub(b.last).Seconds()*pb.rate >= pb.burst {
			delete(pb.m, p)
		}
	}
	if len(pb.m) >= maxTrackedPeers { // all busy: drop arbitrary ones rather than grow
		for p := range pb.m {
			delete(pb.m, p)
			if len(pb.m) < maxTrackedPeers/2 {
				break
			}
		}
	}
}

func (pb *peerBuckets) forget(p peer.ID) {
	pb.mu.Lock()
	delete(pb.m, p)
	pb.mu.Unlock()
}

// misbehaviour keeps an exponentially decaying score of each peer's offences (invalid blocks, unsolicited
// or invalid responses). It feeds GossipSub's application-specific score and decides bans.
type misbehaviour struct {
	mu       sync.Mutex
	halfLife time.Duration
	m        map[peer.ID]*decayed
}

type decayed struct {
	v  float64
	at time.Time
}

func (d *decayed) value(now time.Time, halfLife time.Duration) float64 {
	el := now.Sub(d.at)
	if el <= 0 || halfLife <= 0 {
		return d.v
	}
	return d.v * math.Exp2(-el.Seconds()/halfLife.Seconds())
}

func newMisbehaviour(halfLife time.Duration) *misbehaviour {
	return &misbehaviour{halfLife: halfLife, m: make(map[peer.ID]*decayed)}
}

// add adds w to p's score and returns the new score.
func (mb *misbehaviour) add(p peer.ID, w float64, now time.Time) float64 {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	d := mb.m[p]
	if d == nil {
		if len(mb.m) >= maxTrackedPeers {
			mb.gc(now)
		}
		d = &decayed{at: now}
		mb.m[p] = d
	}
	d.v = d.value(now, mb.halfLife) + w
	d.at = now
	return d.v
}

func (mb *misbehaviour) score(p peer.ID, now time.Time) float64 {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if d := mb.m[p]; d != nil {
		return d.value(now, mb.halfLife)
	}
	return 0
}

// gc drops scores that decayed below 1% of one offence. Called with mu held.
func (mb *misbehaviour) gc(now time.Time) {
	for p, d := range mb.m {
		if d.value(now, mb.halfLife) < 0.01 {
			delete(mb.m, p)
		}
	}
	if len(mb.m) >= maxTrackedPeers {
		for p := range mb.m {
			delete(mb.m, p)
			if len(mb.m) < maxTrackedPeers/2 {
				break
			}
		}
	}
}

// gater refuses connections to and from banned peers (libp2p connmgr.ConnectionGater).
type gater struct {
	mu     sync.Mutex
	banned map[peer.ID]time.Time // until
	now    func() time.Time
	// refuseInbound refuses inbound connections that are not relayed: a simulated NAT (tests).
	refuseInbound bool
}

func newGater() *gater {
	return &gater{banned: make(map[peer.ID]time.Time), now: time.Now}
}

func (g *gater) ban(p peer.ID, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.banned) >= maxTrackedPeers {
		g.gcLocked()
	}
	if until.After(g.banned[p]) {
		g.banned[p] = until
	}
}

func (g *gater) unban(p peer.ID) {
	g.mu.Lock()
	delete(g.banned, p)
	g.mu.Unlock()
}

func (g *gater) isBanned(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.banned[p]
	if !ok {
		return false
	}
	if !g.now().Before(until) {
		delete(g.banned, p)
		return false
	}
	return true
}

// list returns the banned peers and until when.
func (g *gater) list() map[peer.ID]time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gcLocked()
	out := make(map[peer.ID]time.Time, len(g.banned))
	for p, t := range g.banned {
		out[p] = t
	}
	return out
}

func (g *gater) gcLocked() {
	now := g.now()
	for p, until := range g.banned {
		if !now.Before(until) {
			delete(g.banned, p)
		}
	}
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return !g.isBanned(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isBanned(p) }
func (g *gater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return !g.refuseInbound || isCircuit(c)
}
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	if g.refuseInbound && dir == network.DirInbound && !isCircuit(c) {
		return false
	}
	return !g.isBanned(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// idSet is a bounded set of recently handled block ids, evicted first in, first out. It grows as ids
// arrive, up to capacity: a node that handles few blocks does not hold the whole capacity (7 MiB at the
// default SeenCache, which doubled the Go heap of an idle node and so its GC headroom).
type idSet struct {
	mu       sync.Mutex
	m        map[tangle.ID]struct{}
	ring     []tangle.ID
	next     int
	capacity int
}

func newIDSet(capacity int) *idSet {
	if capacity < 1 {
		capacity = 1
	}
	return &idSet{m: map[tangle.ID]struct{}{}, capacity: capacity}
}

func (s *idSet) has(id tangle.ID) bool {
	s.mu.Lock()
	_, ok := s.m[id]
	s.mu.Unlock()
	return ok
}

// add inserts id; it reports false when id was already present.
func (s *idSet) add(id tangle.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return false
	}
	if len(s.ring) < s.capacity {
		if len(s.ring) == cap(s.ring) { // grow by doubling, never past capacity
			r := make([]tangle.ID, len(s.ring), min(max(2*cap(s.ring), 64), s.capacity))
			s.ring = r[:copy(r, s.ring)]
		}
		s.ring = append(s.ring, id)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % len(s.ring)
	}
	s.m[id] = struct{}{}
	return true
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
