package store

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// enqueueRcpts enqueues one item to rcpts and returns its recipients, by recipient.
func enqueueRcpts(t *testing.T, s *Store, rcpts ...string) []OutboxRcpt {
	t.Helper()
	var id OutboxID
	err := s.Update(testCtx(t), func(tx *Tx) (err error) {
		id, _, err = tx.Enqueue(OutboxNew{From: "alice@tangle", Rcpts: rcpts, Raw: rawMsg("to", "them")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.OutboxItem(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return it.Rcpts
}

// checkRcptAddrs checks that rs (by recipient) carry bob's address for bob and none for the others.
func checkRcptAddrs(t *testing.T, rs []OutboxRcpt, bob identity.Address) {
	t.Helper()
	if len(rs) != 3 {
		t.Fatalf("%d recipients, want 3", len(rs))
	}
	for _, r := range rs {
		want := identity.Address{}
		if r.Rcpt == strings.ToUpper(bob.Mail()) {
			want = bob
		}
		if !r.Addr.Equal(want) || (want.Key == nil) != (r.Addr.Key == nil) {
			t.Errorf("%s: address %v, want %v", r.Rcpt, r.Addr, want)
		}
	}
}

func testAddress(t *testing.T) identity.Address {
	t.Helper()
	id, err := identity.Generate(8)
	if err != nil {
		t.Fatal(err)
	}
	return id.Address()
}

// TestRecipientsParsedAtEnqueue: Enqueue parses each recipient once; the outbox reads the address, and
// a recipient that is not a tangle address (no domain, another domain) has none.
func TestRecipientsParsedAtEnqueue(t *testing.T) {
	s := openTest(t)
	bob := testAddress(t)
	rs := enqueueRcpts(t, s, strings.ToUpper(bob.Mail()), bob.String(), "carol@example.org")
	checkRcptAddrs(t, rs, bob)
	if n := countRows(t, s, "outbox_rcpt WHERE addr IS NULL"); n != 0 {
		t.Errorf("%d recipients without a parsed address column", n)
	}
}

// TestRecipientsAdoptedAtOpen: recipients enqueued before migration 0004 (addr NULL) are parsed once,
// when the store opens.
func TestRecipientsAdoptedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	bob := testAddress(t)
	enqueueRcpts(t, s, strings.ToUpper(bob.Mail()), bob.String(), "carol@example.org")
	if _, err := s.wdb.Exec(`UPDATE outbox_rcpt SET addr = NULL`); err != nil {
		t.Fatal(err)
	}
	items, err := s.OutboxItems(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range items[0].Rcpts {
		if r.Addr.Key != nil {
			t.Fatalf("before adoption %s has an address", r.Rcpt)
		}
	}
	s.Close()

	s = openTestAt(t, path)
	if n := countRows(t, s, "outbox_rcpt WHERE addr IS NULL"); n != 0 {
		t.Errorf("%d recipients not adopted", n)
	}
	items, err = s.OutboxItems(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	checkRcptAddrs(t, items[0].Rcpts, bob)
}
