package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/p2p"
)

// TestRelayStatusThroughAPI: a public node run with RelayService says so in its status API
// (reachability public, relay service on); a node given it as its relay (Relays) holds a reservation
// there and its status API shows the relayed address through it.
func TestRelayStatusThroughAPI(t *testing.T) {
	pcfg := testConfig(t, t.TempDir())
	pcfg.RelayService = true
	public, err := Start(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { public.Close() })
	var st api.Status
	apiOf(t, public).call("GET", "/api/status", nil, &st, http.StatusOK)
	if st.P2P.Reachability != p2p.ReachabilityPublic || !st.P2P.RelayService {
		t.Fatalf("public node: reachability %q, relay service %v", st.P2P.Reachability, st.P2P.RelayService)
	}

	cfg := testConfig(t, t.TempDir())
	cfg.Relays = public.Network().Addrs()[:1]
	home, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { home.Close() })
	waitFor(t, "a relayed address in the status API", 30*time.Second, func() bool {
		var st api.Status
		apiOf(t, home).call("GET", "/api/status", nil, &st, http.StatusOK)
		return len(st.P2P.RelayAddrs) > 0
	})
	apiOf(t, home).call("GET", "/api/status", nil, &st, http.StatusOK)
	want := public.Network().Status().PeerID + "/p2p-circuit/p2p/" + st.P2P.PeerID
	if !strings.HasSuffix(st.P2P.RelayAddrs[0], want) || st.P2P.Reachability == p2p.ReachabilityPublic || len(st.P2P.Relays) != 1 {
		t.Fatalf("status behind the relay: reachability %q, relay addrs %v, relays %v", st.P2P.Reachability, st.P2P.RelayAddrs, st.P2P.Relays)
	}
}
