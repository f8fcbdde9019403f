package mail

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

func TestBounce(t *testing.T) {
	orig := crlf(`From: Alice <` + addr0 + `@tangle>
To: Bob <` + addr1 + `@tangle>
Subject: =?UTF-8?Q?Caf=C3=A9?= plans
Date: Thu, 01 Jan 2026 10:00:00 +0000
Message-ID: <m1@tangle>
X-Raw: caf` + "\xc3\xa9" + `

the body, which the bounce does not carry
`)
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	rcpt := addr1 + "@tangle"
	out := Bounce(orig, rcpt, NoReceipt(4*24*time.Hour), now, "postmaster@tangle")

	if bytes.Contains(out, []byte("the body")) {
		t.Error("bounce carries the original body")
	}
	m, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Undelivered: Café plans" || m.InReplyTo != "m1@tangle" || !m.Date.Equal(now) || m.MessageID == "" {
		t.Errorf("header: %+v", m)
	}
	if len(m.From) != 1 || m.From[0].Address != "postmaster@tangle" || len(m.To) != 1 || m.To[0].Address != addr0+"@tangle" {
		t.Errorf("From %+v To %+v", m.From, m.To)
	}
	if !HasField(out, "Auto-Submitted") {
		t.Error("no Auto-Submitted")
	}

	e, err := message.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := e.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %s %v", mt, params)
	}
	mr := e.MultipartReader()
	var types []string
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pt, _, _ := p.Header.ContentType()
		types = append(types, pt)
		b, err := io.ReadAll(p.Body) // decoded (quoted-printable, charset)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Fatalf("parts %v", types)
	}
	human := string(parts[0])
	for _, s := range []string{rcpt, "no delivery receipt within 4 days", "Café plans"} {
		if !strings.Contains(human, s) {
			t.Errorf("text part lacks %q:\n%s", s, human)
		}
	}

	// RFC 3464 §2.1: per-message fields, a blank line, then per-recipient fields.
	br := bufio.NewReader(bytes.NewReader(parts[1]))
	perMsg, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	perRcpt, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if got := perMsg.Get("Reporting-MTA"); got != "dns; tangle" {
		t.Errorf("Reporting-MTA %q", got)
	}
	if got := perMsg.Get("Arrival-Date"); got != "Thu, 01 Jan 2026 10:00:00 +0000" {
		t.Errorf("Arrival-Date %q", got)
	}
	for k, want := range map[string]string{
		"Final-Recipient":   "rfc822; " + rcpt,
		"Action":            "failed",
		"Status":            "5.4.7",
		"Diagnostic-Code":   "X-Tanglemail; no delivery receipt within 4 days",
		"Last-Attempt-Date": "Mon, 05 Jan 2026 10:00:00 +0000",
	} {
		if got := perRcpt.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	hdr := orig[:bytes.Index(orig, []byte("\r\n\r\n"))+2]
	if !bytes.Equal(parts[2], hdr) {
		t.Errorf("rfc822-headers part:\n%q\nwant\n%q", parts[2], hdr)
	}
}

func TestBounceOddInputs(t *testing.T) {
	now := time.Unix(0, 0)
	// No header to speak of, a status that is not permanent, a reason with a line break.
	out := Bounce([]byte("garbage without colon\r\n\r\n"), "x\r\nInjected: 1", Reason{Status: "4.4.1", Text: "bad\r\nthing"}, now, "postmaster@tangle")
	if _, err := message.Read(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("\r\nInjected:")) || bytes.Contains(out, []byte("\r\nthing")) {
		t.Errorf("line break injected:\n%s", out)
	}
	if !bytes.Contains(out, []byte("Status: 5.0.0\r\n")) {
		t.Errorf("status not forced to 5.0.0:\n%s", out)
	}
	if r := TooLarge(30<<20, 25<<20); r.Status != "5.3.4" || !strings.Contains(r.Text, "31457280 bytes") {
		t.Errorf("%+v", r)
	}
	for d, want := range map[time.Duration]string{24 * time.Hour: "1 day", 3 * time.Hour: "3 hours", 90 * time.Minute: "90 minutes", 1500 * time.Millisecond: "1.5s"} {
		if got := humanDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// TestDelayNotice: a delay notice is Bounce's report with Action "delayed", a 4.x.y status and
// Will-Retry-Until (RFC 3464 §2.3.3, §2.3.4, §2.3.9), and says when the final answer comes.
func TestDelayNotice(t *testing.T) {
	orig := crlf("From: Alice <" + addr0 + "@tangle>\nSubject: plans\nDate: Thu, 01 Jan 2026 10:00:00 +0000\nMessage-ID: <m1@tangle>\n\nbody\n")
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	until := now.Add(30 * 24 * time.Hour)
	rcpt := addr1 + "@tangle"
	out := DelayNotice(orig, rcpt, Delayed(4*24*time.Hour), now, until, "postmaster@tangle")
	if _, err := message.Read(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	m, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Delayed: plans" || m.InReplyTo != "m1@tangle" {
		t.Errorf("header %+v", m)
	}
	for _, want := range []string{"Action: delayed\r\n", "Status: 4.4.7\r\n",
		"Will-Retry-Until: Wed, 04 Feb 2026 10:00:00 +0000\r\n", "no delivery receipt yet after 4 days",
		"Final-Recipient: rfc822; " + rcpt} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("delay notice lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("Action: failed")) || bytes.Contains(out, []byte("body")) {
		t.Errorf("delay notice says failed or carries the body:\n%s", out)
	}
	// A permanent status is not sent in a delay notice.
	if out := DelayNotice(orig, rcpt, Reason{Status: "5.4.7", Text: "x"}, now, until, "p@tangle"); !bytes.Contains(out, []byte("Status: 4.0.0\r\n")) {
		t.Errorf("status not forced to 4.0.0:\n%s", out)
	}
	// Bounce is unchanged: no Will-Retry-Until.
	if out := Bounce(orig, rcpt, NoReceipt(time.Hour), now, "p@tangle"); bytes.Contains(out, []byte("Will-Retry-Until")) {
		t.Error("a failure report has Will-Retry-Until")
	}
}
