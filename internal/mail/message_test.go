package mail

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Addresses of protocol.md §9.1.
const (
	addr0 = "tm1yqak5faue6m2gttz5w5dq2n0p4ek2vs4wuw7ysax8tqy3gvtt8dzjv2wx6m"
	addr1 = "tm19qp6zpal708pp0sawrw33e6tczvk0exkxzd62r2lrhwgveqj25cmshel8e9"
	addr2 = "tm1xz6sw65ywj5r9khwfh2mgpqfswmxyw6lx39v54756mhyhtelyk0xug0s4g5"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParse(t *testing.T) {
	raw := crlf(`From: =?UTF-8?B?QWxpY2Ugw4lsaXNl?= <` + addr0 + `@tangle>
To: Bob <` + addr1 + `@tangle>,
 "Carol, C." <` + addr2 + `@TANGLE>
To: dave@example.com
Cc: undisclosed-recipients:;
Bcc: ` + addr2 + `@tangle
Message-ID: (comment) <abc.123@host.example>
In-Reply-To: <parent@x> <grand@x>
Date: Thu, 01 Jan 2026 10:00:00 +0100
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= and
 more
X-Weird:value

Body: not a header
Bcc: not a header either
`)
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.From) != 1 || m.From[0].Name != "Alice Élise" || m.From[0].Address != addr0+"@tangle" {
		t.Errorf("From = %+v", m.From)
	}
	var to []string
	for _, a := range m.To {
		to = append(to, a.Name+"|"+a.Address)
	}
	want := []string{"Bob|" + addr1 + "@tangle", "Carol, C.|" + addr2 + "@TANGLE", "|dave@example.com"}
	if strings.Join(to, ";") != strings.Join(want, ";") {
		t.Errorf("To = %q, want %q", to, want)
	}
	if len(m.Cc) != 0 {
		t.Errorf("Cc = %+v, want empty group", m.Cc)
	}
	if len(m.Bcc) != 1 || m.Bcc[0].Address != addr2+"@tangle" {
		t.Errorf("Bcc = %+v", m.Bcc)
	}
	if m.MessageID != "abc.123@host.example" || !m.HasMessageID {
		t.Errorf("Message-ID = %q", m.MessageID)
	}
	if m.InReplyTo != "parent@x" {
		t.Errorf("In-Reply-To = %q", m.InReplyTo)
	}
	if !m.HasDate || !m.Date.Equal(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("Date = %v", m.Date)
	}
	if m.Subject != "Grüße and more" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if !bytes.HasPrefix(raw[m.HeaderEnd:], []byte("\r\nBody:")) {
		t.Errorf("HeaderEnd %d points at %q", m.HeaderEnd, raw[m.HeaderEnd:m.HeaderEnd+8])
	}
	if h := m.Header(); !bytes.HasSuffix(h, []byte("X-Weird:value\r\n\r\n")) {
		t.Errorf("Header() ends %q", h[len(h)-20:])
	}
	for _, a := range m.To[:2] {
		if _, err := a.Tangle(); err != nil {
			t.Errorf("%s: %v", a.Address, err)
		}
	}
	if _, err := m.To[2].Tangle(); !errors.Is(err, ErrNotTangle) {
		t.Errorf("dave: %v", err)
	}
}

func TestParseEdgeCases(t *testing.T) {
	t.Run("LF line endings, no body", func(t *testing.T) {
		m, err := Parse([]byte("Subject: hi\nFrom: a@b"))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "hi" || len(m.From) != 1 || m.HeaderEnd != len(m.Raw) || m.HasDate || m.HasMessageID {
			t.Errorf("%+v", m)
		}
	})
	t.Run("header only, blank line, empty body", func(t *testing.T) {
		m, err := Parse([]byte("Subject: x\r\n\r\n"))
		if err != nil || m.HeaderEnd != 12 {
			t.Fatalf("%v %+v", err, m)
		}
	})
	t.Run("no header at all", func(t *testing.T) {
		m, err := Parse([]byte("\r\njust a body\r\n"))
		if err != nil || m.HeaderEnd != 0 {
			t.Fatalf("%v %+v", err, m)
		}
	})
	t.Run("unparseable Date and Message-ID are kept as present", func(t *testing.T) {
		m, err := Parse(crlf("Date: yesterday\nMessage-ID: not-an-id\n\n"))
		if err != nil {
			t.Fatal(err)
		}
		if !m.HasDate || !m.Date.IsZero() || !m.HasMessageID || m.MessageID != "not-an-id" {
			t.Errorf("%+v", m)
		}
	})
	t.Run("unparseable To is tolerated", func(t *testing.T) {
		m, err := Parse(crlf("To: <<<\nSubject: s\n\n"))
		if err != nil || m.Subject != "s" || len(m.To) != 0 {
			t.Fatalf("%v %+v", err, m)
		}
	})
	t.Run("space before colon", func(t *testing.T) {
		m, err := Parse(crlf("Subject : spaced\n\n"))
		if err != nil || m.Subject != "spaced" {
			t.Fatalf("%v %+v", err, m)
		}
	})
	for name, raw := range map[string]string{
		"empty":               "",
		"line without colon":  "Subject: x\r\nno colon here\r\n\r\n",
		"leading white space": " Subject: x\r\n\r\n",
		"bad From":            "From: <<<\r\n\r\n",
		"bad Bcc":             "Bcc: a@b, <<\r\n\r\n",
		"space in name":       "Sub ject: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(raw)); !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestStripBcc(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"none", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n"},
		{"one", "From: a@b\r\nBcc: x@y\r\nTo: c@d\r\n\r\nbody\r\n", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n"},
		{"folded", "From: a@b\r\nBcc: x@y,\r\n z@y,\r\n\tw@y\r\nTo: c@d\r\n\r\nb\r\n", "From: a@b\r\nTo: c@d\r\n\r\nb\r\n"},
		{"several and cases", "BCC: 1@y\r\nFrom: a@b\r\nbcc: 2@y\r\nbCc : 3@y\r\nResent-Bcc: 4@y\r\nTo: c@d\r\nBcc:\r\n\r\nb\r\n",
			"From: a@b\r\nTo: c@d\r\n\r\nb\r\n"},
		{"first and last", "Bcc: x\r\nTo: c\r\nBcc: y\r\n\r\n", "To: c\r\n\r\n"},
		{"body and attachment untouched", "To: c\r\nBcc: x\r\n\r\nBcc: in body\r\n--b\r\nBcc: in part\r\n",
			"To: c\r\n\r\nBcc: in body\r\n--b\r\nBcc: in part\r\n"},
		{"LF only", "To: c\nBcc: x\n y\nSubject: s\n\nb\n", "To: c\nSubject: s\n\nb\n"},
		{"no body, last field", "To: c\r\nBcc: x", "To: c\r\n"},
		{"look-alikes kept", "Bccx: 1\r\nX-Bcc: 2\r\nBcc-Note: 3\r\n\r\n", "Bccx: 1\r\nX-Bcc: 2\r\nBcc-Note: 3\r\n\r\n"},
		{"odd bytes kept", "To: c\xff\r\nBcc: x\r\nweird line\r\n\r\n\x00\x01", "To: c\xff\r\nweird line\r\n\r\n\x00\x01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := StripBcc([]byte(c.in))
			if string(got) != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if HasField(got, "Bcc") {
				t.Error("Bcc left")
			}
		})
	}
	in := []byte("To: c\r\n\r\n")
	if out := StripBcc(in); &out[0] != &in[0] {
		t.Error("no Bcc: want raw itself")
	}
}

func TestAddMissing(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600))
	in := crlf("From: a@b\nSubject: s\n\nbody\n")
	out := AddMissing(in, now)
	m, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Date.Equal(now) || !strings.HasSuffix(m.MessageID, "@tangle") || len(m.MessageID) != 26+7 {
		t.Errorf("Date %v, Message-ID %q", m.Date, m.MessageID)
	}
	if !bytes.Contains(out, []byte("\r\nDate: Wed, 04 Mar 2026 04:06:07 +0000\r\n")) {
		t.Errorf("Date not in UTC: %q", out)
	}
	// Every original byte is kept: the original is out minus the inserted lines.
	if !bytes.HasPrefix(out, in[:m.HeaderEnd-len(out)+len(in)]) || !bytes.HasSuffix(out, in[len("From: a@b\r\nSubject: s\r\n"):]) {
		t.Errorf("original bytes changed: %q", out)
	}
	if got := AddMissing(out, now); &got[0] != &out[0] {
		t.Error("nothing missing: want raw itself")
	}
	// Present but unparseable fields are kept, not replaced.
	in = crlf("Date: garbage\nMessage-Id: garbage\n\n")
	if got := AddMissing(in, now); !bytes.Equal(got, in) {
		t.Errorf("replaced: %q", got)
	}
	// LF messages get LF fields; a message without body and final line break gets one.
	if got := string(AddMissing([]byte("Subject: s\nMessage-ID: <x@y>\n\nb"), now)); got != "Subject: s\nMessage-ID: <x@y>\nDate: Wed, 04 Mar 2026 04:06:07 +0000\n\nb" {
		t.Errorf("LF: %q", got)
	}
	if got := string(InsertFields([]byte("Subject: s"), Field{"X-A", "1"})); got != "Subject: s\r\nX-A: 1\r\n" {
		t.Errorf("no final line break: %q", got)
	}
	if got := string(InsertFields([]byte("S: s\r\n\r\n"), Field{"X-A", "1\r\nBcc: x"}, Field{"Bad Name", "1"})); got != "S: s\r\n\r\n" {
		t.Errorf("line break injection: %q", got)
	}
}

func TestParseRecipient(t *testing.T) {
	for _, s := range []string{addr0 + "@tangle", addr1 + "@TANGLE", addr2 + "@Tangle", strings.ToUpper(addr0) + "@tangle"} {
		a, err := ParseRecipient(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if !strings.EqualFold(a.Mail(), s) {
			t.Errorf("%s: parsed as %s", s, a.Mail())
		}
	}
	bad := addr0[:len(addr0)-1] + "q"
	cases := []struct {
		in      string
		is      error
		message string
	}{
		{"bob@example.com", ErrNotTangle, "bob@example.com is not a tangle address: tanglemail delivers only to <address>@tangle"},
		{addr0, ErrNotTangle, "is not a tangle address"},
		{"", ErrNotTangle, "is not a tangle address"},
		{bad + "@tangle", identity.ErrChecksum, "is not a valid tangle address: bad address checksum"},
		{"bc1" + addr0[3:] + "@tangle", identity.ErrPrefix, "does not start with tm1"},
		{"postmaster@tangle", identity.ErrPrefix, "postmaster@tangle is not a valid tangle address"},
	}
	for _, c := range cases {
		_, err := ParseRecipient(c.in)
		var re *RecipientError
		if !errors.Is(err, c.is) || !errors.As(err, &re) || !strings.Contains(err.Error(), c.message) {
			t.Errorf("%q: %v, want %v containing %q", c.in, err, c.is, c.message)
		}
	}
}
