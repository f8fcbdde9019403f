package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecureDeleteCheckpoint: with WithSecureDelete, an expunged message followed by Checkpoint leaves
// none of its bytes in the database file or its write-ahead log (what a gateway relies on to forget
// the relay messages that pass through its INBOX).
func TestSecureDeleteCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.db")
	s := openTestAt(t, path, WithSecureDelete())
	ctx := testCtx(t)
	inbox, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "secure-delete-marker-7c1f"
	keep := "kept-message-marker-91ab"
	a, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: rawMsg("gone", secret+"\r\n"), Received: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: rawMsg("kept", keep+"\r\n"), Received: time.Now()}); err != nil {
		t.Fatal(err)
	}
	set := UIDSetOf(a.UID)
	if _, err := s.StoreFlags(ctx, inbox.ID, set, FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagDeleted}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExpungeUIDs(ctx, inbox.ID, set); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the expunged message", filepath.Base(f))
		}
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte(keep)) {
		t.Error("the kept message is not in the files (the test would prove nothing)")
	}
}
