package imapserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/store"
)

func storeListAll() store.ListQuery { return store.ListQuery{} }

func TestExpunge(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 6; i++ {
		deliver(t, ts.st, "INBOX", plainMsg(fmt.Sprint("m", i), "x"))
	}
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	r.ok(`STORE 2,4,5 +FLAGS.SILENT (\Deleted)`)
	if u := r.ok("EXPUNGE"); strings.Join(u, "|") != "* 5 EXPUNGE|* 4 EXPUNGE|* 2 EXPUNGE" {
		t.Errorf("EXPUNGE: %q", u)
	}
	if u := r.ok("FETCH 1:* UID"); len(u) != 3 || !has(u, "* 3 FETCH (UID 6)") {
		t.Errorf("after EXPUNGE: %q", u)
	}
	// UID EXPUNGE (RFC 4315 §2.1) only touches the given UIDs.
	r.ok(`STORE 1:* +FLAGS.SILENT (\Deleted)`)
	if u := r.ok("UID EXPUNGE 3"); strings.Join(u, "|") != "* 2 EXPUNGE" {
		t.Errorf("UID EXPUNGE: %q", u)
	}
	// EXAMINE: EXPUNGE refused, CLOSE expunges nothing.
	r.ok("EXAMINE INBOX")
	r.expect("NO", "", "EXPUNGE")
	r.ok("CLOSE")
	if m := mailbox(t, ts.st, "INBOX"); m.Messages != 2 {
		t.Fatalf("INBOX has %d messages after CLOSE in EXAMINE", m.Messages)
	}
	// CLOSE expunges silently.
	r.ok("SELECT INBOX")
	if u := r.ok("CLOSE"); len(u) != 0 {
		t.Errorf("CLOSE: %q", u)
	}
	if m := mailbox(t, ts.st, "INBOX"); m.Messages != 0 {
		t.Errorf("INBOX has %d messages after CLOSE", m.Messages)
	}
	r.expect("BAD", "", "EXPUNGE") // not selected any more
}

// TestExpungeFromOtherSession: EXPUNGE reaches other sessions, never during FETCH/STORE/SEARCH by
// sequence number (RFC 9051 §7.5.1), and sequence numbers stay per session until it is told.
func TestExpungeFromOtherSession(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 3; i++ {
		deliver(t, ts.st, "INBOX", plainMsg(fmt.Sprint("m", i), "x"))
	}
	a := ts.rawLogin(t)
	b := ts.rawLogin(t)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	b.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")

	// a still numbers message 3 as 3 while it has not been told.
	u := a.ok("FETCH 3 UID")
	if !has(u, "* 3 FETCH (UID 3)") || has(u, "EXPUNGE") {
		t.Errorf("FETCH before the EXPUNGE is sent: %q", u)
	}
	// Message 2 is gone from the store: FETCH leaves it out.
	if u := a.ok("FETCH 2 UID"); has(u, "FETCH (UID 2)") {
		t.Errorf("FETCH of an expunged message: %q", u)
	}
	if u := a.ok("NOOP"); strings.Join(u, "|") != "* 2 EXPUNGE" {
		t.Errorf("NOOP: %q", u)
	}
	if u := a.ok("FETCH 2 UID"); !has(u, "* 2 FETCH (UID 3)") {
		t.Errorf("after EXPUNGE: %q", u)
	}
	// UID commands may carry EXPUNGE.
	b.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	if u := a.ok("UID FETCH 1:* UID"); !has(u, "* 1 EXPUNGE") {
		t.Errorf("UID FETCH: %q", u)
	}
}
