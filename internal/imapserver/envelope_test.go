package imapserver

import (
	"strings"
	"testing"
)

// addrMsg has group syntax (RFC 5322 §3.4), a route address (RFC 5322 §4.4 obs-route) and an
// address with comments.
var addrMsg = []byte("From: <@relay.example:alice@example.org>\r\n" +
	"Sender: bob@example.org (Bob in the office)\r\n" +
	"Reply-To: <@a.example,@b.example:replies@example.org>\r\n" +
	"To: Team: carol@example.net, \"Dave D.\" <dave@example.com>;, erin@example.org\r\n" +
	"Cc: undisclosed-recipients:;\r\n" +
	"Subject: addresses\r\n" +
	"Date: Mon, 02 Mar 2026 15:04:05 +0100\r\n" +
	"Message-ID: <addr@example.org>\r\n\r\nbody\r\n")

func TestEnvelopeAddresses(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", addrMsg)
	r := ts.rawLogin(t)
	r.ok("EXAMINE INBOX")
	u := r.ok("FETCH 1 ENVELOPE")
	// go-imap writes a space between the addresses of a list; RFC 9051's grammar has none.
	got := strings.ReplaceAll(strings.Join(u, "\n"), ") (", ")(")
	for _, want := range []string{
		`(("Mon, 02 Mar 2026 15:04:05 +0100"`[2:],
		`((NIL NIL "alice" "example.org"))`,               // From, route dropped (adl NIL)
		`(("Bob in the office" NIL "bob" "example.org"))`, // Sender: the comment is the name
		`((NIL NIL "replies" "example.org"))`,             // Reply-To
		`((NIL NIL "Team" NIL)(NIL NIL "carol" "example.net")("Dave D." NIL "dave" "example.com")(NIL NIL NIL NIL)(NIL NIL "erin" "example.org"))`, // To with a group
		`((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))`,                                                                                // Cc: an empty group
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ENVELOPE lacks %s:\n%s", want, got)
		}
	}
	for _, q := range []string{"FROM alice@example.org", "FROM alice", "FROM relay.example", "HEADER Sender bob@example.org",
		"HEADER Sender office", "TO carol@example.net", "TO Team", "CC undisclosed"} {
		if u := r.ok("SEARCH %s", q); !has(u, "* SEARCH 1") {
			t.Errorf("SEARCH %s: %q", q, u)
		}
	}
}
