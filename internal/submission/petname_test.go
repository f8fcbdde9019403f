package submission

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tanglemail/tanglemail/internal/store"
)

// A contact's petname as a recipient is refused with the contact's address in the reply, so the user
// knows what to write to.
func TestRcptPetname(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.AddContact(ctx, "Bob", rcpt1); err != nil {
		t.Fatal(err)
	}
	if err := st.AddContact(ctx, "carol", addr0); err != nil { // stored without the domain
		t.Fatal(err)
	}
	_, addr := startServer(t, StoreBackend{Store: st}, testOptions(t))
	c := authedClient(t, addr)
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rcpt, want string }{
		{"bob@tangle", "bob is the name of your contact, not an address: write to <" + rcpt1 + ">"},
		{"BOB@tangle", "write to <" + rcpt1 + ">"},
		{"bob@localhost", "write to <" + rcpt1 + ">"},
		{"carol@TANGLE", "write to <" + own + ">"},
		{"dave@tangle", "dave@tangle is not a valid tangle address"},
		{"bob@example.org", "not a tangle address"},
	} {
		wantCode(t, c.Rcpt(tc.rcpt, nil), 550, "5.1.1", tc.want)
	}
	// The transaction goes on: a real address is still accepted.
	if err := c.Rcpt(rcpt1, nil); err != nil {
		t.Fatal(err)
	}
}
