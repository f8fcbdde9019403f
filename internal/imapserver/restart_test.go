package imapserver

import (
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/tanglemail/tanglemail/internal/store"
)

// TestUIDValidityStableAcrossRestart: UIDVALIDITY and UIDNEXT come from the store, so a restart of
// server and store changes neither, and UIDs are not reused.
func TestUIDValidityStableAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	open := func() (*store.Store, *testServer) {
		st, err := store.Open(path) // the default generator (clock): no test values
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // after the server's cleanup (LIFO)
		return st, startServer(t, st)
	}

	st, ts := open()
	c := ts.client(t)
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, c, "INBOX", plainMsg("one", "x"), nil)
	appendMsg(t, c, "INBOX", plainMsg("two", "x"), nil)
	before := map[string]*imap.SelectData{}
	for _, n := range []string{"INBOX", "Projects", "Sent"} {
		before[n] = selectBox(t, c, n)
	}
	c.Logout().Wait()
	ts.stop()
	st.Close()

	_, ts = open()
	c = ts.client(t)
	for n, b := range before {
		a := selectBox(t, c, n)
		if a.UIDValidity != b.UIDValidity || a.UIDNext != b.UIDNext || a.NumMessages != b.NumMessages {
			t.Errorf("%s: before %+v, after %+v", n, b, a)
		}
	}
	d := appendMsg(t, c, "INBOX", plainMsg("three", "x"), nil)
	if d.UID != before["INBOX"].UIDNext || d.UIDValidity != before["INBOX"].UIDValidity {
		t.Errorf("APPENDUID after restart: %+v, UIDNEXT was %d", d, before["INBOX"].UIDNext)
	}
}
