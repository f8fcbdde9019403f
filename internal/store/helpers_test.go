package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testUIDValidity returns a deterministic UIDVALIDITY generator: 100, 101, …
func testUIDValidity() func() uint32 {
	var n atomic.Uint32
	n.Store(99)
	return func() uint32 { return n.Add(1) }
}

func openTestAt(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, append([]Option{WithUIDValidity(testUIDValidity())}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openTestAt(t, filepath.Join(t.TempDir(), "mail.db"), opts...)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawMsg builds a small CRLF message.
func rawMsg(subject, body string) []byte {
	return []byte("From: Alice <alice@tangle>\r\nTo: bob@tangle\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2026 15:04:05 +0100\r\nMessage-ID: <" + subject + "@tangle>\r\n\r\n" + body)
}

func mustMailbox(t testing.TB, s *Store, name string) Mailbox {
	t.Helper()
	m, err := s.Mailbox(testCtx(t), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	return m
}

func mustAppend(t testing.TB, s *Store, mboxID MailboxID, raw []byte, flags ...string) Appended {
	t.Helper()
	f, err := ParseFlags(flags...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Append(testCtx(t), NewMessage{MailboxID: mboxID, Raw: raw, Flags: f})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return a
}

func listUIDs(t testing.TB, s *Store, mboxID MailboxID) []UID {
	t.Helper()
	l, err := s.List(testCtx(t), mboxID, ListQuery{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []UID
	for _, m := range l.Messages {
		out = append(out, m.UID)
	}
	return out
}

// checkCounts verifies the trigger-maintained counters of every mailbox against the messages.
func checkCounts(t testing.TB, s *Store) {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT mb.name, mb.messages, mb.unseen, mb.deleted, mb.size,
		(SELECT count(*) FROM message m WHERE m.mailbox_id = mb.id AND m.expunged = 0),
		(SELECT count(*) FROM message m WHERE m.mailbox_id = mb.id AND m.expunged = 0 AND (m.flags & 1) = 0),
		(SELECT count(*) FROM message m WHERE m.mailbox_id = mb.id AND m.expunged = 0 AND (m.flags & 8) <> 0),
		(SELECT coalesce(sum(size), 0) FROM message m WHERE m.mailbox_id = mb.id AND m.expunged = 0),
		mb.highest_modseq,
		(SELECT coalesce(max(modseq), 0) FROM message m WHERE m.mailbox_id = mb.id)
		FROM mailbox mb`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var a [4]int64
		var b [4]int64
		var hms, maxms int64
		if err := rows.Scan(&name, &a[0], &a[1], &a[2], &a[3], &b[0], &b[1], &b[2], &b[3], &hms, &maxms); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("mailbox %q counters (messages, unseen, deleted, size) = %v, messages say %v", name, a, b)
		}
		if hms < maxms {
			t.Errorf("mailbox %q highest modseq %d < a message's modseq %d", name, hms, maxms)
		}
	}
}

func countRows(t testing.TB, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %s`, table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func uidsString(u []UID) string {
	var b strings.Builder
	for i, x := range u {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, x)
	}
	return b.String()
}
