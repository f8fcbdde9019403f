package light

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// The storage provider (internal/storage) is tested against this package end to end in internal/node;
// here memProvider stands in for a wire.Session so that the client's cursor, duplicate and reconnect
// rules can be driven exactly.

type memStore struct {
	mu       sync.Mutex
	seq      Cursor
	blocks   []Pushed
	released Cursor
	watchers []chan Pushed
	usage    Usage
	dropPush atomic.Bool // pushes are lost
	down     atomic.Bool // dials fail
	refuse   atomic.Bool // Publish refuses
	publish  [][]byte
	fetches  atomic.Int64
}

func (m *memStore) add(raw []byte) {
	m.mu.Lock()
	m.seq++
	pu := Pushed{Cursor: m.seq, Block: raw}
	m.blocks = append(m.blocks, pu)
	ws := append([]chan Pushed(nil), m.watchers...)
	m.mu.Unlock()
	if m.dropPush.Load() {
		return
	}
	for _, w := range ws {
		select {
		case w <- pu:
		default: // lossy, like the real push
		}
	}
}

// cut closes every watch stream (a provider restart, a broken connection).
func (m *memStore) cut() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.watchers {
		close(w)
	}
	m.watchers = nil
}

func (m *memStore) dial(ctx context.Context) (Provider, error) {
	if m.down.Load() {
		return nil, errors.New("connection refused")
	}
	return &memSession{m: m}, nil
}

type memSession struct {
	m      *memStore
	closed atomic.Bool
}

func (s *memSession) Fetch(ctx context.Context, after Cursor, maxCount, maxBytes int) ([]Pushed, Cursor, bool, error) {
	s.m.fetches.Add(1)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	var out []Pushed
	next, size := after, 0
	for _, pu := range s.m.blocks {
		if pu.Cursor <= after || pu.Cursor <= s.m.released {
			continue
		}
		if len(out) == maxCount || (len(out) > 0 && size+len(pu.Block) > maxBytes) {
			return out, next, true, nil
		}
		out = append(out, pu)
		size += len(pu.Block)
		next = pu.Cursor
	}
	return out, next, false, nil
}

func (s *memSession) Release(ctx context.Context, upTo Cursor) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.released = max(s.m.released, upTo)
	return nil
}

func (s *memSession) Watch(ctx context.Context) (<-chan Pushed, error) {
	ch := make(chan Pushed, 64)
	s.m.mu.Lock()
	s.m.watchers = append(s.m.watchers, ch)
	s.m.mu.Unlock()
	return ch, nil
}

func (s *memSession) Publish(ctx context.Context, raw []byte) error {
	if s.m.refuse.Load() {
		return &RefusedError{Code: "BadPoW", Msg: "proof of work not met"}
	}
	s.m.mu.Lock()
	s.m.publish = append(s.m.publish, raw)
	s.m.mu.Unlock()
	return nil
}

func (s *memSession) Tips(ctx context.Context, shard uint32, n int) ([]tangle.ID, error) {
	return []tangle.ID{tangle.Genesis}, nil
}

func (s *memSession) Status(ctx context.Context) (Usage, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.usage, nil
}

func (s *memSession) Close() error { s.closed.Store(true); return nil }

// countFiler records how often each block was filed; it can be made to fail.
type countFiler struct {
	mu    sync.Mutex
	seen  map[tangle.ID]int
	fail  atomic.Int32 // fail the next n batches
	total atomic.Int64
}

func (f *countFiler) FileBatch(ctx context.Context, bs []*tangle.Block) error {
	if f.fail.Load() > 0 {
		f.fail.Add(-1)
		return errors.New("disk full")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bs {
		f.seen[b.ID()]++
	}
	f.total.Add(int64(len(bs)))
	return nil
}

func (f *countFiler) count() (distinct int, maxCount int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.seen {
		maxCount = max(maxCount, n)
	}
	return len(f.seen), maxCount
}

var blockSeq atomic.Int64

// testBlock builds a valid BenchNet block, issued at the given time.
func testBlock(t testing.TB, issued time.Time) []byte {
	t.Helper()
	payload := make([]byte, 64)
	copy(payload, fmt.Sprint(blockSeq.Add(1)))
	b, err := tangle.BenchNet.Build(context.Background(), tangle.Header{
		Time: issued.UnixMilli(), TTL: tangle.MinTTL, Parents: []tangle.ID{tangle.Genesis},
		PayloadType: tangle.PayloadSealed, Payload: payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Raw
}

type harness struct {
	m     *memStore
	f     *countFiler
	db    *DB
	c     *Client
	stop  context.CancelFunc
	done  chan error
	notes atomic.Int32
	dir   string
}

func newHarness(t *testing.T, m *memStore, dir string) *harness {
	t.Helper()
	h := &harness{m: m, f: &countFiler{seen: map[tangle.ID]int{}}, dir: dir}
	var err error
	if h.db, err = OpenDB(filepath.Join(dir, "light.db")); err != nil {
		t.Fatal(err)
	}
	h.c, err = NewClient(context.Background(), Config{
		Name: "provider-1", DB: h.db, Dial: m.dial, Filer: h.f, Params: tangle.BenchNet,
		Notify: func(ctx context.Context, subject, body string) error {
			h.notes.Add(1)
			return nil
		},
		PageCount: 100, StatusInterval: 200 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.c.Run(ctx) }()
}

func (h *harness) close(t *testing.T) {
	if h.stop != nil {
		h.stop()
		if err := <-h.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		h.stop = nil
	}
	h.db.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 30*time.Second, cond)
}

// TestCatchUpPastTTL: 1,000 blocks stored while the client was away, long expired, are fetched in
// pages, filed once each, released, and the cursor survives a restart: nothing is fetched twice.
func TestCatchUpPastTTL(t *testing.T) {
	m, dir := &memStore{}, t.TempDir()
	old := time.Now().Add(-24 * time.Hour)
	for range 1000 {
		m.add(testBlock(t, old))
	}
	h := newHarness(t, m, dir)
	if fi, err := os.Stat(filepath.Join(dir, "light.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("light.db: %v, %v; want mode 0600", fi, err)
	}
	h.start()
	<-h.c.Synced()
	if d, mx := h.f.count(); d != 1000 || mx != 1 {
		t.Fatalf("filed %d distinct blocks, at most %d times each; want 1000 once", d, mx)
	}
	if m.fetches.Load() < 10 {
		t.Fatalf("%d fetches for 1,000 blocks in pages of 100", m.fetches.Load())
	}
	waitFor(t, "release of everything", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.released == 1000 })
	h.close(t)
	// Restart: the persisted cursor means nothing is handed over again.
	m.add(testBlock(t, time.Now()))
	h2 := newHarness(t, m, dir)
	h2.f = h.f
	h2.c.cfg.Filer = h.f
	if c, _ := h2.db.Cursor(context.Background(), "provider-1"); c != 1000 {
		t.Fatalf("persisted cursor %d, want 1000", c)
	}
	h2.start()
	defer h2.close(t)
	<-h2.c.Synced()
	if d, mx := h.f.count(); d != 1001 || mx != 1 {
		t.Fatalf("after restart: %d distinct, max %d; want 1001 once", d, mx)
	}
}

// TestLiveAndReconnect: live pushes are filed and advance the cursor without a fetch; a cut stream
// reconnects, and blocks stored while disconnected or whose push was lost are fetched from the cursor:
// every block exactly once.
func TestLiveAndReconnect(t *testing.T) {
	m := &memStore{}
	h := newHarness(t, m, t.TempDir())
	h.c.cfg.StatusInterval = time.Hour // only pushes and reconnects drive it here
	h.start()
	defer h.close(t)
	<-h.c.Synced()
	waitFor(t, "connected", func() bool { return h.c.PeerCount() == 1 })
	before := m.fetches.Load()
	for range 20 {
		m.add(testBlock(t, time.Now()))
	}
	waitFor(t, "20 pushed blocks", func() bool { return h.f.total.Load() == 20 && h.c.Status().Cursor == 20 })
	if st := h.c.Status(); st.Stats.Pushed != 20 {
		t.Fatalf("status after pushes: %+v", st)
	}
	if m.fetches.Load() != before {
		t.Fatalf("pushes in order caused %d fetches", m.fetches.Load()-before)
	}
	// Lost pushes: the next push shows a gap, and the fetch finds the lost ones.
	m.dropPush.Store(true)
	for range 5 {
		m.add(testBlock(t, time.Now()))
	}
	m.dropPush.Store(false)
	m.add(testBlock(t, time.Now()))
	waitFor(t, "lost pushes fetched", func() bool { return h.f.total.Load() == 26 })
	// The provider goes away; blocks stored meanwhile come after the reconnect.
	m.down.Store(true)
	m.cut()
	waitFor(t, "disconnected", func() bool { return h.c.PeerCount() == 0 })
	for range 10 {
		m.add(testBlock(t, time.Now()))
	}
	m.down.Store(false)
	waitFor(t, "blocks stored while disconnected", func() bool { return h.f.total.Load() == 36 })
	if d, mx := h.f.count(); d != 36 || mx != 1 {
		t.Fatalf("%d distinct, max %d; want 36 once", d, mx)
	}
	waitFor(t, "cursor 36", func() bool { return h.c.Status().Cursor == 36 })
	if st := h.c.Status(); st.Stats.Sessions < 2 {
		t.Fatalf("status: %+v", st)
	}
}

// TestFilingFailureKeepsCursor: when the inbox cannot file, the cursor does not move and nothing is
// released; the session restarts and files the page later.
func TestFilingFailureKeepsCursor(t *testing.T) {
	m := &memStore{}
	for range 10 {
		m.add(testBlock(t, time.Now()))
	}
	h := newHarness(t, m, t.TempDir())
	h.f.fail.Store(3)
	h.start()
	defer h.close(t)
	<-h.c.Synced()
	if d, _ := h.f.count(); d != 10 {
		t.Fatalf("filed %d, want 10", d)
	}
	if st := h.c.Status(); st.Stats.Sessions < 4 {
		t.Fatalf("%d sessions after 3 failures", st.Stats.Sessions)
	}
}

// TestInvalidBlocksSkipped: a block of another network or with broken bytes is not filed.
func TestInvalidBlocksSkipped(t *testing.T) {
	m := &memStore{}
	good := testBlock(t, time.Now())
	bad := append([]byte(nil), good...)
	bad[1] ^= 0xff // network id
	m.add(bad)
	m.add([]byte("garbage"))
	m.add(good)
	h := newHarness(t, m, t.TempDir())
	h.start()
	defer h.close(t)
	<-h.c.Synced()
	if d, _ := h.f.count(); d != 1 || h.c.Stats().Invalid != 2 {
		t.Fatalf("filed %d, invalid %d; want 1 and 2", d, h.c.Stats().Invalid)
	}
}

// TestQuotaNotices: one notice at 80 %, one when full, none again at the same level, even after a
// restart; a drop below 80 % rearms them.
func TestQuotaNotices(t *testing.T) {
	m, dir := &memStore{}, t.TempDir()
	m.usage = Usage{State: "active", UsedBytes: 85, QuotaBytes: 100}
	h := newHarness(t, m, dir)
	h.start()
	waitFor(t, "80 % notice", func() bool { return h.notes.Load() == 1 })
	m.mu.Lock()
	m.usage.UsedBytes = 100
	m.mu.Unlock()
	waitFor(t, "full notice", func() bool { return h.notes.Load() == 2 })
	waitFor(t, "status shows the usage", func() bool { return h.c.Status().Usage.Percent() == 100 })
	h.close(t)
	h2 := newHarness(t, m, dir)
	h2.start()
	<-h2.c.Synced()
	waitFor(t, "status after restart", func() bool { return h2.c.Status().Usage.Percent() == 100 })
	if n := h2.notes.Load(); n != 0 {
		t.Fatalf("%d notices again after a restart", n)
	}
	m.mu.Lock()
	m.usage.UsedBytes = 10
	m.mu.Unlock()
	waitFor(t, "usage down", func() bool { return h2.c.Status().Usage.Percent() == 10 })
	m.mu.Lock()
	m.usage.UsedBytes = 90
	m.mu.Unlock()
	waitFor(t, "80 % notice again", func() bool { return h2.notes.Load() == 1 })
	h2.close(t)
}

// TestPublishRefused: a refusal reaches the outbox as a *RefusedError naming the provider; without a
// session Publish says so.
func TestPublishRefused(t *testing.T) {
	m := &memStore{}
	h := newHarness(t, m, t.TempDir())
	b, err := tangle.Decode(testBlock(t, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.Publish(context.Background(), b); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish without a session: %v", err)
	}
	h.start()
	defer h.close(t)
	waitFor(t, "connected", func() bool { return Clients{h.c}.PeerCount() == 1 })
	if err := (Clients{h.c}).Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	m.refuse.Store(true)
	err = h.c.Publish(context.Background(), b)
	re, ok := errors.AsType[*RefusedError](err)
	if !ok || re.Provider != "provider-1" || re.Code != "BadPoW" {
		t.Fatalf("refusal: %v", err)
	}
	if ids := h.c.SelectParents(0, 0); len(ids) != 1 || ids[0] != tangle.Genesis {
		t.Fatalf("tips %v", ids)
	}
	if st := h.c.Stats(); st.Published != 1 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}
