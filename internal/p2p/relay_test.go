package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// simulatedNAT makes a node refuse every inbound connection that is not relayed, as a home router does.
func simulatedNAT(s *settings) { s.refuseInbound = true }

// relayOnLoopback lets a relay service on loopback name its (non-public) addresses in reservations.
func relayOnLoopback(s *settings) { s.relayAnyAddr = true }

// TestRelayReachesNodeBehindNAT: a node behind a simulated NAT (it accepts no inbound connection that is
// not relayed) cannot be dialled directly; it reserves a slot on a public node's relay (its static
// relay), shows the relayed address and its reachability in its status, and a third node dials it at
// the relayed address and delivers a block to it over that connection. The relay runs another network,
// so that it cannot carry the block by gossip itself: the relayed connection is the only path.
func TestRelayReachesNodeBehindNAT(t *testing.T) {
	params := tangle.BenchNet
	relay := startNode(t, tangle.DevNet, newMemStore(tangle.DevNet), tcpOnly, WithRelayService(true), relayOnLoopback)
	nated := startNode(t, params, newMemStore(params), tcpOnly, simulatedNAT,
		WithRelays(relay.Addrs()[0]), WithReachability(ReachabilityPrivate))
	got := record(nated)
	sender := startNode(t, params, newMemStore(params), tcpOnly)

	if st := relay.Status(); st.Reachability != ReachabilityPublic || !st.RelayService {
		t.Fatalf("relay status: reachability %q, relay service %v", st.Reachability, st.RelayService)
	}

	// Dialled directly, the node behind the NAT refuses.
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	for _, a := range nated.Addrs() {
		if strings.Contains(a, "/p2p-circuit") {
			continue // advertised once the reservation is made
		}
		if err := sender.Connect(ctx, a); err == nil {
			t.Fatalf("the node behind the simulated NAT accepted a direct connection at %s", a)
		}
	}
	if n := len(sender.host.Network().ConnsToPeer(nated.host.ID())); n != 0 {
		t.Fatalf("%d connections to the node behind the NAT before dialling the relayed address", n)
	}

	waitFor(t, convergeTimeout, "a relayed address", func() bool { return len(nated.RelayAddrs()) > 0 })
	st := nated.Status()
	if st.Reachability != ReachabilityPrivate || len(st.RelayAddrs) == 0 || len(st.Relays) != 1 {
		t.Fatalf("status behind NAT: reachability %q, relay addrs %v, relays %v", st.Reachability, st.RelayAddrs, st.Relays)
	}
	raddr := st.RelayAddrs[0]
	if !strings.Contains(raddr, relay.host.ID().String()+"/p2p-circuit/p2p/"+nated.host.ID().String()) {
		t.Fatalf("relayed address %s does not go through the relay", raddr)
	}

	if err := sender.Connect(ctx, raddr); err != nil {
		t.Fatalf("dial the relayed address: %v", err)
	}
	conns := sender.host.Network().ConnsToPeer(nated.host.ID())
	if len(conns) == 0 || !isCircuit(conns[0]) {
		t.Fatalf("connections to the node behind NAT: %v, want a relayed one", conns)
	}
	if c := conns[0]; c.Stat().Limited {
		t.Fatal("the relayed connection is limited: it would carry no gossip")
	}

	// Gossip over the relayed connection: wait until they see each other on the topic, then publish.
	waitFor(t, meshTimeout, "the peers to meet on the gossip topic", func() bool {
		for _, tp := range sender.Status().Topics {
			if tp.Peers > 0 {
				return true
			}
		}
		return false
	})
	b := makeBlock(t, params, nil, 2048, time.Now())
	if err := sender.Publish(context.Background(), b); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, convergeTimeout, "the block behind the NAT", func() bool { return got.hasAll([]tangle.ID{b.ID()}) })
	if has, _ := relay.store.Has(b.ID()); has {
		t.Fatal("the relay has the block: it went another way")
	}
	direct := 0
	for _, c := range sender.host.Network().ConnsToPeer(nated.host.ID()) {
		if !isCircuit(c) {
			direct++
		}
	}
	t.Logf("delivered; %d direct connection(s) besides the relayed one (hole punching)", direct)
}

// TestRelayConfig: a relay service on a node configured private is refused, and a bad static relay
// address is a clear error.
func TestRelayConfig(t *testing.T) {
	params := tangle.BenchNet
	_, err := New(context.Background(), Config{RelayService: true, Reachability: ReachabilityPrivate}, newMemStore(params), params)
	if err == nil || !strings.Contains(err.Error(), "public") {
		t.Fatalf("relay service on a private node: %v", err)
	}
	_, err = New(context.Background(), Config{Relays: []string{"/ip4/127.0.0.1/tcp/1"}}, newMemStore(params), params)
	if err == nil || !strings.Contains(err.Error(), "relay") {
		t.Fatalf("relay without a peer id: %v", err)
	}
	_, err = New(context.Background(), Config{Reachability: "maybe"}, newMemStore(params), params)
	if err == nil {
		t.Fatal("reachability maybe accepted")
	}
}

// TestRelayAddrsAdvertised: the relayed address is among the node's advertised addresses (Status
// ListenAddrs, identify), written once with the node's own peer id.
func TestRelayAddrsAdvertised(t *testing.T) {
	relay := startNode(t, tangle.DevNet, newMemStore(tangle.DevNet), tcpOnly, WithRelayService(true), relayOnLoopback)
	n := startNode(t, tangle.BenchNet, newMemStore(tangle.BenchNet), tcpOnly, WithRelays(relay.Addrs()[0]),
		WithReachability(ReachabilityPrivate))
	waitFor(t, convergeTimeout, "a relayed address", func() bool { return len(n.RelayAddrs()) > 0 })
	self := "/p2p/" + n.host.ID().String()
	want := n.RelayAddrs()[0]
	if strings.Count(want, self) != 1 {
		t.Fatalf("relayed address %s", want)
	}
	waitFor(t, convergeTimeout, "the relayed address among the listen addresses", func() bool {
		for _, a := range n.Status().ListenAddrs {
			if a == want {
				return true
			}
		}
		return false
	})
}

// TestRelayServiceBounded: the relay service holds at most Limits.RelayMaxReservations reservations; one
// more is refused (RESERVATION_REFUSED, the status of the relay's reservation constraints), and the first
// holder keeps its address.
func TestRelayServiceBounded(t *testing.T) {
	lim := testLimits()
	lim.RelayMaxReservations = 1
	relay := startNode(t, tangle.DevNet, newMemStore(tangle.DevNet), tcpOnly, WithRelayService(true), relayOnLoopback, WithLimits(lim))
	first := startNode(t, tangle.BenchNet, newMemStore(tangle.BenchNet), tcpOnly, WithRelays(relay.Addrs()[0]),
		WithReachability(ReachabilityPrivate))
	waitFor(t, convergeTimeout, "the first reservation", func() bool { return len(first.RelayAddrs()) > 0 })

	second := startNode(t, tangle.BenchNet, newMemStore(tangle.BenchNet), tcpOnly)
	ai, err := parseAddr(relay.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	if err := second.host.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	_, err = client.Reserve(ctx, second.host, *ai)
	var re client.ReservationError
	if !errors.As(err, &re) || re.Status.String() != "RESERVATION_REFUSED" {
		t.Fatalf("reservation beyond the bound: %v, want RESERVATION_REFUSED", err)
	}
	if len(first.RelayAddrs()) == 0 {
		t.Fatal("the first holder lost its reservation")
	}
}
