package p2p

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestDHTDiscovery: with the DHT on, two nodes that were each given only a third node as bootstrap peer
// find each other through the private DHT (provider records of their shard topic) and connect; the DHT
// speaks only the /tanglemail protocol namespace.
func TestDHTDiscovery(t *testing.T) {
	params := tangle.BenchNet
	withDHT := []Option{tcpOnly, WithDHT(true)}
	hub := startNode(t, params, newMemStore(params), withDHT...)
	boot := WithBootstrap(hub.Addrs()[0])
	a := startNode(t, params, newMemStore(params), append(withDHT, boot)...)
	b := startNode(t, params, newMemStore(params), append(withDHT, boot)...)
	waitFor(t, convergeTimeout, "a and b connected through DHT discovery", func() bool {
		return a.isConnected(b.host.ID()) || b.isConnected(a.host.ID())
	})
	for _, p := range a.host.Mux().Protocols() {
		if strings.Contains(string(p), "/kad/") && !strings.HasPrefix(string(p), "/tanglemail/") {
			t.Errorf("node speaks the public DHT protocol %s", p)
		}
	}
	found := false
	for _, p := range a.host.Mux().Protocols() {
		if string(p) == "/tanglemail/kad/1.0.0" {
			found = true
		}
	}
	if !found {
		t.Errorf("DHT protocol not in the private namespace: %v", a.host.Mux().Protocols())
	}
	// And blocks flow between them.
	rb := record(b)
	blk := makeBlock(t, params, nil, 0, time.Now())
	if err := a.Publish(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	waitFor(t, convergeTimeout, "block", func() bool { return rb.hasAll([]tangle.ID{blk.ID()}) })
}
