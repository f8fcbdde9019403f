package submission

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

func gatewayAddress(t testing.TB) identity.Address {
	t.Helper()
	a, err := identity.ParseAddress(rcpt2)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRelayRecipients: with a relay gateway, Internet recipients are accepted (once each, any case)
// and handed to the backend apart from the tangle ones; without one they stay refused (TestRcpt).
func TestRelayRecipients(t *testing.T) {
	be := &memBackend{}
	opts := testOptions(t)
	opts.RelayGateway = gatewayAddress(t)
	_, addr := startServer(t, be, opts)
	c := authedClient(t, addr)
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"bob@localhost", "bob@nodot", "x@" + strings.Repeat("a", 260) + ".test"} {
		wantCode(t, c.Rcpt(bad, nil), 550, "5.1.1", "")
	}
	c.Reset()
	if _, err := send(t, c, own, []string{"bob@example.test", rcpt1, "BOB@example.test", "carol@example.org"}, testMessage("out")); err != nil {
		t.Fatal(err)
	}
	s := be.only(t)
	if strings.Join(s.Internet, ",") != "bob@example.test,carol@example.org" || len(s.Rcpts) != 1 || !s.RelayVia.Equal(opts.RelayGateway) {
		t.Fatalf("Internet %v Rcpts %v via %v", s.Internet, s.Rcpts, s.RelayVia)
	}
}

// TestStoreBackendRelay: the tangle recipients get the message, the gateway the relay message naming
// the Internet recipients; with only Internet recipients the relay message is the one item.
func TestStoreBackendRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opts := testOptions(t)
	opts.RelayGateway = gatewayAddress(t)
	_, addr := startServer(t, StoreBackend{Store: st}, opts)
	c := authedClient(t, addr)
	msg := testMessage("both", "Bcc: <hidden@example.org>")
	if _, err := send(t, c, own, []string{rcpt1, "bob@example.test", "hidden@example.org"}, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := send(t, c, own, []string{rcpt1, "bob@example.test", "hidden@example.org"}, msg); err != nil {
		t.Fatal(err) // a retry adds nothing
	}
	if _, err := send(t, c, own, []string{"bob@example.test"}, testMessage("only")); err != nil {
		t.Fatal(err)
	}
	items, err := st.OutboxItems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("%d outbox items, want 3", len(items))
	}
	gw := opts.RelayGateway.Mail()
	var relays int
	for _, it := range items {
		raw, err := st.OutboxRaw(ctx, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if it.Rcpts[0].Rcpt != gw {
			if len(it.Rcpts) != 1 || it.Rcpts[0].Rcpt != rcpt1 || mail.IsRelay(raw) || bytes.Contains(mail.StripBcc(raw), []byte("example")) {
				t.Errorf("tangle item %v:\n%s", it.Rcpts, raw)
			}
			continue
		}
		relays++
		rcpts, inner, err := mail.ParseRelay(mail.StripBcc(raw))
		if err != nil {
			t.Fatal(err)
		}
		if mail.HasField(inner, "Bcc") {
			t.Errorf("Bcc reaches the gateway's message:\n%s", inner)
		}
		if got := strings.Join(rcpts, ","); got != "bob@example.test,hidden@example.org" && got != "bob@example.test" {
			t.Errorf("relay recipients %s", got)
		}
	}
	if relays != 2 {
		t.Errorf("%d relay items, want 2", relays)
	}
}

// TestStoreBackendRelaySpooled: a message large enough to be spooled reaches the gateway whole in its
// relay message (and the Sent copy is whole), with and without tangle recipients.
func TestStoreBackendRelaySpooled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opts := testOptions(t)
	opts.RelayGateway = gatewayAddress(t)
	opts.SpoolDir = filepath.Join(dir, "spool")
	_, addr := startServer(t, StoreBackend{Store: st}, opts)
	c := authedClient(t, addr)
	for _, rcpts := range [][]string{{"bob@example.test"}, {rcpt1, "bob@example.test"}} {
		msg := largeMessage("spooled relay "+rcpts[0], SpoolThreshold+4321)
		if _, err := send(t, c, own, rcpts, msg); err != nil {
			t.Fatal(err)
		}
	}
	items, err := st.OutboxItems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var relays int
	for _, it := range items {
		raw, err := st.OutboxRaw(ctx, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < SpoolThreshold {
			t.Errorf("outbox item %v has %d bytes: the spooled text is lost", it.Rcpts, len(raw))
		}
		if mail.IsRelay(raw) {
			relays++
		}
	}
	if relays != 2 {
		t.Errorf("%d relay items, want 2", relays)
	}
}
