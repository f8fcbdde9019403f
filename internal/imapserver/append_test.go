package imapserver

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func appendMsg(t *testing.T, c *imapclient.Client, mbox string, raw []byte, o *imap.AppendOptions) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mbox, int64(len(raw)), o)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return d
}

func TestAppendFetchIdentical(t *testing.T) {
	ts := newTestServer(t)
	c := ts.client(t)
	date := time.Date(2026, 2, 1, 12, 30, 0, 0, time.FixedZone("", 2*3600))
	// Bytes a parser would normalise: LF and CRLF mixed, a folded header, trailing spaces, no final newline.
	raw := []byte("From: a@example.org\r\nSubject: folded\r\n  subject   \nX-Odd:value\r\n\r\nline 1  \nline 2\r\nno newline")
	d := appendMsg(t, c, "Drafts", raw, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, "$Label1"}, Time: date})
	m := mailbox(t, ts.st, "Drafts")
	if d.UIDValidity != m.UIDValidity || d.UID != 1 {
		t.Fatalf("APPENDUID %d %d, mailbox UIDVALIDITY %d", d.UIDValidity, d.UID, m.UIDValidity)
	}

	selectBox(t, c, "Drafts")
	msgs, err := c.Fetch(imap.UIDSetNum(d.UID), &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}
	got := msgs[0]
	if body := got.FindBodySection(&imap.FetchItemBodySection{Peek: true}); !bytes.Equal(body, raw) {
		t.Errorf("BODY[] = %q, want %q", body, raw)
	}
	if got.RFC822Size != int64(len(raw)) || got.UID != d.UID {
		t.Errorf("RFC822.SIZE %d UID %d", got.RFC822Size, got.UID)
	}
	if !got.InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE %v, want %v", got.InternalDate, date)
	}
	if !hasFlag(got.Flags, imap.FlagDraft) || !hasFlag(got.Flags, "$label1") || hasFlag(got.Flags, imap.FlagSeen) {
		t.Errorf("FLAGS %v", got.Flags)
	}

	// A large message survives byte for byte too.
	big := append(plainMsg("big", ""), bytes.Repeat([]byte("0123456789abcdef\r\n"), 100_000)...)
	d2 := appendMsg(t, c, "Drafts", big, nil)
	msgs, err = c.Fetch(imap.UIDSetNum(d2.UID), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].FindBodySection(&imap.FetchItemBodySection{Peek: true}), big) {
		t.Fatalf("large message differs (err %v)", err)
	}
}

func TestAppendErrors(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxAppendSize = 1000 })
	c := ts.client(t)
	if !c.Caps().Has("APPENDLIMIT=1000") {
		caps, _ := c.Capability().Wait()
		if !caps.Has("APPENDLIMIT=1000") {
			t.Errorf("APPENDLIMIT not advertised: %v", caps)
		}
	}
	cmd := c.Append("Nope", 5, nil)
	cmd.Write([]byte("x: y\n"))
	cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("append to missing mailbox: %v", err)
	}

	r := ts.rawLogin(t)
	// Too large: refused before the literal is sent.
	tag := r.send("APPEND INBOX {2000}")
	if line := r.readLine(); !strings.HasPrefix(line, tag+" NO [TOOBIG]") {
		t.Errorf("oversized APPEND: %q", line)
	}
	// LITERAL+ (RFC 7888): no continuation request.
	msg := "Subject: plus\r\n\r\nbody"
	u := r.ok("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(msg), msg)
	_ = u
	// Invalid flag.
	r.expect("BAD", "", "APPEND INBOX (\\Bogus) {%d+}\r\n%s", len(msg), msg)
}

func TestAppendToSelectedSendsExists(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	msg := "Subject: hi\r\n\r\nbody"
	u := r.ok("APPEND INBOX {%d+}\r\n%s", len(msg), msg)
	if !has(u, "* 1 EXISTS") {
		t.Errorf("APPEND to the selected mailbox: %q", u)
	}
	// The tagged OK carries APPENDUID.
	tag := r.send("APPEND INBOX {%d+}\r\n%s", len(msg), msg)
	_, st := r.readUntil(tag)
	m := mailbox(t, ts.st, "INBOX")
	if want := fmt.Sprintf("OK [APPENDUID %d 2]", m.UIDValidity); !strings.HasPrefix(st, want) {
		t.Errorf("APPEND status %q, want %q", st, want)
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// A binary APPEND (literal8, RFC 3516 §4.3) whose part holds NUL is stored with that part in
// base64, as Dovecot does: BODY[] never sends NUL in a plain literal, BINARY[1] gives the bytes back.
func TestAppendBinaryNUL(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	body := "bin\x00ary\r\n\x01\x02\x00end"
	msg := "From: a@example.org\r\nSubject: binary\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body +
		"\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain text\r\n--b--\r\n"
	tag := r.send("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg)
	if _, st := r.readUntil(tag); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND: %q", st)
	}
	r.ok("SELECT INBOX")
	u := r.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])")
	got := strings.Join(u, "\n")
	if strings.IndexByte(got, 0) >= 0 {
		t.Errorf("BODY[] sent NUL in a plain literal: %q", got)
	}
	if !strings.Contains(got, "Content-Transfer-Encoding: base64") || !strings.Contains(got, "plain text") {
		t.Errorf("BODY[]: %q", got)
	}
	u = r.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
	if !has(u, fmt.Sprintf("BINARY[1] ~{%d}\r\n%s", len(body), body)) || !has(u, fmt.Sprintf("BINARY.SIZE[1] %d", len(body))) {
		t.Errorf("BINARY[1]: %q", u)
	}
	// NUL in the header cannot be carried: NO.
	bad := "Subject: a\x00b\r\n\r\nx"
	tag = r.send("APPEND INBOX ~{%d+}\r\n%s", len(bad), bad)
	if _, st := r.readUntil(tag); !strings.HasPrefix(st, "NO") {
		t.Errorf("APPEND with NUL in the header: %q", st)
	}
}
