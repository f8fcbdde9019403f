package submission

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// TestStoreBackend: after 250, the Sent copy and the outbox item survive closing and reopening the
// store.
func TestStoreBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "mail.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startServer(t, StoreBackend{Store: st}, testOptions(t))
	c := authedClient(t, addr)
	msg := testMessage("stored", "Bcc: <"+rcpt2+">")
	reply, err := send(t, c, own, []string{rcpt1, rcpt2}, msg)
	if err != nil {
		t.Fatal(err)
	}
	_, idText, ok := strings.Cut(reply, "queued as ")
	if !ok {
		t.Fatalf("reply %q", reply)
	}
	n, err := strconv.ParseInt(idText, 10, 64)
	id := store.OutboxID(n)
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes again (a client retrying after a lost reply): the same item, nothing added.
	reply2, err := send(t, c, own, []string{rcpt1, rcpt2}, msg)
	if err != nil || reply2 != reply {
		t.Fatalf("resubmission: %q %v, want %q", reply2, err, reply)
	}
	st = reopenStore(t, c, srv, st, path)
	items, err := st.OutboxItems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].ID != id {
		t.Fatalf("outbox items %+v, want one with id %d", items, id)
	}
	it := items[0]
	if it.From != own {
		t.Errorf("From %q", it.From)
	}
	var rcpts []string
	for _, r := range it.Rcpts {
		rcpts = append(rcpts, r.Rcpt)
		if r.State != store.RcptPending {
			t.Errorf("%s: state %s", r.Rcpt, r.State)
		}
	}
	if want := []string{rcpt1, rcpt2}; strings.Join(rcpts, " ") != strings.Join(want, " ") {
		t.Errorf("recipients %v, want %v", rcpts, want)
	}
	raw, err := st.OutboxRaw(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, msg) {
		t.Errorf("outbox bytes differ from the submission:\n%q\n%q", raw, msg)
	}
	if d := mail.StripBcc(raw); mail.HasField(d, "Bcc") || bytes.Contains(d, []byte(rcpt2)) {
		t.Error("StripBcc of the outbox bytes keeps the Bcc")
	}
	sent, err := st.MailboxByRole(ctx, store.RoleSent)
	if err != nil {
		t.Fatal(err)
	}
	if it.SentMailboxID != sent.ID || it.SentUID == 0 {
		t.Fatalf("Sent copy at %d/%d, Sent is %d", it.SentMailboxID, it.SentUID, sent.ID)
	}
	copyRaw, err := st.Raw(ctx, sent.ID, it.SentUID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copyRaw, msg) || !mail.HasField(copyRaw, "Bcc") {
		t.Errorf("Sent copy:\n%q", copyRaw)
	}
	m, err := st.Message(ctx, sent.ID, it.SentUID)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Flags.Has(`\Seen`) || m.Meta.OutboxID != id {
		t.Errorf("Sent copy flags %v, outbox id %d", m.Flags.Strings(), m.Meta.OutboxID)
	}
}

// reopenStore ends the client's session, closes the server and the store at path, and opens the
// store again (closed when the test ends): what was acknowledged must be there.
func reopenStore(t *testing.T, c *smtp.Client, srv *Server, st *store.Store, path string) *store.Store {
	t.Helper()
	c.Quit()
	srv.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
