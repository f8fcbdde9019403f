package imapserver

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestFetchEnvelopeBodyStructure(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", multipartMsg)
	c := ts.client(t)
	selectBox(t, c, "INBOX")

	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Envelope:      true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}
	env := msgs[0].Envelope
	if env.Subject != "Grüße with parts" || env.MessageID != "multi.1@example.org" ||
		len(env.InReplyTo) != 1 || env.InReplyTo[0] != "parent@example.org" {
		t.Errorf("envelope: %+v", env)
	}
	if !env.Date.Equal(time.Date(2026, 3, 3, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("envelope date %v", env.Date)
	}
	if len(env.From) != 1 || env.From[0].Name != "Alice Example" || env.From[0].Addr() != "alice@example.org" ||
		len(env.To) != 2 || env.To[1].Name != "Carol" || env.To[1].Addr() != "carol@example.net" ||
		len(env.Cc) != 1 || env.Cc[0].Addr() != "dave@example.com" ||
		len(env.Sender) != 1 || env.Sender[0].Addr() != "alice@example.org" { // Sender defaults to From
		t.Errorf("envelope addresses: %+v", env)
	}

	mixed, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mixed.Subtype != "mixed" || len(mixed.Children) != 2 {
		t.Fatalf("body structure: %#v", msgs[0].BodyStructure)
	}
	alt, ok := mixed.Children[0].(*imap.BodyStructureMultiPart)
	if !ok || alt.Subtype != "alternative" || len(alt.Children) != 2 {
		t.Fatalf("first part: %#v", mixed.Children[0])
	}
	text := alt.Children[0].(*imap.BodyStructureSinglePart)
	if text.Type != "text" || text.Subtype != "plain" || !strings.EqualFold(text.Encoding, "quoted-printable") ||
		text.Params["charset"] != "utf-8" || text.Text == nil || text.Size != 37 {
		t.Errorf("text part: %+v", text)
	}
	pdf := mixed.Children[1].(*imap.BodyStructureSinglePart)
	if pdf.Type != "application" || pdf.Subtype != "pdf" || !strings.EqualFold(pdf.Encoding, "base64") ||
		pdf.Extended == nil || pdf.Extended.Disposition == nil || pdf.Extended.Disposition.Value != "attachment" ||
		pdf.Disposition().Params["filename"] != "plan.pdf" {
		t.Errorf("attachment: %+v", pdf)
	}

	// Sections: a part, a part's MIME header, decoded BINARY, header fields, text, partials.
	r := ts.rawLogin(t)
	r.ok("EXAMINE INBOX")
	u := r.ok("FETCH 1 (BODY.PEEK[1.1] BINARY.PEEK[1.1] BINARY.SIZE[2] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.20> BODY.PEEK[TEXT]<0.8>)")
	got := strings.Join(u, "\n")
	for _, want := range []string{
		"BODY[1.1] {37}\r\nHello Bob,=0D=0Athe plan is attached.",
		"BINARY[1.1] ~{33}\r\nHello Bob,\r\nthe plan is attached.",
		"BINARY.SIZE[2] 15",
		`Content-Disposition: attachment; filename="plan.pdf"`,
		"BODY[HEADER.FIELDS (\"SUBJECT\")] {51}\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= with parts\r\n\r\n",
		"BODY[]<0> {20}\r\nFrom: \"Alice Exampl",
		"BODY[TEXT]<0> {8}\r\npreamble",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("FETCH sections: missing %q in\n%s", want, got)
		}
	}
}

func TestFetchSetsSeen(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("one", "body one"))
	deliver(t, ts.st, "INBOX", plainMsg("two", "body two"))
	r := ts.rawLogin(t)

	// EXAMINE: BODY[] does not set \Seen.
	r.ok("EXAMINE INBOX")
	if u := r.ok("FETCH 1 BODY[]"); has(u, `\Seen`) {
		t.Errorf("EXAMINE FETCH BODY[] set \\Seen: %q", u)
	}
	r.ok("SELECT INBOX")
	if u := r.ok("FETCH 1 (BODY.PEEK[TEXT] FLAGS)"); !has(u, "FLAGS ()") {
		t.Errorf("PEEK: %q", u)
	}
	// BODY[] sets \Seen and reports the new flags in the same response (RFC 9051 §6.4.5).
	u := r.ok("FETCH 1 BODY[TEXT]")
	if len(u) != 1 || !has(u, `FLAGS (\Seen)`, "BODY[TEXT] {8}") {
		t.Errorf("FETCH BODY[TEXT]: %q", u)
	}
	// No echo of that change afterwards.
	if u := r.ok("NOOP"); len(u) != 0 {
		t.Errorf("NOOP after fetch: %q", u)
	}
	// RFC822 (obsolete) sets \Seen too; UID FETCH includes the UID.
	if u := r.ok("UID FETCH 2 RFC822"); !has(u, "UID 2", `FLAGS (\Seen)`, "RFC822 {") {
		t.Errorf("UID FETCH RFC822: %q", u)
	}
	m := mailbox(t, ts.st, "INBOX")
	if m.Unseen != 0 {
		t.Errorf("unseen %d after fetches", m.Unseen)
	}
}

func TestFetchMacrosAndEdges(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("one", "x"))
	// Malformed MIME: multipart without a boundary, no blank line, an unparsable Content-Type.
	deliver(t, ts.st, "INBOX", []byte("Content-Type: multipart/mixed\r\nSubject: nb\r\n\r\nno parts here"))
	deliver(t, ts.st, "INBOX", []byte("Subject: header only, no body"))
	deliver(t, ts.st, "INBOX", []byte("Content-Type: ;;;\r\n\r\nx"))
	deliver(t, ts.st, "INBOX", []byte("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative\r\n\r\n"))
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	if u := r.ok("FETCH 1:* ALL"); len(u) != 5 || !has(u, "INTERNALDATE", "ENVELOPE", "RFC822.SIZE", "FLAGS") {
		t.Errorf("FETCH ALL: %q", u)
	}
	if u := r.ok("FETCH 1:* FULL"); len(u) != 5 || !has(u, "BODY (") {
		t.Errorf("FETCH FULL: %q", u)
	}
	u := r.ok("FETCH 2:* (BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2.1.HEADER] BINARY.PEEK[1])")
	if len(u) != 4 {
		t.Errorf("FETCH of malformed messages: %q", u)
	}
	// Sequence numbers beyond the mailbox, "*" and reversed ranges.
	// A number beyond the last message is BAD, as in Dovecot (it answered OK with nothing).
	r.expect("BAD", "", "FETCH 9 FLAGS")
	r.expect("BAD", "", "FETCH 1,9 FLAGS")
	r.expect("BAD", "", "STORE 9 +FLAGS (x)")
	r.expect("BAD", "", "COPY 6:9 INBOX")
	r.ok("UID FETCH 9 FLAGS") // UIDs need not exist
	if u := r.ok("FETCH *:4 UID"); len(u) != 2 || !has(u, "* 4 FETCH") || !has(u, "* 5 FETCH") {
		t.Errorf("FETCH *:4: %q", u)
	}
	if u := r.ok("UID FETCH 100:* UID"); len(u) != 1 || !has(u, "UID 5") {
		t.Errorf("UID FETCH 100:*: %q", u)
	}
	r.expect("BAD", "", "FETCH 1 (BOGUS)")
	// go-imap answers some malformed sets with NO [SERVERBUG] rather than BAD; either way not OK.
	if _, st := r.cmd("FETCH 0:x FLAGS"); strings.HasPrefix(st, "OK") {
		t.Errorf("FETCH 0:x: %q", st)
	}
	// Partial beyond the end is empty.
	if u := r.ok("FETCH 1 BODY.PEEK[]<100000.10>"); !has(u, "BODY[]<100000> {0}") {
		t.Errorf("partial beyond the end: %q", u)
	}
}

func TestFetchNeedsSelect(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	r.expect("BAD", "", "FETCH 1 FLAGS")
	r.expect("NO", "NONEXISTENT", "SELECT Nope")
	// A failed SELECT leaves no mailbox selected.
	r.expect("BAD", "", "FETCH 1 FLAGS")
}
