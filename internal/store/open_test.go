package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestOpenPragmas(t *testing.T) {
	s := openTest(t)
	check := func(name string, pragma string, want string) {
		t.Helper()
		for _, c := range []struct {
			which string
			get   func() (string, error)
		}{
			{"writer", func() (v string, err error) { err = s.wdb.QueryRow("PRAGMA " + pragma).Scan(&v); return }},
			{"reader", func() (v string, err error) { err = s.rdb.QueryRow("PRAGMA " + pragma).Scan(&v); return }},
		} {
			v, err := c.get()
			if err != nil {
				t.Fatalf("%s PRAGMA %s: %v", c.which, pragma, err)
			}
			if v != want {
				t.Errorf("%s: %s PRAGMA %s = %q, want %q", name, c.which, pragma, v, want)
			}
		}
	}
	check("WAL", "journal_mode", "wal")
	check("synchronous=FULL", "synchronous", "2")
	check("foreign keys", "foreign_keys", "1")
	check("busy timeout", "busy_timeout", "10000")
	var qo int
	if err := s.rdb.QueryRow("PRAGMA query_only").Scan(&qo); err != nil || qo != 1 {
		t.Errorf("reader query_only = %d, %v; want 1", qo, err)
	}
}

func TestRoleMailboxes(t *testing.T) {
	s := openTest(t)
	ms, err := s.Mailboxes(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		role Role
		use  string
	}{
		"INBOX":   {RoleInbox, ""},
		"Sent":    {RoleSent, `\Sent`},
		"Drafts":  {RoleDrafts, `\Drafts`},
		"Trash":   {RoleTrash, `\Trash`},
		"Junk":    {RoleJunk, `\Junk`},
		"Archive": {RoleArchive, `\Archive`},
		"Chats":   {RoleChats, ""},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mailboxes, want %d: %+v", len(ms), len(want), ms)
	}
	uvs := map[uint32]bool{}
	for _, m := range ms {
		w, ok := want[m.Name]
		if !ok {
			t.Errorf("unexpected mailbox %q", m.Name)
			continue
		}
		if m.Role != w.role || m.SpecialUse != w.use {
			t.Errorf("%s: role %q special-use %q, want %q %q", m.Name, m.Role, m.SpecialUse, w.role, w.use)
		}
		if !m.Subscribed {
			t.Errorf("%s not subscribed", m.Name)
		}
		if m.UIDNext != 1 || m.UIDValidity == 0 || uvs[m.UIDValidity] {
			t.Errorf("%s: UIDNEXT %d UIDVALIDITY %d (must be 1, unique non-zero)", m.Name, m.UIDNext, m.UIDValidity)
		}
		uvs[m.UIDValidity] = true
		byRole, err := s.MailboxByRole(testCtx(t), m.Role)
		if err != nil || byRole.ID != m.ID {
			t.Errorf("MailboxByRole(%q) = %v, %v", m.Role, byRole.ID, err)
		}
	}
}

func TestReopenKeepsSchemaAndMailboxes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	before, _ := s.Mailboxes(testCtx(t))
	s.Close()

	s = openTestAt(t, path)
	after, err := s.Mailboxes(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(before, after, func(a, b Mailbox) bool { return a.ID == b.ID && a.UIDValidity == b.UIDValidity }) {
		t.Errorf("reopen changed mailboxes:\n%+v\n%+v", before, after)
	}
	var versions []int
	rows, err := s.rdb.Query(`SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		rows.Scan(&v)
		versions = append(versions, v)
	}
	rows.Close()
	if len(versions) != SchemaVersion() || versions[len(versions)-1] != SchemaVersion() {
		t.Errorf("schema versions %v, want 1..%d once each", versions, SchemaVersion())
	}
}

// A store written before package sqlitedb recorded its migrations with a column "applied"; it opens,
// keeps its mail, and its bookkeeping is brought to sqlitedb's (applied_at) in passing.
func TestOpenOldBookkeeping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	inbox := mustMailbox(t, s, "INBOX")
	mustAppend(t, s, inbox.ID, rawMsg("old", "body"))
	if err := s.Update(testCtx(t), func(tx *Tx) error {
		_, err := tx.exec(`ALTER TABLE schema_version RENAME COLUMN applied_at TO applied`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestAt(t, path)
	if uids := listUIDs(t, s, inbox.ID); len(uids) != 1 {
		t.Fatalf("reopened old store: UIDs %v, want its one message", uids)
	}
	var cols int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM pragma_table_info('schema_version') WHERE name = 'applied_at'`).Scan(&cols); err != nil || cols != 1 {
		t.Fatalf("schema_version has no applied_at column (%d, %v)", cols, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	err := s.Update(testCtx(t), func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'future.sql', 0)`, SchemaVersion()+1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestDurableAcrossClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	inbox := mustMailbox(t, s, "INBOX")
	a := mustAppend(t, s, inbox.ID, rawMsg("durable", "body"), `\Flagged`)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(testCtx(t), NewMessage{MailboxID: inbox.ID, Raw: rawMsg("x", "y")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}

	s = openTestAt(t, path)
	raw, err := s.Raw(testCtx(t), inbox.ID, a.UID)
	if err != nil || string(raw) != string(rawMsg("durable", "body")) {
		t.Fatalf("after reopen: %q, %v", raw, err)
	}
	m, _ := s.Message(testCtx(t), inbox.ID, a.UID)
	if !m.Flags.Has(`\Flagged`) {
		t.Errorf("flags lost: %v", m.Flags)
	}
	if got := mustMailbox(t, s, "INBOX").UIDNext; got != a.UID+1 {
		t.Errorf("UIDNEXT after reopen %d, want %d", got, a.UID+1)
	}
}

// TestDurableAfterAbruptExit appends in a child process that exits without closing the store right
// after Append returns, then checks the message is there.
func TestDurableAfterAbruptExit(t *testing.T) {
	if path := os.Getenv("STORE_TEST_CHILD_DB"); path != "" {
		s, err := Open(path)
		if err != nil {
			os.Exit(2)
		}
		m, err := s.MailboxByRole(testCtx(t), RoleInbox)
		if err != nil {
			os.Exit(3)
		}
		if _, err := s.Append(testCtx(t), NewMessage{MailboxID: m.ID, Raw: rawMsg("child", "survives")}); err != nil {
			os.Exit(4)
		}
		os.Exit(0) // no Close, no checkpoint
	}
	path := filepath.Join(t.TempDir(), "mail.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurableAfterAbruptExit$")
	cmd.Env = append(os.Environ(), "STORE_TEST_CHILD_DB="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := openTestAt(t, path)
	inbox := mustMailbox(t, s, "INBOX")
	raw, err := s.Raw(testCtx(t), inbox.ID, 1)
	if err != nil || string(raw) != string(rawMsg("child", "survives")) {
		t.Fatalf("message appended by the exited child: %q, %v", raw, err)
	}
}
