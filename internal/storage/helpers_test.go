package storage

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/p2p/p2ptest"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// testParams is the dev network with a tiny proof of work (about 2,000 hashes a block), so tests grind
// real PoW quickly; benchParams has none.
func testParams() tangle.Params {
	p := tangle.DevNet
	p.WorkPerByte = 1
	return p
}

func benchParams() tangle.Params { return tangle.BenchNet }

// mkBlock builds a sealed-payload block with tag and about size bytes, issued now, PoW ground.
func mkBlock(t testing.TB, params tangle.Params, tag tangle.Tag, size int, issued time.Time) *tangle.Block {
	t.Helper()
	parents := []tangle.ID{tangle.Genesis}
	payloadLen := tangle.MinSealedPayload + 16
	if size > 0 {
		payloadLen = max(size-tangle.Overhead-tangle.IDSize, tangle.MinSealedPayload)
	}
	payload := make([]byte, payloadLen)
	rand.Read(payload)
	h := tangle.Header{Network: params.ID, Time: issued.UnixMilli(), TTL: 3600, Parents: parents, Tag: tag,
		PayloadType: tangle.PayloadSealed, Payload: payload}
	b, err := params.Build(context.Background(), h)
	if err != nil {
		t.Fatalf("build block: %v", err)
	}
	return b
}

// tagWith returns a random tag starting with prefix.
func tagWith(p wire.Prefix) tangle.Tag {
	var t tangle.Tag
	rand.Read(t[:])
	full := int(p.Bits) / 8
	copy(t[:full], p.Tag[:full])
	if rem := p.Bits % 8; rem != 0 {
		mask := byte(0xff) << (8 - rem)
		t[full] = p.Tag[full]&mask | t[full]&^mask
	}
	return t
}

// tagNot returns a random tag not starting with prefix.
func tagNot(p wire.Prefix) tangle.Tag {
	for {
		var t tangle.Tag
		rand.Read(t[:])
		if !p.Matches(t) {
			return t
		}
	}
}

// server is a provider served on a loopback client host.
type server struct {
	p    *Provider
	host *p2p.ClientHost
}

func startServer(t testing.TB, cfg Config) *server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Params.Name == "" {
		cfg.Params = testParams()
	}
	h := p2ptest.LoopbackHost(t)
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.HandleStream(p.Protocol(), p.Serve)
	s := &server{p: p, host: h}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { s.stop() }) })
	return s
}

func (s *server) stop() {
	s.host.Close()
	s.p.Close()
}

// client is a light client's host with a session to a server.
type client struct {
	h *p2p.ClientHost
	s *wire.Session
}

func dial(t testing.TB, srv *server) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	pid, err := h.ConnectAddr(ctx, srv.host.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	sess, err := wire.Dial(ctx, h, pid, srv.p.cfg.Params.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return &client{h: h, s: sess}
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// subscribe creates a granted subscription for prefix on srv and authenticates c's session.
func subscribe(t testing.TB, srv *server, c *client, prefix wire.Prefix, quotaMiB uint32) (wire.SubID, ed25519.PrivateKey) {
	t.Helper()
	ctx := tctx(t)
	tok, err := srv.p.Grant(ctx, quotaMiB, 30)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := newKey(t)
	id, st, err := c.s.Create(ctx, wire.CreateRequest{Prefix: prefix, QuotaMiB: quotaMiB, RetentionDays: 30, Key: pub, Grant: tok})
	if err != nil {
		t.Fatal(err)
	}
	if st != wire.Active {
		t.Fatalf("granted subscription is %v", st)
	}
	if err := c.s.Auth(ctx, id, priv); err != nil {
		t.Fatal(err)
	}
	return id, priv
}

// fetchAll pages through everything after cursor.
func fetchAll(t testing.TB, s *wire.Session, after wire.Cursor, count, bytes int) ([]wire.Pushed, wire.Cursor) {
	t.Helper()
	var out []wire.Pushed
	for {
		got, next, more, err := s.Fetch(tctx(t), after, count, bytes)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if g.Cursor <= after {
				t.Fatalf("cursor %d not after %d", g.Cursor, after)
			}
			after = g.Cursor
		}
		out = append(out, got...)
		if next != after {
			t.Fatalf("next %d, last cursor %d", next, after)
		}
		if !more {
			return out, after
		}
	}
}

func wantCode(t testing.TB, err error, c wire.Code) {
	t.Helper()
	if !wire.IsCode(err, c) {
		t.Fatalf("got %v, want a %q error", err, c)
	}
}

// rawStream opens a storage stream from c's host to srv, for frames the Session would not send.
func rawStream(t testing.TB, c *client, srv *server) p2p.Stream {
	t.Helper()
	st, err := c.h.OpenStream(tctx(t), srv.host.ID(), srv.p.Protocol())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	return st
}

func send(t testing.TB, st p2p.Stream, m wire.Msg) wire.Msg {
	t.Helper()
	_ = st.SetDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteMsg(st, m); err != nil {
		t.Fatal(err)
	}
	r, err := wire.ReadMsg(st)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func challenge(t testing.TB, st p2p.Stream, id wire.SubID) [wire.NonceSize]byte {
	t.Helper()
	m, ok := send(t, st, wire.MsgChallenge{ID: id}).(wire.MsgNonce)
	if !ok {
		t.Fatal("no nonce")
	}
	return m.Nonce
}

func authMsg(sig []byte) wire.MsgAuth {
	var a wire.MsgAuth
	copy(a.Sig[:], sig)
	return a
}

func isErr(m wire.Msg, c wire.Code) bool {
	e, ok := m.(wire.MsgError)
	return ok && e.E.Code == c
}

// fakeClock is a settable clock safe to read from the provider's goroutines.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }
