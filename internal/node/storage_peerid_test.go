package node

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestStorageLightPeerIDPerProvider: a light client subscribed to two storage providers shows each a
// libp2p peer id of its own (protocol.md §12.6), so that the providers cannot link its sessions by peer
// id: the ids the two providers see never meet, in one run or across a restart of the client; each is
// the one that authenticated for the subscription there, and none is the client's identity key as a
// peer id or either provider's.
func TestStorageLightPeerIDPerProvider(t *testing.T) {
	params := tangle.ShortNet
	s1, s2 := startStorageNode(t, params), startStorageNode(t, params)
	w1, w2 := watchConns(s1.Node), watchConns(s2.Node) // the two are not peers: every connection is bob's
	cfg := lightConfig(t, t.TempDir(), s1, s1.grant(t))
	cfg.StorageProviders = append(cfg.StorageProviders, s2.addr())
	cfg.StorageGrants = append(cfg.StorageGrants, s2.grant(t))

	seen := func(w *connWatch) []peer.ID {
		var ids []peer.ID
		for _, c := range w.list() {
			if !slices.Contains(ids, c.peer) {
				ids = append(ids, c.peer)
			}
		}
		return ids
	}
	var all1, all2 []peer.ID
	for run := range 2 {
		bob := startLight(t, cfg)
		select {
		case <-bob.LightClients()[1].Synced():
		case <-time.After(20 * time.Second):
			t.Fatalf("run %d: the second provider's client did not sync: %+v", run, bob.LightClients()[1].Status())
		}
		waitFor(t, "both providers to see bob's client", 20*time.Second, func() bool {
			return len(seen(w1)) > len(all1) && len(seen(w2)) > len(all2)
		})
		ids1, ids2 := seen(w1)[len(all1):], seen(w2)[len(all2):]
		if len(ids1) != 1 || len(ids2) != 1 {
			t.Fatalf("run %d: provider 1 saw peer ids %v, provider 2 %v: want one each", run, ids1, ids2)
		}
		id1, id2 := ids1[0], ids2[0]
		t.Logf("run %d: provider 1 sees %s, provider 2 sees %s", run, id1, id2)
		if !s1.p.Subscriber(id1) || !s2.p.Subscriber(id2) {
			t.Errorf("run %d: the peer ids seen did not authenticate for bob's subscriptions", run)
		}
		if s1.p.Subscriber(id2) || s2.p.Subscriber(id1) {
			t.Errorf("run %d: one peer id authenticated at both providers", run)
		}
		all1, all2 = append(all1, id1), append(all2, id2)

		// Not derived from bob's identity, not a provider's id, and the client has no other host.
		idKey, err := crypto.UnmarshalEd25519PublicKey(bob.Identity().PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		own, err := peer.IDFromPublicKey(idKey)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []peer.ID{id1, id2} {
			if id == own || id.String() == s1.Network().ID() || id.String() == s2.Network().ID() {
				t.Errorf("run %d: peer id %s is bob's identity's or a provider's", run, id)
			}
			if pub, err := id.ExtractPublicKey(); err == nil && pub.Equals(idKey) {
				t.Errorf("run %d: peer id %s carries bob's identity key", run, id)
			}
		}
		var hosts []peer.ID
		for _, h := range bob.light.hosts {
			hosts = append(hosts, h.ID())
		}
		if !slices.Equal(hosts, []peer.ID{id1, id2}) {
			t.Errorf("run %d: bob's client hosts %v, want exactly %v", run, hosts, []peer.ID{id1, id2})
		}
		bob.Close()
	}
	for _, id := range all1 {
		if slices.Contains(all2, id) {
			t.Errorf("peer id %s was seen by both providers", id)
		}
	}
}
