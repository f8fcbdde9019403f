package p2p

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Circuit relay and NAT traversal (docs/threat-model.md, "Storage, public and relay nodes").
//
// A public node (Config.RelayService) is reachable by definition: its reachability is fixed to public,
// it runs the circuit relay v2 service (libp2p's /libp2p/circuit/relay/0.2.0/hop) with the bounds of
// Limits (reservations in all, per IP, circuits per peer, reservation lifetime, buffer), and the AutoNAT
// v1 and v2 services that tell other nodes whether they are reachable.
//
// Every other node can dial relayed addresses (the circuit client transport) and accept relayed
// connections from relays it holds a reservation on; it learns its reachability by AutoNAT (asking
// public nodes to dial it back) unless Config.Reachability fixes it; while it is not public and
// Config.Relays names public nodes (static relays), it holds a reservation on each (reserveLoop:
// reserve, refresh at half the reservation's lifetime, again at once when the connection to the relay
// drops, back off on refusal) and advertises <relay>/p2p-circuit/p2p/<self> addresses (AddrsFactory,
// so identify and the DHT carry them); and hole punching (DCUtR) tries to turn a relayed connection
// into a direct one. libp2p's AutoRelay does the same for static relays but keeps only relays' public
// addresses, so nothing of it shows on a LAN or in a loopback test; the reservation loop is its
// static-relay part, about a hundred lines, with the relay addresses visible in Status. Relayed connections carry no per-connection time or data limit (a
// limited connection would carry no gossip, so a node behind a NAT whose hole cannot be punched would
// get no mail); the relay bounds what it spends by the number of circuits and reservations instead.

// Reachability values of Config.Reachability and Status.Reachability.
const (
	ReachabilityUnknown = "unknown"
	ReachabilityPublic  = "public"
	ReachabilityPrivate = "private"
)

func reachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return ReachabilityPublic
	case network.ReachabilityPrivate:
		return ReachabilityPrivate
	}
	return ReachabilityUnknown
}

// relayOptions are the libp2p options for relaying and NAT traversal of settings s, with the static
// relays parsed.
func relayOptions(s settings) ([]libp2p.Option, error) {
	opts := []libp2p.Option{libp2p.EnableRelay()} // the circuit client transport: dial and accept relayed conns
	if s.RelayService {
		if s.Reachability != "" && s.Reachability != ReachabilityPublic {
			return nil, fmt.Errorf("p2p: a relay service runs on a public node; reachability %q contradicts it", s.Reachability)
		}
		// The relay itself is started on the host in startRelayService, whatever AutoNAT says.
		return append(opts, libp2p.ForceReachabilityPublic(), libp2p.EnableNATService(), libp2p.EnableAutoNATv2()), nil
	}
	switch s.Reachability {
	case "":
		// AutoNAT v1 client (libp2p's default when reachability is not forced).
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	default:
		return nil, fmt.Errorf("p2p: reachability %q: want public, private or empty (detect)", s.Reachability)
	}
	if _, err := parseAddrs(s.Relays); err != nil {
		return nil, fmt.Errorf("p2p: relay: %w", err)
	}
	return append(opts, libp2p.EnableHolePunching()), nil
}

// relayAddrsFactory adds the node's relayed addresses to those it advertises.
func (n *Node) relayAddrsFactory(addrs []ma.Multiaddr) []ma.Multiaddr {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	for _, rs := range n.rsv {
		for _, a := range rs {
			if !slices.ContainsFunc(addrs, a.Equal) {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

// reserveLoop holds a reservation on every static relay while the node is not publicly reachable.
func (n *Node) reserveLoop(relays []peer.AddrInfo) {
	type state struct {
		next     time.Time
		failures int
	}
	st := make(map[peer.ID]*state, len(relays))
	for _, r := range relays {
		st[r.ID] = &state{}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := time.Now()
		public := n.reach.Load() == int32(network.ReachabilityPublic)
		for _, r := range relays {
			s := st[r.ID]
			held := n.host.Network().Connectedness(r.ID) == network.Connected && n.hasReservation(r.ID)
			switch {
			case public:
				n.setReservation(r.ID, nil)
				continue
			case held && now.Before(s.next):
				continue
			case !held && s.failures > 0 && now.Before(s.next):
				continue // backing off
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.lim.DialTimeout+n.lim.RequestTimeout)
			rsvp, err := n.reserve(ctx, r)
			cancel()
			if n.ctx.Err() != nil {
				return
			}
			if err != nil {
				s.failures++
				s.next = now.Add(min(time.Second<<min(s.failures-1, 6), time.Minute))
				n.setReservation(r.ID, nil)
				n.log.Debug("relay reservation failed", "relay", r.ID.String(), "err", err)
				continue
			}
			s.failures = 0
			s.next = now.Add(max(time.Until(rsvp.Expiration)/2, time.Second))
			n.setReservation(r.ID, circuitAddrs(r, rsvp))
			n.log.Debug("relay reservation", "relay", r.ID.String(), "expires", rsvp.Expiration)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n *Node) reserve(ctx context.Context, r peer.AddrInfo) (*client.Reservation, error) {
	if err := n.host.Connect(ctx, r); err != nil {
		return nil, err
	}
	return client.Reserve(ctx, n.host, r)
}

// circuitAddrs are the addresses at which peers reach this node through relay r, in the form a host
// advertises (without its own /p2p/<id>, as libp2p's AutoRelay writes them): the relay's addresses (those
// configured and those the reservation vouches for) followed by /p2p/<relay id>/p2p-circuit.
func circuitAddrs(r peer.AddrInfo, rsvp *client.Reservation) []ma.Multiaddr {
	suffix := ma.StringCast("/p2p-circuit")
	var out []ma.Multiaddr
	add := func(a ma.Multiaddr) {
		if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
			a = a.Encapsulate(ma.StringCast("/p2p/" + r.ID.String()))
		}
		c := a.Encapsulate(suffix)
		if !slices.ContainsFunc(out, c.Equal) {
			out = append(out, c)
		}
	}
	for _, a := range r.Addrs {
		add(a)
	}
	for _, a := range rsvp.Addrs {
		add(a)
	}
	return out
}

func (n *Node) hasReservation(p peer.ID) bool {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	return len(n.rsv[p]) > 0
}

func (n *Node) setReservation(p peer.ID, addrs []ma.Multiaddr) {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if len(addrs) == 0 {
		delete(n.rsv, p)
		return
	}
	if n.rsv == nil {
		n.rsv = map[peer.ID][]ma.Multiaddr{}
	}
	n.rsv[p] = addrs
}

// startRelayService runs the circuit relay v2 service on the host of a public node.
func (n *Node) startRelayService() error {
	if !n.s.RelayService {
		return nil
	}
	rc := relayv2.DefaultResources()
	rc.Limit = nil // see above: relayed connections must carry gossip
	d := DefaultLimits()
	rc.MaxReservations = cmp.Or(n.lim.RelayMaxReservations, d.RelayMaxReservations)
	rc.MaxReservationsPerIP = cmp.Or(n.lim.RelayMaxReservationsPerIP, d.RelayMaxReservationsPerIP)
	rc.MaxCircuits = cmp.Or(n.lim.RelayMaxCircuits, d.RelayMaxCircuits)
	rc.ReservationTTL = cmp.Or(n.lim.RelayReservationTTL, d.RelayReservationTTL)
	opts := []relayv2.Option{relayv2.WithResources(rc)}
	if n.s.relayAnyAddr {
		// Tests on loopback: the reservation lists the relay's addresses, which are not public.
		opts = append(opts, relayv2.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
	}
	r, err := relayv2.New(n.host, opts...)
	if err != nil {
		return fmt.Errorf("p2p: relay service: %w", err)
	}
	n.relay = r
	return nil
}

// watchReachability keeps n.reach up to date from the host's reachability events.
func (n *Node) watchReachability() error {
	switch {
	case n.s.RelayService || n.s.Reachability == ReachabilityPublic:
		n.reach.Store(int32(network.ReachabilityPublic))
	case n.s.Reachability == ReachabilityPrivate:
		n.reach.Store(int32(network.ReachabilityPrivate))
	}
	sub, err := n.host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("p2p: reachability events: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				n.reach.Store(int32(r))
				n.log.Info("reachability", "now", reachabilityString(r))
			}
		}
	}()
	return nil
}

// Reachability is the node's reachability as AutoNAT (or the configuration) says: public, private or
// unknown.
func (n *Node) Reachability() string {
	return reachabilityString(network.Reachability(n.reach.Load()))
}

// RelayAddrs are the node's relayed addresses (through a relay it holds a reservation on), each ending in
// /p2p-circuit/p2p/<peer id>.
func (n *Node) RelayAddrs() []string {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	var out []string
	for _, rs := range n.rsv {
		for _, a := range rs {
			out = append(out, a.String()+"/p2p/"+n.host.ID().String())
		}
	}
	slices.Sort(out)
	return out
}

// relayState is the part of Node for relaying (in Node: relay, reach).
type relayState struct {
	relay *relayv2.Relay // the relay service of a public node, nil otherwise
	reach atomic.Int32   // network.Reachability

	rmu sync.Mutex
	rsv map[peer.ID][]ma.Multiaddr // static relay → our circuit addresses through it, while reserved
}

func (r *relayState) closeRelay() error {
	if r.relay == nil {
		return nil
	}
	return r.relay.Close()
}

// isCircuit reports whether a connection's remote address is relayed.
func isCircuit(c network.ConnMultiaddrs) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
