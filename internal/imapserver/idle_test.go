package imapserver

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/store"
)

// updates collects a client's unilateral data.
type updates struct {
	exists  chan uint32
	expunge chan uint32
	flags   chan *imapclient.FetchMessageBuffer
}

func newUpdates() (*updates, *imapclient.Options) {
	u := &updates{exists: make(chan uint32, 100), expunge: make(chan uint32, 100), flags: make(chan *imapclient.FetchMessageBuffer, 100)}
	return u, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				u.exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { u.expunge <- seq },
		Fetch: func(m *imapclient.FetchMessageData) {
			if b, err := m.Collect(); err == nil {
				u.flags <- b
			}
		},
	}}
}

// goDeliver delivers from another goroutine, as the inbox layer would.
func goDeliver(t *testing.T, st *store.Store, name string, raw []byte) {
	inbox := mailbox(t, st, name)
	go func() {
		if _, err := st.Append(testCtx(t), store.NewMessage{MailboxID: inbox.ID, Raw: raw}); err != nil {
			t.Errorf("Append: %v", err)
		}
	}()
}

// within waits for a value on ch for at most d.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
	}
	var zero T
	return zero
}

// startIdle starts a server and a client that selects INBOX and idles.
func startIdle(t *testing.T) (*testServer, *updates, *imapclient.Client, *imapclient.IdleCommand) {
	t.Helper()
	ts := newTestServer(t)
	up, opts := newUpdates()
	c := ts.client(t, opts)
	selectBox(t, c, "INBOX")
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	return ts, up, c, idle
}

func TestIdleDelivery(t *testing.T) {
	ts, up, c, idle := startIdle(t)

	start := time.Now()
	goDeliver(t, ts.st, "INBOX", plainMsg("hello", "delivered while idling"))
	if n := within(t, up.exists, time.Second, "EXISTS"); n != 1 {
		t.Errorf("EXISTS %d", n)
	}
	t.Logf("EXISTS after %v", time.Since(start))
	// A delivery to another mailbox says nothing.
	deliver(t, ts.st, "Junk", plainMsg("spam", "x"))
	deliver(t, ts.st, "INBOX", plainMsg("second", "x"))
	if n := within(t, up.exists, time.Second, "EXISTS"); n != 2 {
		t.Errorf("EXISTS %d after the second delivery", n)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE end: %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "second" {
		t.Errorf("fetch after IDLE: %v %v", msgs, err)
	}
}

func TestIdleChangesFromOtherSession(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 3; i++ {
		deliver(t, ts.st, "INBOX", plainMsg(fmt.Sprint("m", i), "x"))
	}
	up, opts := newUpdates()
	a := ts.client(t, opts)
	selectBox(t, a, "INBOX")
	b := ts.client(t)
	selectBox(t, b, "INBOX")

	idle, err := a.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	m := within(t, up.flags, time.Second, "FETCH FLAGS")
	if m.SeqNum != 2 || m.UID != 2 || !hasFlag(m.Flags, imap.FlagFlagged) {
		t.Errorf("FETCH FLAGS: %+v", m)
	}

	if _, err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	within(t, up.flags, time.Second, "FETCH FLAGS (\\Deleted)")
	if seq := within(t, up.expunge, time.Second, "EXPUNGE"); seq != 1 {
		t.Errorf("EXPUNGE %d", seq)
	}
	// Message 2 is now 1 for both.
	if _, err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if m := within(t, up.flags, time.Second, "FETCH FLAGS"); m.SeqNum != 1 || m.UID != 2 {
		t.Errorf("after the expunge: %+v", m)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// Nothing else was queued.
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-up.flags:
		t.Errorf("extra FETCH: %+v", m)
	case n := <-up.expunge:
		t.Errorf("extra EXPUNGE %d", n)
	default:
	}
}

func TestIdleNotSelected(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	tag := r.send("IDLE")
	if line := r.readLine(); !strings.HasPrefix(line, "+ ") {
		t.Fatalf("IDLE: %q", line)
	}
	deliver(t, ts.st, "INBOX", plainMsg("x", "y"))
	fmt.Fprintf(r.c, "DONE\r\n")
	if u, st := r.readUntil(tag); len(u) != 0 || !strings.HasPrefix(st, "OK") {
		t.Errorf("IDLE end: %q %q", u, st)
	}
}

// TestIdleManyDeliveries: a burst of deliveries ends in the right EXISTS count.
func TestIdleManyDeliveries(t *testing.T) {
	ts, up, _, idle := startIdle(t)
	const n = 50
	for i := 0; i < n; i++ {
		goDeliver(t, ts.st, "INBOX", plainMsg(fmt.Sprint("burst ", i), "x"))
	}
	deadline := time.After(10 * time.Second)
	for last := uint32(0); last != n; {
		select {
		case last = <-up.exists:
		case <-deadline:
			t.Fatalf("EXISTS reached only %d of %d", last, n)
		}
	}
	idle.Close()
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestOverflowResync: a session that falls behind the change bus rebuilds its view from a listing and
// tells the client the difference.
func TestOverflowResync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	st, err := store.Open(path, store.WithUIDValidity(testUIDValidity()), store.WithChangeLimit(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := startServer(t, st)
	for i := 0; i < 4; i++ {
		deliver(t, st, "INBOX", plainMsg(fmt.Sprint("m", i), "x"))
	}
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")

	ctx := testCtx(t)
	inbox := mailbox(t, st, "INBOX")
	if _, err := st.StoreFlags(ctx, inbox.ID, store.UIDSetOf(1, 3), store.FlagChange{Op: store.FlagsAdd,
		Flags: store.Flags{System: store.FlagDeleted}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StoreFlags(ctx, inbox.ID, store.UIDSetOf(2), store.FlagChange{Op: store.FlagsAdd,
		Flags: store.Flags{System: store.FlagFlagged}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Expunge(ctx, inbox.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ { // well past the limit of 4
		deliver(t, st, "INBOX", plainMsg(fmt.Sprint("new", i), "x"))
	}
	u := r.ok("NOOP")
	want := []string{"* 3 EXPUNGE", "* 1 EXPUNGE", "* 8 EXISTS"}
	for _, w := range want {
		if !has(u, w) {
			t.Errorf("resync: missing %q in %q", w, u)
		}
	}
	if !has(u, "* 1 FETCH", "UID 2", `\Flagged`) {
		t.Errorf("resync: no flags for UID 2 in %q", u)
	}
	// The view matches the store.
	l, err := st.List(ctx, inbox.ID, store.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	u = r.ok("FETCH 1:* UID")
	if len(u) != len(l.Messages) {
		t.Fatalf("view %q, store %d messages", u, len(l.Messages))
	}
	for i, m := range l.Messages {
		if w := fmt.Sprintf("* %d FETCH (UID %d)", i+1, m.UID); u[i] != w {
			t.Errorf("view line %d: %q, want %q", i, u[i], w)
		}
	}
}

func TestSelectedMailboxDeleted(t *testing.T) {
	ts := newTestServer(t)
	c := ts.client(t)
	if err := c.Create("Temp", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	deliver(t, ts.st, "Temp", plainMsg("a", "x"))
	deliver(t, ts.st, "Temp", plainMsg("b", "x"))
	r := ts.rawLogin(t)
	r.ok("SELECT Temp")
	if err := c.Delete("Temp").Wait(); err != nil {
		t.Fatal(err)
	}
	if u := r.ok("NOOP"); strings.Join(u, "|") != "* 2 EXPUNGE|* 1 EXPUNGE" {
		t.Errorf("NOOP after the delete: %q", u)
	}
	if u := r.ok("FETCH 1:* UID"); len(u) != 0 {
		t.Errorf("FETCH: %q", u)
	}
	r.expect("NO", "NONEXISTENT", `STORE 1 +FLAGS (\Seen)`)
	r.ok("SELECT INBOX")
}
