package outbox

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// EnqueueSealed commits one item whose recipients are already sealed (a chunked message here), keeps
// no plaintext in the store, and the envelopes open to the message for each recipient.
func TestEnqueueSealed(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	from, _ := identity.Generate(8)
	a, _ := identity.Generate(8)
	b, _ := identity.Generate(8)
	msg := []byte("Subject: big\r\n\r\n" + strings.Repeat("plaintext line that must not be stored\r\n", 2000)) // ~80 KB: chunked
	id, err := EnqueueSealed(context.Background(), st, from, tangle.DevNet.ID, []identity.Address{a.Address(), b.Address(), a.Address()}, msg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	it, err := st.OutboxItem(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(it.Rcpts) != 2 {
		t.Fatalf("%d recipients, want 2 (duplicates merged)", len(it.Rcpts))
	}
	raw, err := st.OutboxRaw(context.Background(), id)
	if err != nil || bytes.Contains(raw, []byte("plaintext line")) {
		t.Fatalf("stored body %q, %v", raw, err)
	}
	for _, r := range it.Rcpts {
		if r.State != store.RcptSealed {
			t.Fatalf("state %s", r.State)
		}
		payloads, err := decodeBundle(r.Envelope)
		if err != nil || len(payloads) < 3 {
			t.Fatalf("%d payloads, %v", len(payloads), err)
		}
		to := a
		if r.Rcpt == b.Address().Mail() {
			to = b
		}
		op, _ := seal.NewOpener(to)
		tk := to.TagKey()
		var tag [8]byte
		copy(tag[:], tk[:8])
		m, err := op.Open(tangle.DevNet.ID, tag, payloads[len(payloads)-1])
		if err != nil || !bytes.Equal(m.ReplayKey[:], r.EnvelopeKey) {
			t.Fatalf("main envelope: %v", err)
		}
		mc, err := mail.ParseMailContent(m.Content)
		if err != nil || mc.Manifest == nil {
			t.Fatalf("main envelope is not a manifest: %v", err)
		}
	}
}
