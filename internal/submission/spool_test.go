package submission

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// largeMessage is a message of about size bytes: a header without Date and Message-ID (the server
// adds them), with a Bcc, and a text of CRLF lines.
func largeMessage(subject string, size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Me <" + own + ">\r\nTo: <" + rcpt1 + ">\r\nBcc: <" + rcpt2 + ">\r\nSubject: " + subject + "\r\n\r\n")
	line := []byte(strings.Repeat("0123456789", 7) + "abcd\r\n")
	for i := 0; b.Len() < size; i++ {
		copy(line, strconv.Itoa(i))
		b.Write(line)
	}
	return b.Bytes()
}

func spoolFiles(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

// TestSpoolAcknowledgedIsStored: a message above SpoolThreshold goes through the spool file to the
// store; after 250 the Sent copy and the outbox item hold it byte for byte (header fields added,
// Bcc kept in the copy and removed by StripBcc), also after the store is reopened, and the spool is
// empty. A resubmission of the same bytes is the same item.
func TestSpoolAcknowledgedIsStored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	opts.SpoolDir = filepath.Join(dir, "spool")
	srv, addr := startServer(t, StoreBackend{Store: st}, opts)
	c := authedClient(t, addr)
	msg := largeMessage("spooled", 3*SpoolThreshold+12345)
	reply, err := send(t, c, own, []string{rcpt1, rcpt2}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(spoolFiles(t, opts.SpoolDir)); n != 0 {
		t.Errorf("%d spool files after 250", n)
	}
	st = reopenStore(t, c, srv, st, path)
	_, idText, _ := strings.Cut(reply, "queued as ")
	n, _ := strconv.ParseInt(idText, 10, 64)
	raw, err := st.OutboxRaw(ctx, store.OutboxID(n))
	if err != nil {
		t.Fatal(err)
	}
	hs := store.HeaderLen(msg)
	want := mail.AddMissing(msg[:hs], opts.Now())
	if !bytes.HasPrefix(raw, want[:bytes.Index(want, []byte("Message-ID:"))]) || !bytes.HasSuffix(raw, msg[hs:]) ||
		len(raw) != len(want)+len(msg)-hs {
		t.Fatalf("outbox bytes (%d) are not the submission (%d) with Date and Message-ID added", len(raw), len(msg))
	}
	if !mail.HasField(raw, "Bcc") || mail.HasField(mail.StripBcc(raw), "Bcc") {
		t.Error("the outbox copy lost its Bcc, or StripBcc keeps it")
	}
	it, err := st.OutboxItem(ctx, store.OutboxID(n))
	if err != nil || it.Size != int64(len(raw)) {
		t.Fatalf("item size %d, %v; want %d", it.Size, err, len(raw))
	}
	sent, err := st.Raw(ctx, it.SentMailboxID, it.SentUID)
	if err != nil || !bytes.Equal(sent, raw) {
		t.Fatalf("Sent copy: %v", err)
	}
}

// TestSpoolSameAsMemory: the backend sees a spooled message exactly as the in-memory path would give
// it (Raw without Bcc, SentCopy with it).
func TestSpoolSameAsMemory(t *testing.T) {
	msg := largeMessage("same", SpoolThreshold+100)
	msg = mail.InsertFields(msg, mail.Field{Name: "Date", Value: "Mon, 02 Feb 2026 10:00:00 +0100"},
		mail.Field{Name: "Message-ID", Value: "<same@client.test>"})
	var got [2]Message
	for i, spoolDir := range []string{"", t.TempDir()} {
		be := &memBackend{}
		opts := testOptions(t)
		opts.SpoolDir = spoolDir
		_, addr := startServer(t, be, opts)
		if _, err := send(t, authedClient(t, addr), own, []string{rcpt1}, msg); err != nil {
			t.Fatal(err)
		}
		got[i] = be.only(t)
	}
	if !bytes.Equal(got[0].Raw, got[1].Raw) || !bytes.Equal(got[0].SentCopy, got[1].SentCopy) ||
		got[0].MessageID != got[1].MessageID {
		t.Error("the spooled submission differs from the in-memory one")
	}
	if !bytes.Equal(got[1].SentCopy, msg) || mail.HasField(got[1].Raw, "Bcc") {
		t.Error("spooled: SentCopy is not the client's bytes, or Raw has the Bcc")
	}
}

// TestSpoolLeftoversCleaned: spool files a killed process left behind are removed when the server
// is created and never reach the backend; other files in the directory are left alone.
func TestSpoolLeftoversCleaned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, spoolPrefix+"12345.eml")
	if err := os.WriteFile(left, largeMessage("abandoned", 2*SpoolThreshold), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "README")
	if err := os.WriteFile(other, []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	be := &memBackend{}
	opts := testOptions(t)
	opts.SpoolDir = dir
	_, addr := startServer(t, be, opts)
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned spool file still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file that is not a spool file was removed: %v", err)
	}
	// The server works, and the abandoned message was never delivered.
	if _, err := send(t, authedClient(t, addr), own, []string{rcpt1}, testMessage("fresh")); err != nil {
		t.Fatal(err)
	}
	if s := be.only(t); !bytes.Contains(s.Raw, []byte("Subject: fresh")) {
		t.Errorf("backend got %q", s.Raw)
	}
}

// TestSpoolFileWhileSubmitting: while Submit runs, the message is in one spool file of mode 0600;
// when Submit fails the client gets 451 and the file is removed all the same; an oversized message
// is 552 and leaves no file.
func TestSpoolFileWhileSubmitting(t *testing.T) {
	be := &memBackend{entered: make(chan struct{}), release: make(chan struct{})}
	be.setErr(errors.New("disk full"))
	opts := testOptions(t)
	opts.SpoolDir = t.TempDir()
	opts.MaxMessageBytes = 4 * SpoolThreshold
	_, addr := startServer(t, be, opts)
	c := authedClient(t, addr)
	done := make(chan error, 1)
	go func() {
		_, err := send(t, c, own, []string{rcpt1}, largeMessage("failing", 2*SpoolThreshold))
		done <- err
	}()
	select {
	case <-be.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("Submit was not called")
	}
	ents := spoolFiles(t, opts.SpoolDir)
	if len(ents) != 1 {
		t.Fatalf("%d spool files during Submit, want 1", len(ents))
	}
	if fi, err := ents[0].Info(); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 2*SpoolThreshold {
		t.Errorf("spool file: %v, %v", fi.Mode(), err)
	}
	close(be.release)
	select {
	case err := <-done:
		wantCode(t, err, 451, "4.3.0", "")
	case <-time.After(30 * time.Second):
		t.Fatal("no reply")
	}
	if n := len(spoolFiles(t, opts.SpoolDir)); n != 0 {
		t.Errorf("%d spool files after a failed Submit", n)
	}
	be.setErr(nil)
	_, err := send(t, c, own, []string{rcpt1}, largeMessage("too large", 5*SpoolThreshold))
	wantCode(t, err, 552, "5.3.4", "")
	if n := len(spoolFiles(t, opts.SpoolDir)); n != 0 {
		t.Errorf("%d spool files after a refused message", n)
	}
}
