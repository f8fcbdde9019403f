package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/p2p/p2ptest"
)

const testProto = "/tanglemail/test/blob/1"

// node is a real libp2p host on loopback with a blob store, server and client.
type node struct {
	h     *p2p.ClientHost
	store *Store
	srv   *Server
	cl    *Client
	m     *Metrics
}

func newNode(t testing.TB) *node {
	t.Helper()
	h := p2ptest.LoopbackHost(t)
	s, err := OpenStore(filepath.Join(t.TempDir(), "blobs"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := &Metrics{}
	n := &node{h: h, store: s, m: m, srv: &Server{Store: s, Metrics: m},
		cl: &Client{Net: h, Store: s, Proto: testProto, Metrics: m}}
	ServeHost(h.Host(), testProto, n.srv)
	return n
}

func (n *node) holder(sender bool) Holder {
	return Holder{Peer: n.h.ID(), Addrs: n.h.Host().Addrs(), Sender: sender}
}

func (n *node) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Host().Addrs()} }

func (n *node) route() Route { return Route{Peer: n.h.ID(), Addrs: n.h.Host().Addrs()} }

func ctx30(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sealOn(t testing.TB, n *node, size int) Ref {
	t.Helper()
	ref, err := n.store.Seal(&pattern{n: int64(size)}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func checkPlain(t testing.TB, s *Store, ref Ref, size int) {
	t.Helper()
	r, err := s.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, patternBytes(size)) {
		t.Fatalf("fetched blob differs (%d bytes, want %d)", len(got), size)
	}
}

// TestTransferRoundTrip: alice uploads a blob to her provider (authorized), bob fetches it from alice
// directly (a contact) and, separately, carol from the provider.
func TestTransferRoundTrip(t *testing.T) {
	ctx := ctx30(t)
	alice, prov, bob, carol := newNode(t), newNode(t), newNode(t), newNode(t)
	prov.srv.Authorize = func(_ context.Context, r Request) error {
		if r.Op == OpPut && r.Peer != alice.h.ID() {
			return errors.New("no subscription")
		}
		return nil
	}
	const size = 3*ChunkSize + 100
	ref := sealOn(t, alice, size)
	if err := alice.cl.Put(ctx, prov.route(), ref.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if !prov.store.Complete(ref.ID) || prov.m.PutsStored.Load() != 1 {
		t.Fatal("provider does not hold the blob after the ack")
	}
	ref.Holders = []Holder{alice.holder(true), prov.holder(false)}
	if err := bob.cl.Fetch(ctx, ref, Plan(ref, true, nil, nil), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, bob.store, ref, size)
	if alice.m.ChunksServed.Load() != 4 {
		t.Errorf("alice served %d chunks, want 4", alice.m.ChunksServed.Load())
	}
	if err := carol.cl.Fetch(ctx, ref, []Route{prov.route()}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, carol.store, ref, size)
	// A second upload of the same blob sends no chunk again.
	if err := alice.cl.Put(ctx, prov.route(), ref.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// TestTransferResume: the holder breaks the stream every 5 chunks; the fetch resumes each time from
// what is durable and fetches every chunk exactly once. Then a fetch cut off for good is resumed after
// the store is reopened (a restart).
func TestTransferResume(t *testing.T) {
	ctx := ctx30(t)
	alice, bob := newNode(t), newNode(t)
	const size = 20 * ChunkSize
	ref := sealOn(t, alice, size)
	alice.srv.ResetAfter = 5
	bob.cl.Attempts = 10
	if err := bob.cl.Fetch(ctx, ref, []Route{alice.route()}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, bob.store, ref, size)
	if got := bob.m.ChunksFetched.Load(); got != 20 {
		t.Errorf("fetched %d chunks, want 20 (each once)", got)
	}
	if bob.m.Retries.Load() < 3 {
		t.Errorf("%d retries, want ≥ 3 (a break every 5 chunks)", bob.m.Retries.Load())
	}

	// Restart: carol's first fetch gives up after one broken attempt; her store is reopened and the
	// next fetch asks only for the missing chunks.
	carol := newNode(t)
	carol.cl.Attempts = 1
	if err := carol.cl.Fetch(ctx, ref, []Route{alice.route()}, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("fetch through a stream broken after 5 chunks succeeded in one attempt")
	}
	before := carol.m.ChunksFetched.Load()
	if before == 0 || before >= 20 {
		t.Fatalf("first attempt fetched %d chunks", before)
	}
	dir := carol.store.dir
	carol.store.Close()
	s2, err := OpenStore(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	miss, _ := s2.Missing(ref.ID)
	if len(miss) != 20-int(before) {
		t.Fatalf("after restart %d chunks missing, want %d", len(miss), 20-before)
	}
	alice.srv.ResetAfter = 0
	carol.cl.Store = s2
	if err := carol.cl.Fetch(ctx, ref, []Route{alice.route()}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, s2, ref, size)
	if got := carol.m.ChunksFetched.Load(); got != 20 {
		t.Errorf("fetched %d chunks in all, want 20", got)
	}
}

// TestTransferBadHolder: one holder's copy has a corrupted chunk on disk; the fetcher refuses the
// chunk, leaves that holder and completes from the other.
func TestTransferBadHolder(t *testing.T) {
	ctx := ctx30(t)
	alice, prov, bob := newNode(t), newNode(t), newNode(t)
	prov.srv.Authorize = func(context.Context, Request) error { return nil }
	const size = 6 * ChunkSize
	ref := sealOn(t, alice, size)
	if err := alice.cl.Put(ctx, prov.route(), ref.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(prov.store.path(ref.ID, ".blob"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage"), 3*SealedChunkSize+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := bob.cl.Fetch(ctx, ref, []Route{prov.route(), alice.route()}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, bob.store, ref, size)
	if bob.m.BadChunks.Load() != 1 {
		t.Errorf("%d bad chunks, want 1", bob.m.BadChunks.Load())
	}
	if got := alice.m.ChunksServed.Load(); got != 3 {
		t.Errorf("alice served %d chunks, want the 3 the provider could not", got)
	}
}

func TestTransferUnauthorizedPut(t *testing.T) {
	ctx := ctx30(t)
	alice, prov := newNode(t), newNode(t)
	ref := sealOn(t, alice, 2*ChunkSize)
	var re *Error
	if err := alice.cl.Put(ctx, prov.route(), ref.ID, time.Hour); !errors.As(err, &re) || re.Code != CodeUnauthorized {
		t.Fatalf("put to a node without Authorize: %v, want unauthorized", err)
	}
	prov.srv.Authorize = func(_ context.Context, r Request) error {
		if r.Op == OpPut {
			return fmt.Errorf("peer has no subscription")
		}
		return nil
	}
	if err := alice.cl.Put(ctx, prov.route(), ref.ID, time.Hour); !errors.As(err, &re) || re.Code != CodeUnauthorized {
		t.Fatalf("refused put: %v, want unauthorized", err)
	}
	if used, _, n := prov.store.Usage(); used != 0 || n != 0 {
		t.Fatalf("refused puts left %d bytes, %d blobs", used, n)
	}
	if prov.m.Refused.Load() != 2 {
		t.Errorf("%d refusals counted", prov.m.Refused.Load())
	}
	// A get of an unknown blob is not found.
	bob := newNode(t)
	bob.cl.Attempts = 1
	var missing Ref
	missing.ID[0] = 1
	if err := bob.cl.Fetch(ctx, missing, []Route{prov.route()}, time.Now().Add(time.Hour)); !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Fatalf("fetch of an unknown blob: %v", err)
	}
}

// TestPlanStranger: for a stranger's mail the recipient dials only its own trusted provider directly;
// every other holder (whatever the ref says about it) only through the recipient's relays.
func TestPlanStranger(t *testing.T) {
	ctx := ctx30(t)
	stranger, prov, bob := newNode(t), newNode(t), newNode(t)
	prov.srv.Authorize = func(context.Context, Request) error { return nil }
	const size = 2*ChunkSize + 1
	ref := sealOn(t, stranger, size)
	if err := stranger.cl.Put(ctx, prov.route(), ref.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The stranger claims its own node is not the sender's.
	ref.Holders = []Holder{stranger.holder(false), prov.holder(false)}
	relay := newNode(t)
	routes := Plan(ref, false, map[peer.ID]bool{prov.h.ID(): true}, []peer.AddrInfo{relay.info()})
	if len(routes) != 2 || routes[0].Peer != prov.h.ID() || routes[0].Via != Direct ||
		routes[1].Peer != stranger.h.ID() || routes[1].Via != Relayed {
		t.Fatalf("plan for a stranger: %v", routes)
	}
	for _, a := range routes[1].Addrs {
		if _, err := a.ValueForProtocol(0x0122); err != nil { // p2p-circuit
			t.Fatalf("relayed route without a circuit address: %v", a)
		}
	}
	if r := Plan(ref, false, nil, nil); len(r) != 0 {
		t.Fatalf("stranger without relays or trusted holders: %v, want no route", r)
	}
	if r := Plan(ref, true, nil, nil); len(r) != 2 || r[0].Via != Direct || r[1].Via != Direct {
		t.Fatalf("contact: %v, want both direct", r)
	}
	if err := bob.cl.Fetch(ctx, ref, Plan(ref, false, map[peer.ID]bool{prov.h.ID(): true}, nil), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkPlain(t, bob.store, ref, size)
	if c := stranger.h.Host().Network().ConnsToPeer(bob.h.ID()); len(c) != 0 || stranger.m.ChunksServed.Load() != 0 {
		t.Fatalf("bob connected to the stranger (%d conns, %d chunks)", len(c), stranger.m.ChunksServed.Load())
	}
}

// BenchmarkBlobPutFetch25MiB: alice uploads a sealed 25 MiB blob to a provider and bob fetches it from
// the provider, all on loopback (sealing is outside the timer; every put and fetch is durable).
func BenchmarkBlobPutFetch25MiB(b *testing.B) {
	ctx := ctx30(b)
	alice, prov, bob := newNode(b), newNode(b), newNode(b)
	prov.srv.Authorize = func(context.Context, Request) error { return nil }
	ref := sealOn(b, alice, 25<<20)
	b.SetBytes(25 << 20)
	b.ResetTimer()
	for range b.N {
		if err := alice.cl.Put(ctx, prov.route(), ref.ID, time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := bob.cl.Fetch(ctx, ref, []Route{prov.route()}, time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		prov.store.Delete(ref.ID)
		bob.store.Delete(ref.ID)
		b.StartTimer()
	}
}

func TestMetricsCollectors(t *testing.T) {
	n := newNode(t)
	reg := prometheus.NewRegistry()
	for _, c := range n.m.Collectors(n.store) {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 11 {
		t.Fatalf("%d metric families, %v", len(mfs), err)
	}
}
