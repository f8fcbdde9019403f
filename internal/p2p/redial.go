package p2p

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// Healing after a partition (a laptop that slept, a link that went down):
//
//   - Both sides remember the peers they knew: the peer table keeps each peer's addresses (the address
//     the node dialled, and the listen addresses the peer announced in identify) next to its last
//     contact time, in the peers file across restarts.
//   - Both sides re-dial them: the bootstrap peers and the Limits.RedialPeers most recently seen peers
//     (within Limits.RedialWindow) whenever they are not connected, whether or not the node has other
//     peers. The back-off per peer starts at 1 s and doubles up to Limits.RedialBackoffMax (5 s), and
//     libp2p's own dial back-off (which grows to minutes) is bypassed for these dials.
//   - Every back-off is reset, and a round dialled at once, when a link comes back (any peer connects)
//     or the local network changes (the interfaces' names, flags and addresses, polled every second).
//   - A dead link is noticed within Limits.PingTimeout + 1 s (7 s): every connected peer is pinged
//     with libp2p's ping protocol every Limits.PingInterval, so a live one keeps sending bytes, and a
//     connection from which nothing at all has arrived for PingTimeout is closed, so nothing is
//     published into a link that is gone and the re-dialling starts. Any bytes count, not only ping
//     answers, so a busy peer that answers pings late keeps its link.
//
// A re-dial that connects is followed by the usual catch-up from the last contact, so what was published
// on either side during the partition crosses within seconds of the link's return.

// maxPeerAddrs bounds the addresses kept per peer (the peer chooses what identify announces).
const maxPeerAddrs = 8

// redialer is the re-dial state: a back-off per peer not connected, the pings in flight and the last
// fingerprint of the local network. Its lock is never held across I/O.
type redialer struct {
	mu      sync.Mutex
	state   map[peer.ID]*redialState
	pinging map[peer.ID]bool
	netSeen string // fingerprint of the local interfaces
}

type redialState struct {
	backoff time.Duration // the last wait
	next    time.Time     // no dial before
	busy    bool          // a dial is in flight
}

func newRedialer() *redialer {
	return &redialer{state: make(map[peer.ID]*redialState), pinging: make(map[peer.ID]bool)}
}

// resetAll makes every peer due now, with its back-off back to the start.
func (r *redialer) resetAll() {
	r.mu.Lock()
	for _, st := range r.state {
		st.backoff, st.next = 0, time.Time{}
	}
	r.mu.Unlock()
}

// connected forgets p's back-off: it is connected. A link came back, so every other back-off starts
// again too.
func (r *redialer) connected(p peer.ID) {
	r.mu.Lock()
	delete(r.state, p)
	for _, st := range r.state {
		st.backoff, st.next = 0, time.Time{}
	}
	r.mu.Unlock()
}

// start claims a dial of p if one is due at now.
func (r *redialer) start(p peer.ID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state[p]
	if st == nil {
		st = &redialState{}
		r.state[p] = st
	}
	if st.busy || now.Before(st.next) {
		return false
	}
	st.busy = true
	return true
}

// failed records a failed dial of p: the next one waits twice as long as the last, at most max.
func (r *redialer) failed(p peer.ID, now time.Time, ceiling time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state[p]
	if st == nil {
		return
	}
	st.busy = false
	st.backoff = min(ceiling, max(time.Second, 2*st.backoff))
	st.next = now.Add(st.backoff)
}

// done ends a dial that connected (connected already reset the state) or was abandoned.
func (r *redialer) done(p peer.ID) {
	r.mu.Lock()
	if st := r.state[p]; st != nil {
		st.busy = false
	}
	r.mu.Unlock()
}

// keep drops the state of peers no longer candidates.
func (r *redialer) keep(cands map[peer.ID]bool) {
	r.mu.Lock()
	for p, st := range r.state {
		if !cands[p] && !st.busy {
			delete(r.state, p)
		}
	}
	r.mu.Unlock()
}

// networkChanged reports whether the local interfaces differ from the last call's (false on the first).
func (r *redialer) networkChanged() bool {
	fp := netFingerprint()
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := r.netSeen != "" && fp != r.netSeen
	r.netSeen = fp
	return changed
}

// netFingerprint describes the local interfaces: names, flags (up, running: the link's carrier) and
// addresses.
func netFingerprint() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, ifc := range ifs {
		fmt.Fprintf(&b, "%s %v", ifc.Name, ifc.Flags)
		if addrs, err := ifc.Addrs(); err == nil {
			for _, a := range addrs {
				b.WriteString(" " + a.String())
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// redialCandidates are the bootstrap peers and the most recently seen peers of the peer table that may
// be re-dialled now: not connected, not banned, with addresses.
func (n *Node) redialCandidates(now time.Time) []peer.AddrInfo {
	type kv struct {
		p peer.ID
		t int64
	}
	floor := now.Add(-n.lim.RedialWindow).UnixMilli()
	n.mu.Lock()
	recent := make([]kv, 0, len(n.peerAddrs))
	for p, addrs := range n.peerAddrs {
		if t, ok := n.peerTable[p]; ok && t >= floor && len(addrs) > 0 {
			recent = append(recent, kv{p, t})
		}
	}
	slices.SortFunc(recent, func(a, b kv) int {
		if a.t != b.t {
			return int(b.t - a.t)
		}
		return strings.Compare(string(a.p), string(b.p))
	})
	if len(recent) > n.lim.RedialPeers {
		recent = recent[:n.lim.RedialPeers]
	}
	out := make([]peer.AddrInfo, 0, len(recent)+len(n.bootstrap))
	seen := make(map[peer.ID]bool)
	for _, e := range recent {
		seen[e.p] = true
		out = append(out, peer.AddrInfo{ID: e.p, Addrs: slices.Clone(n.peerAddrs[e.p])})
	}
	n.mu.Unlock()
	for _, ai := range n.bootstrap {
		if !seen[ai.ID] {
			seen[ai.ID] = true
			out = append(out, ai)
		}
	}
	self := n.host.ID()
	return slices.DeleteFunc(out, func(ai peer.AddrInfo) bool {
		return ai.ID == self || n.gater.isBanned(ai.ID) ||
			n.host.Network().Connectedness(ai.ID) == network.Connected
	})
}

// redialRound starts the due re-dials (one maintenance tick).
func (n *Node) redialRound(now time.Time) {
	if n.redial.networkChanged() {
		n.log.Info("p2p: local network changed; re-dialling known peers now")
		n.redial.resetAll()
	}
	cands := n.redialCandidates(now)
	keep := make(map[peer.ID]bool, len(cands))
	for _, ai := range cands {
		keep[ai.ID] = true
		if !n.redial.start(ai.ID, now) {
			continue
		}
		n.ctr.redials.Add(1)
		n.spawn(func() {
			ctx, cancel := context.WithTimeout(n.ctx, n.lim.DialTimeout)
			defer cancel()
			// Past libp2p's own per-address back-off, which grows to minutes: ours is capped low.
			ctx = network.WithForceDirectDial(ctx, "re-dial a known peer")
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Debug("p2p: re-dial failed", "peer", ai.ID.String(), "err", err)
				n.redial.failed(ai.ID, time.Now(), n.lim.RedialBackoffMax)
				return
			}
			n.redial.done(ai.ID)
		})
	}
	n.redial.keep(keep)
}

// pingRound closes the connections of peers from which nothing has arrived for Limits.PingTimeout
// (counted from the connect), and, when sendPings is true, pings every connected peer that has no ping in
// flight. A live peer answers, so its bytes keep arriving even when nothing else is sent; the ping's own
// result does not matter. Run every second, it notices a dead link within PingTimeout + 1 s.
func (n *Node) pingRound(sendPings bool) {
	for _, p := range n.connectedPeers() {
		quiet := n.bw.heardFrom(p)
		n.mu.Lock()
		if ps := n.peers[p]; ps != nil {
			quiet = min(quiet, time.Since(ps.since))
		}
		n.mu.Unlock()
		if quiet > n.lim.PingTimeout {
			n.ctr.deadLinks.Add(1)
			n.log.Info("p2p: nothing heard from peer; closing the link", "peer", p.String(), "quiet", quiet.Round(time.Millisecond))
			n.spawn(func() { _ = n.host.Network().ClosePeer(p) })
			continue
		}
		if !sendPings {
			continue
		}
		n.redial.mu.Lock()
		busy := n.redial.pinging[p]
		n.redial.pinging[p] = true
		n.redial.mu.Unlock()
		if busy {
			continue
		}
		n.spawn(func() {
			defer func() {
				n.redial.mu.Lock()
				delete(n.redial.pinging, p)
				n.redial.mu.Unlock()
			}()
			ctx, cancel := context.WithTimeout(n.ctx, n.lim.PingTimeout)
			defer cancel()
			select {
			case <-ping.Ping(ctx, n.host, p):
			case <-ctx.Done():
			}
		})
	}
}

// learnAddrs records the listen addresses peers announce in identify, so that the node can dial back
// a peer that dialled it.
func (n *Node) learnAddrs(ctx context.Context, sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerIdentificationCompleted)
			if !ok {
				continue
			}
			if ev.AgentVersion == clientAgent {
				n.forgetClient(ev.Peer)
				continue
			}
			n.addPeerAddrs(ev.Peer, false, ev.ListenAddrs...)
		}
	}
}

// addPeerAddrs adds dialable addresses of p to the peer table: first (the address the node just
// dialled) in front, others after the known ones; at most maxPeerAddrs are kept.
func (n *Node) addPeerAddrs(p peer.ID, first bool, addrs ...ma.Multiaddr) {
	var good []ma.Multiaddr
	for _, a := range addrs {
		if a == nil || !dialable(a) {
			continue
		}
		if _, id := peer.SplitAddr(a); id != "" {
			a, _ = peer.SplitAddr(a)
		}
		good = append(good, a)
	}
	if len(good) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.peerAddrs[p]
	var all []ma.Multiaddr
	if first {
		all = append(append(all, good...), old...)
	} else {
		all = append(append(all, old...), good...)
	}
	out := make([]ma.Multiaddr, 0, maxPeerAddrs)
	for _, a := range all {
		if len(out) == maxPeerAddrs {
			break
		}
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	if !slices.EqualFunc(out, old, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
		n.peerAddrs[p] = out
		n.peersDirty = true
	}
	if _, ok := n.peerTable[p]; !ok {
		n.peerTable[p] = n.now().UnixMilli()
	}
}

// dialable is false for addresses nobody can dial: unspecified IPs (0.0.0.0, ::), and circuit relays
// (the node runs no relay).
func dialable(a ma.Multiaddr) bool {
	ok := true
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_IP4, ma.P_IP6:
			if ip := net.IP(c.RawValue()); ip.IsUnspecified() {
				ok = false
			}
		case ma.P_CIRCUIT:
			ok = false
		}
		return ok
	})
	return ok
}
