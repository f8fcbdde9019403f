package imapserver

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestCreateRenameDelete(t *testing.T) {
	ts := newTestServer(t)
	c := ts.client(t)

	if err := c.Create("Projects/", nil).Wait(); err != nil { // trailing delimiter: creates Projects
		t.Fatalf("create: %v", err)
	}
	if err := c.Create("Projects/Tangle", nil).Wait(); err != nil {
		t.Fatalf("create child: %v", err)
	}
	if err := c.Create("Projects", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("create existing: %v", err)
	}
	if err := c.Create("inbox", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("create inbox: %v", err)
	}
	if err := c.Create("bad//name", nil).Wait(); imapCode(err) != imap.ResponseCodeCannot {
		t.Errorf("create bad name: %v", err)
	}

	deliver(t, ts.st, "Projects/Tangle", plainMsg("kept", "body"))
	before := mailbox(t, ts.st, "Projects/Tangle")

	if err := c.Rename("Projects", "Work", nil).Wait(); err != nil {
		t.Fatalf("rename: %v", err)
	}
	after := mailbox(t, ts.st, "Work/Tangle")
	if after.ID != before.ID || after.UIDValidity != before.UIDValidity || after.Messages != 1 {
		t.Errorf("rename changed the child: %+v -> %+v", before, after)
	}
	if err := c.Rename("Nope", "Other", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("rename missing: %v", err)
	}
	if err := c.Rename("Work", "Sent", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("rename onto existing: %v", err)
	}

	if err := c.Delete("Work/Tangle").Wait(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.Delete("Work/Tangle").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("delete twice: %v", err)
	}
	if err := c.Delete("Trash").Wait(); imapCode(err) != imap.ResponseCodeCannot {
		t.Errorf("delete special-use mailbox: %v", err)
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Errorf("delete INBOX succeeded")
	}

	// A new mailbox under an old name has a new UIDVALIDITY.
	if err := c.Create("Work/Tangle", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if again := mailbox(t, ts.st, "Work/Tangle"); again.UIDValidity <= before.UIDValidity {
		t.Errorf("re-created mailbox UIDVALIDITY %d, old %d", again.UIDValidity, before.UIDValidity)
	}
}

func TestStatus(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("a", "1"))
	deliver(t, ts.st, "INBOX", plainMsg("b", "22"), `\Seen`, `\Deleted`)
	c := ts.client(t)
	d, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		NumUnseen: true, NumDeleted: true, Size: true, AppendLimit: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	m := mailbox(t, ts.st, "INBOX")
	if *d.NumMessages != 2 || d.UIDNext != 3 || d.UIDValidity != m.UIDValidity || *d.NumUnseen != 1 ||
		*d.NumDeleted != 1 || *d.Size != m.Size || d.AppendLimit == nil || *d.AppendLimit != DefaultMaxAppendSize {
		t.Errorf("STATUS = %+v", d)
	}
	if _, err := c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("status of missing mailbox: %v", err)
	}
	r := ts.rawLogin(t)
	r.expect("BAD", "", "STATUS INBOX (DELETED-STORAGE)")
	r.expect("BAD", "", "STATUS INBOX (BOGUS)")
	if u := r.ok("STATUS INBOX (RECENT MESSAGES)"); !has(u, "RECENT 0", "MESSAGES 2") {
		t.Errorf("STATUS RECENT: %q", u)
	}
}

func TestNamespace(t *testing.T) {
	ts := newTestServer(t)
	c := ts.client(t)
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' || ns.Other != nil || ns.Shared != nil {
		t.Errorf("NAMESPACE = %+v", ns)
	}
}
