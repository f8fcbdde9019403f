package outbox

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestPrepareRelay: Config.PrepareRelay rewrites a relay message (and only a relay message) before it
// is sealed, given the item's recipients; the stored item stays as submitted.
func TestPrepareRelay(t *testing.T) {
	rec := &recorder{}
	rec.peers.Store(1)
	alice, gw := testID(t, 1), testID(t, 3)
	var mu sync.Mutex
	var calls [][]string
	o := startOutboxWith(t, Config{Identity: alice, Publisher: rec, Tips: rec, ReceiptDelay: time.Millisecond,
		PrepareRelayMax: 1 << 20,
		PrepareRelay: func(_ context.Context, rcpts []string, content []byte) (Prepared, error) {
			mu.Lock()
			calls = append(calls, rcpts)
			mu.Unlock()
			return Prepared{Message: append([]byte("X-Prepared: yes\r\n"), content...), Encrypted: true}, nil
		}})
	ctx := context.Background()
	relay, err := mail.EncodeRelay([]string{"bob@example.test"}, []byte("From: x\r\nSubject: relay\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("From: x\r\nSubject: plain\r\n\r\nbody\r\n")
	var ids []store.OutboxID
	var sent []store.Appended
	for _, raw := range [][]byte{relay, plain} {
		s, err := o.st.Submit(ctx, store.Submission{OutboxNew: store.OutboxNew{From: alice.Address().Mail(),
			Rcpts: []string{gw.Address().Mail()}, Raw: raw}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.OutboxID)
		sent = append(sent, s.Sent)
	}
	waitFor(t, "both mails published", func() bool { return o.Stats().Published >= 2 })
	op, err := seal.NewOpener(gw)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, b := range rec.published() {
		m, err := op.Open(tangle.BenchNet.ID, b.Tag, b.Payload)
		if err != nil || m.Kind != seal.KindMail {
			continue
		}
		mc, err := mail.ParseMailContent(m.Content)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, mc.Inline)
	}
	want := [][]byte{append([]byte("X-Prepared: yes\r\n"), relay...), plain}
	if len(got) != 2 || !slices.ContainsFunc(got, func(b []byte) bool { return bytes.Equal(b, want[0]) }) ||
		!slices.ContainsFunc(got, func(b []byte) bool { return bytes.Equal(b, want[1]) }) {
		t.Fatalf("sealed %q, want %q", got, want)
	}
	mu.Lock()
	if len(calls) != 1 || !slices.Equal(calls[0], []string{gw.Address().Mail()}) {
		t.Errorf("PrepareRelay calls %q", calls)
	}
	mu.Unlock()
	if raw, err := o.st.OutboxRaw(ctx, ids[0]); err != nil || !bytes.Equal(raw, relay) {
		t.Errorf("stored relay item changed: %q %v", raw, err)
	}
	// Prepared as encrypted: its Sent copy says so (store.E2EKeyword); the other one does not.
	for i, want := range []bool{true, false} {
		m, err := o.st.Message(ctx, sent[i].MailboxID, sent[i].UID)
		if err != nil {
			t.Fatal(err)
		}
		if m.Flags.Has(store.E2EKeyword) != want {
			t.Errorf("Sent copy %d: %s is %v, want %v (flags %v)", i, store.E2EKeyword, !want, want, m.Flags.Strings())
		}
	}
}
