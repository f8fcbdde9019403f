package dag

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// t0 is the issuing time of test blocks: 2026-01-01T00:00:00Z.
const t0 int64 = 1_767_225_600_000

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(ms int64) *clock { return &clock{t: time.UnixMilli(ms)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(ms int64) {
	c.mu.Lock()
	c.t = time.UnixMilli(ms)
	c.mu.Unlock()
}

// spec describes a test block.
type spec struct {
	parents []tangle.ID
	time    int64 // 0: t0
	ttl     uint32
	shard   byte // first byte of the tag
	seq     uint64
}

var seqMu sync.Mutex
var seqN uint64

// mk builds a block of params p (PoW disabled networks only: the nonce is not ground) with
// Header.Encode, SetNonce and Decode. Each call gives a distinct block.
func mk(t testing.TB, p tangle.Params, s spec) *tangle.Block {
	t.Helper()
	if s.time == 0 {
		s.time = t0
	}
	if s.ttl == 0 {
		s.ttl = p.DefaultChatTTL
	}
	if len(s.parents) == 0 {
		s.parents = []tangle.ID{tangle.Genesis}
	}
	seqMu.Lock()
	seqN++
	n := seqN
	seqMu.Unlock()
	payload := make([]byte, tangle.MinSealedPayload)
	binary.LittleEndian.PutUint64(payload, n)
	h := tangle.Header{
		Network:     p.ID,
		Time:        s.time,
		TTL:         s.ttl,
		Parents:     s.parents,
		Tag:         tangle.Tag{s.shard, 1, 2, 3, 4, 5, 6, 7},
		PayloadType: tangle.PayloadSealed,
		Payload:     payload,
	}
	raw, err := h.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	tangle.SetNonce(raw, s.seq)
	b, err := tangle.Decode(raw)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return b
}

// open opens a store in a fresh temporary directory.
func open(t testing.TB, p tangle.Params, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blocks.db")
	return openAt(t, path, p, opts...), path
}

func openAt(t testing.TB, path string, p tangle.Params, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, p, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ctxT is a context that ends with the test's deadline (or after a minute).
func ctxT(t testing.TB) context.Context {
	t.Helper()
	d := time.Now().Add(time.Minute)
	if tt, ok := t.(*testing.T); ok {
		if dl, ok := tt.Deadline(); ok && dl.Before(d) {
			d = dl
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func put(t testing.TB, s *Store, blocks ...*tangle.Block) []bool {
	t.Helper()
	added, err := s.Put(ctxT(t), blocks...)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return added
}

func ids(bs ...*tangle.Block) []tangle.ID {
	out := make([]tangle.ID, len(bs))
	for i, b := range bs {
		out[i] = b.ID()
	}
	return out
}

func wantSolid(t testing.TB, s *Store, b *tangle.Block, want bool) {
	t.Helper()
	got, err := s.IsSolid(b.ID())
	if err != nil {
		t.Fatalf("IsSolid: %v", err)
	}
	if got != want {
		t.Fatalf("IsSolid(%s) = %v, want %v", b.ID().Short(), got, want)
	}
}

func wantHas(t testing.TB, s *Store, id tangle.ID, want bool) {
	t.Helper()
	got, err := s.Has(id)
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	if got != want {
		t.Fatalf("Has(%s) = %v, want %v", id.Short(), got, want)
	}
}

func missing(t testing.TB, s *Store) []tangle.ID {
	t.Helper()
	m, err := s.Missing(1000)
	if err != nil {
		t.Fatalf("Missing: %v", err)
	}
	return m
}

func stats(t testing.TB, s *Store) Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}
