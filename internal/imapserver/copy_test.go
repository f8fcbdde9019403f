package imapserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestCopy(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 3; i++ {
		deliver(t, ts.st, "INBOX", plainMsg(fmt.Sprint("m", i), "x"), `\Flagged`)
	}
	deliver(t, ts.st, "Archive", plainMsg("old", "x"))
	c := ts.client(t)
	selectBox(t, c, "INBOX")

	d, err := c.Copy(imap.SeqSetNum(1, 3), "Archive").Wait()
	if err != nil {
		t.Fatalf("COPY: %v", err)
	}
	arch := mailbox(t, ts.st, "Archive")
	if d.UIDValidity != arch.UIDValidity || d.SourceUIDs.String() != "1,3" || d.DestUIDs.String() != "2:3" {
		t.Errorf("COPYUID %d %v %v", d.UIDValidity, d.SourceUIDs, d.DestUIDs)
	}
	if arch.Messages != 3 {
		t.Errorf("Archive has %d messages", arch.Messages)
	}
	// Flags travel with the copy.
	l, err := ts.st.List(testCtx(t), arch.ID, storeListAll())
	if err != nil || !l.Messages[1].Flags.Has(`\Flagged`) {
		t.Errorf("copied flags: %+v %v", l.Messages, err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox: %v", err)
	}
	// COPY into the selected mailbox: EXISTS follows.
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	u, st := r.cmd("UID COPY 2 INBOX")
	m := mailbox(t, ts.st, "INBOX")
	if !strings.HasPrefix(st, fmt.Sprintf("OK [COPYUID %d 2 4]", m.UIDValidity)) || !has(u, "* 4 EXISTS") {
		t.Errorf("UID COPY into self: %q %q", u, st)
	}
	// Nothing to copy: OK without COPYUID.
	if _, st := r.cmd("UID COPY 99 Archive"); st != "OK COPY completed" {
		t.Errorf("empty COPY: %q", st)
	}
}

func TestMove(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 4; i++ {
		deliver(t, ts.st, "INBOX", plainMsg(fmt.Sprint("m", i), "x"))
	}
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	trash := mailbox(t, ts.st, "Trash")
	u := r.ok("MOVE 2:3 Trash")
	want := []string{fmt.Sprintf("* OK [COPYUID %d 2:3 1:2] COPY completed", trash.UIDValidity), "* 3 EXPUNGE", "* 2 EXPUNGE"}
	if strings.Join(u, "|") != strings.Join(want, "|") {
		t.Errorf("MOVE: %q, want %q", u, want)
	}
	if u := r.ok("FETCH 1:* UID"); len(u) != 2 || !has(u, "* 2 FETCH (UID 4)") {
		t.Errorf("after MOVE: %q", u)
	}
	if u := r.ok("UID MOVE 4 Archive"); !has(u, "* 2 EXPUNGE") {
		t.Errorf("UID MOVE: %q", u)
	}
	r.expect("NO", "TRYCREATE", "MOVE 1 Nope")
	r.expect("NO", "", "MOVE 1 INBOX")
	if m := mailbox(t, ts.st, "INBOX"); m.Messages != 1 {
		t.Errorf("INBOX has %d messages", m.Messages)
	}

	// Another session sees the move as EXPUNGE.
	c := ts.client(t)
	selectBox(t, c, "Trash")
	d, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait()
	if err != nil || d.DestUIDs.String() != "5" {
		t.Fatalf("MOVE via imapclient: %+v %v", d, err)
	}
	if u := r.ok("NOOP"); !has(u, "* 2 EXISTS") {
		t.Errorf("move into INBOX seen by the other session: %q", u)
	}
}
