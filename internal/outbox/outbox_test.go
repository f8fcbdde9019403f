package outbox

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// recorder is a Publisher and Tips that keeps what is published.
type recorder struct {
	mu     sync.Mutex
	blocks []*tangle.Block
	peers  atomic.Int32
	fail   atomic.Int32 // fail this many more publishes
	panic  atomic.Int32 // panic in this many more publishes
}

func (r *recorder) Publish(ctx context.Context, b *tangle.Block) error {
	if r.panic.Load() > 0 {
		r.panic.Add(-1)
		panic("recorder: a bug in Publish")
	}
	if r.fail.Load() > 0 {
		r.fail.Add(-1)
		return errors.New("recorder: refused")
	}
	if _, err := tangle.BenchNet.Validate(b.Raw, b.IssuedAt()); err != nil {
		return err
	}
	r.mu.Lock()
	r.blocks = append(r.blocks, b)
	r.mu.Unlock()
	return nil
}

func (r *recorder) PeerCount() int { return int(r.peers.Load()) }

func (r *recorder) SelectParents(uint32, int) []tangle.ID { return []tangle.ID{tangle.Genesis} }

func (r *recorder) published() []*tangle.Block {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tangle.Block(nil), r.blocks...)
}

func testID(t *testing.T, seed byte) *identity.Identity {
	t.Helper()
	id, err := identity.FromSeed(bytes.Repeat([]byte{seed}, 32), 8)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func startOutbox(t *testing.T, rec *recorder, id *identity.Identity) *Outbox {
	t.Helper()
	return startOutboxWith(t, Config{Identity: id, Publisher: rec, Tips: rec, ReceiptDelay: time.Millisecond})
}

// startOutboxWith runs an outbox of cfg (on the bench network) on a new store until the test ends.
func startOutboxWith(t *testing.T, cfg Config) *Outbox {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Params = st, tangle.BenchNet
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return o
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 30*time.Second, cond)
}

// openReceipts opens the published receipt blocks for `to` and returns their keys, per envelope.
func openReceipts(t *testing.T, rec *recorder, to *identity.Identity, from identity.Address) [][][32]byte {
	t.Helper()
	op, err := seal.NewOpener(to)
	if err != nil {
		t.Fatal(err)
	}
	var out [][][32]byte
	for _, b := range rec.published() {
		m, err := op.Open(tangle.BenchNet.ID, b.Tag, b.Payload)
		if err != nil {
			t.Fatalf("a published block does not open for the receipt's addressee: %v", err)
		}
		if m.Kind != seal.KindReceipt || !m.Sender.Equal(from) {
			t.Fatalf("kind %v from %v", m.Kind, m.Sender)
		}
		keys, err := mail.ParseReceipt(m.Content)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, keys)
	}
	return out
}

// TestSendReceiptSplitsAndMerges: more keys than one receipt holds go in two envelopes; keys queued
// twice are sent once.
func TestSendReceiptSplitsAndMerges(t *testing.T) {
	rec := &recorder{}
	rec.peers.Store(1)
	bob, alice := testID(t, 2), testID(t, 1)
	o := startOutbox(t, rec, bob)
	keys := make([][32]byte, mail.MaxReceiptKeys+10)
	for i := range keys {
		keys[i][0], keys[i][1], keys[i][2] = byte(i), byte(i>>8), 0xaa
	}
	o.SendReceipt(bob, alice.Address(), keys[:mail.MaxReceiptKeys], 3600)
	o.SendReceipt(bob, alice.Address(), keys, 3600) // the first ones again, and ten more
	waitFor(t, "receipts", func() bool { return o.Stats().ReceiptKeysSent >= uint64(len(keys)) })
	got := openReceipts(t, rec, alice, bob.Address())
	seen := map[[32]byte]int{}
	for _, ks := range got {
		for _, k := range ks {
			seen[k]++
		}
	}
	if len(seen) != len(keys) {
		t.Fatalf("%d distinct keys acknowledged, want %d", len(seen), len(keys))
	}
	for _, n := range seen {
		if n != 1 {
			t.Fatal("a key was acknowledged twice")
		}
	}
	if len(got) < 2 {
		t.Fatalf("%d envelopes for %d keys", len(got), len(keys))
	}
}

// TestReceiptRetries: a receipt waits for peers, survives failed publishes, and is then sent.
func TestReceiptRetries(t *testing.T) {
	rec := &recorder{}
	bob, alice := testID(t, 2), testID(t, 1)
	o := startOutbox(t, rec, bob)
	key := [32]byte{1, 2, 3}
	o.SendReceipt(bob, alice.Address(), [][32]byte{key}, 60)
	waitFor(t, "the receipt to be queued", func() bool { return o.Progress().QueuedReceipts == 1 })
	rec.fail.Store(1)
	rec.peers.Store(1)
	waitFor(t, "the receipt", func() bool { return o.Stats().ReceiptsSent == 1 })
	if o.Stats().PublishErrors != 1 {
		t.Fatalf("stats %+v: want one failed publish", o.Stats())
	}
	got := openReceipts(t, rec, alice, bob.Address())
	if len(got) != 1 || len(got[0]) != 1 || got[0][0] != key {
		t.Fatalf("receipts %v", got)
	}
	if b := rec.published()[0]; b.TTL != tangle.BenchNet.DefaultChatTTL {
		t.Fatalf("receipt TTL %d, want at least the chat TTL", b.TTL)
	}
	if p := o.Progress(); p.QueuedReceipts != 0 {
		t.Fatalf("%d receipts still queued", p.QueuedReceipts)
	}
}

// TestSendNoteNoPeers: with no peers a note is not published and fails with p2p.ErrNoPeers, the one
// "no peers" error of every layer.
func TestSendNoteNoPeers(t *testing.T) {
	rec := &recorder{}
	bob, alice := testID(t, 2), testID(t, 1)
	o := startOutbox(t, rec, bob)
	err := o.SendNote(context.Background(), alice.Address(), []byte("typing"), 60)
	if !errors.Is(err, p2p.ErrNoPeers) {
		t.Fatalf("SendNote with no peers: %v, want p2p.ErrNoPeers", err)
	}
	if n := len(rec.published()); n != 0 {
		t.Fatalf("%d blocks published with no peers", n)
	}
	rec.peers.Store(1)
	if err := o.SendNote(context.Background(), alice.Address(), []byte("typing"), 60); err != nil {
		t.Fatalf("SendNote with a peer: %v", err)
	}
}
