package imapserver

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestStoreFlags(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 3; i++ {
		deliver(t, ts.st, "INBOX", plainMsg("m", "x"))
	}
	c := ts.client(t)
	selectBox(t, c, "INBOX")

	msgs, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "Work"}}, nil).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("STORE +FLAGS: %v %v", msgs, err)
	}
	for _, m := range msgs {
		if !hasFlag(m.Flags, imap.FlagFlagged) || !hasFlag(m.Flags, "work") {
			t.Errorf("flags after +FLAGS: %v", m.Flags)
		}
	}
	msgs, err = c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 || hasFlag(msgs[0].Flags, imap.FlagFlagged) || !hasFlag(msgs[0].Flags, "work") {
		t.Fatalf("UID STORE -FLAGS: %+v %v", msgs, err)
	}
	msgs, err = c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{imap.FlagAnswered, imap.FlagSeen}}, nil).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].Flags) != 2 {
		t.Fatalf("STORE FLAGS: %+v %v", msgs, err)
	}
	// .SILENT: no FETCH response.
	msgs, err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	if err != nil || len(msgs) != 0 {
		t.Fatalf("STORE .SILENT: %+v %v", msgs, err)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait()
	if err != nil || *st.NumUnseen != 1 {
		t.Errorf("unseen after stores: %v %v", st, err)
	}

	r := ts.rawLogin(t)
	u := r.ok("SELECT INBOX")
	// The new keyword is a mailbox flag now, and permanent flags allow new keywords.
	if !has(u, "* FLAGS (", "Work") || !has(u, `PERMANENTFLAGS (`, `\*`) {
		t.Errorf("SELECT flags: %q", u)
	}
	r.expect("BAD", "", `STORE 1 +FLAGS (\Bogus)`)
	r.expect("BAD", "", `STORE 1 +FLAGS (bad"atom)`)
	r.expect("BAD", "", `STORE 1 +KEYWORDS (x)`)
	// \Recent is ignored, not an error.
	r.ok(`STORE 1 +FLAGS (\Recent)`)
	// EXAMINE is read-only.
	r.ok("EXAMINE INBOX")
	r.expect("NO", "", `STORE 1 +FLAGS (\Deleted)`)
}

// TestStoreNoEcho checks the modseq rule: a session's own STORE is not sent back to it by the next
// poll, a .SILENT one neither, but changes from another session are.
func TestStoreNoEcho(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("a", "x"))
	deliver(t, ts.st, "INBOX", plainMsg("b", "y"))
	a := ts.rawLogin(t)
	b := ts.rawLogin(t)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")

	if u := a.ok(`STORE 1 +FLAGS (\Flagged)`); len(u) != 1 {
		t.Errorf("STORE: %q", u)
	}
	if u := a.ok("NOOP"); len(u) != 0 {
		t.Errorf("echo after STORE: %q", u)
	}
	a.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
	if u := a.ok("NOOP"); len(u) != 0 {
		t.Errorf("echo after STORE.SILENT: %q", u)
	}
	// The other session learns both, coalesced into the newest flags.
	if u := b.ok("NOOP"); len(u) != 1 || !has(u, "* 1 FETCH", `\Flagged`, `\Seen`) {
		t.Errorf("other session: %q", u)
	}

	// b changes message 2, then a silently changes it too: a gets the combined flags once (with the
	// STORE's completion, as go-imap polls after every command).
	b.ok(`STORE 2 +FLAGS.SILENT (\Answered)`)
	if u := a.ok(`STORE 2 +FLAGS.SILENT (\Draft)`); len(u) != 1 || !has(u, "* 2 FETCH", `\Answered`, `\Draft`) {
		t.Errorf("combined flags after a silent STORE: %q", u)
	}
	if u := a.ok("NOOP"); len(u) != 0 {
		t.Errorf("NOOP after the combined flags: %q", u)
	}
	// …and b, which did not see a's change, gets it.
	if u := b.ok("NOOP"); len(u) != 1 || !has(u, "* 2 FETCH", `\Answered`, `\Draft`) {
		t.Errorf("b after a's STORE: %q", u)
	}
	// A STORE that changes nothing is not broadcast.
	a.ok(`STORE 2 +FLAGS.SILENT (\Draft)`)
	if u := b.ok("NOOP"); len(u) != 0 {
		t.Errorf("no-op STORE reached b: %q", u)
	}
}
