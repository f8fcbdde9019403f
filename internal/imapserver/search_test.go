package imapserver

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/tanglemail/tanglemail/internal/store"
)

// searchFixture: five messages in INBOX with different headers, bodies, flags and dates.
func searchFixture(t *testing.T) *testServer {
	ts := newTestServer(t)
	ctx := testCtx(t)
	inbox := mailbox(t, ts.st, "INBOX")
	b64 := base64.StdEncoding.EncodeToString([]byte("Viele Grüße aus Köln, und bis bald!\r\n"))
	msgs := []struct {
		raw   string
		flags []string
		recv  time.Time
	}{
		{"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: Lunch on Friday\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nShall we meet at noon?\r\n",
			[]string{`\Seen`}, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)},
		{"From: carol@example.net\r\nTo: bob@example.org\r\nSubject: Invoice 42\r\nX-Priority: 1\r\nDate: Tue, 03 Mar 2026 10:00:00 +0000\r\n\r\nPlease pay invoice 42.\r\n",
			[]string{`\Flagged`, "invoices"}, time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)},
		{"From: dave@example.com\r\nTo: bob@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Wed, 04 Mar 2026 10:00:00 +0000\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n",
			nil, time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)},
		{"From: alice@example.org\r\nTo: team@example.org\r\nSubject: Big attachment\r\nDate: Thu, 05 Mar 2026 10:00:00 +0000\r\n\r\n" +
			strings.Repeat("lorem ipsum ", 500) + "\r\n",
			[]string{`\Seen`, `\Answered`}, time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)},
		{"From: eve@example.org\r\nSubject: no date here\r\n\r\nshort\r\n",
			[]string{`\Deleted`}, time.Date(2026, 3, 6, 23, 30, 0, 0, time.FixedZone("", -5*3600))},
	}
	for _, m := range msgs {
		f, err := store.ParseFlags(m.flags...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.st.Append(ctx, store.NewMessage{MailboxID: inbox.ID, Raw: []byte(m.raw), Flags: f, Received: m.recv}); err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

func TestSearch(t *testing.T) {
	ts := searchFixture(t)
	c := ts.client(t)
	selectBox(t, c, "INBOX")
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name string
		c    imap.SearchCriteria
		want string
	}{
		{"all", imap.SearchCriteria{}, "1:5"},
		{"from", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "ALICE"}}}, "1,4"},
		{"subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "invoice"}}}, "2"},
		{"subject decoded", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "grüße"}}}, "3"},
		{"header present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Priority", Value: ""}}}, "2"},
		{"body base64 utf-8", imap.SearchCriteria{Body: []string{"grüße aus köln"}}, "3"},
		{"body not in header", imap.SearchCriteria{Body: []string{"Lunch"}}, ""},
		{"text", imap.SearchCriteria{Text: []string{"lunch"}}, "1"},
		{"seen", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, "1,4"},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, "2:3,5"},
		{"keyword", imap.SearchCriteria{Flag: []imap.Flag{"Invoices"}}, "2"},
		{"since", imap.SearchCriteria{Since: day(4)}, "3:5"},
		{"before", imap.SearchCriteria{Before: day(3)}, "1"},
		{"on (own zone)", imap.SearchCriteria{Since: day(6), Before: day(7)}, "5"},
		{"sentsince", imap.SearchCriteria{SentSince: day(4)}, "3:4"},
		{"sentbefore", imap.SearchCriteria{SentBefore: day(3)}, "1"},
		{"larger", imap.SearchCriteria{Larger: 1000}, "4"},
		{"smaller", imap.SearchCriteria{Smaller: 100}, "5"},
		{"seq", imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 2, Stop: 0}}}}, "2:5"},
		{"uid", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(1, 5, 9)}}, "1,5"},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen}}}}, "2:3,5"},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagFlagged}}, {Flag: []imap.Flag{imap.FlagDeleted}}}}}, "2,5"},
		{"and", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}, Body: []string{"lorem"}}, "4"},
		{"new never matches (no \\Recent)", imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}}, ""},
	} {
		d, err := c.Search(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := d.All.String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	d, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || d.All.String() != "1,4" {
		t.Errorf("UID SEARCH: %v %v", d, err)
	}
}

func TestSearchWire(t *testing.T) {
	ts := searchFixture(t)
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	// IMAP4rev1 SEARCH response.
	if u := r.ok("SEARCH CHARSET UTF-8 SEEN"); len(u) != 1 || u[0] != "* SEARCH 1 4" {
		t.Errorf("SEARCH: %q", u)
	}
	r.expect("NO", "BADCHARSET", "SEARCH CHARSET ISO-8859-1 SEEN")
	if _, st := r.cmd("SEARCH BOGUS"); strings.HasPrefix(st, "OK") { // go-imap: NO [SERVERBUG] for unknown keys
		t.Errorf("SEARCH BOGUS: %q", st)
	}
	// Literal search strings in UTF-8.
	if u := r.ok("SEARCH BODY {5+}\r\nKöln"); len(u) != 1 || u[0] != "* SEARCH 3" {
		t.Errorf("SEARCH BODY literal: %q", u)
	}
	if u := r.ok("SEARCH ON 6-Mar-2026"); len(u) != 1 || u[0] != "* SEARCH 5" {
		t.Errorf("SEARCH ON: %q", u)
	}
	// ESEARCH (RFC 4731).
	u, st := r.cmd("SEARCH RETURN (MIN MAX COUNT) UNSEEN")
	if len(u) != 1 || !strings.HasPrefix(st, "OK") || !has(u, "* ESEARCH (TAG ", "MIN 2 MAX 5 COUNT 3") {
		t.Errorf("ESEARCH: %q %q", u, st)
	}
	if u := r.ok("UID SEARCH RETURN (ALL) FROM alice"); !has(u, "* ESEARCH", " UID ALL 1,4") {
		t.Errorf("UID ESEARCH: %q", u)
	}
	if u := r.ok("SEARCH RETURN (COUNT) SUBJECT nothing-matches"); !has(u, "COUNT 0") {
		t.Errorf("ESEARCH no match: %q", u)
	}
	// SEARCHRES (RFC 5182): SAVE, then $ in FETCH and SEARCH.
	r.ok("SEARCH RETURN (SAVE) FLAGGED")
	if u := r.ok("FETCH $ UID"); len(u) != 1 || !has(u, "* 2 FETCH (UID 2)") {
		t.Errorf("FETCH $: %q", u)
	}
	if u := r.ok("SEARCH OR $ SEEN"); len(u) != 1 || u[0] != "* SEARCH 1 2 4" {
		t.Errorf("SEARCH $: %q", u)
	}
}

// TestSearchSequenceNumbers: after an expunge the session's sequence numbers and "*" follow its view.
func TestSearchSequenceNumbers(t *testing.T) {
	ts := searchFixture(t)
	c := ts.client(t)
	selectBox(t, c, "INBOX")
	if err := c.Expunge().Close(); err != nil { // message 5 has \Deleted
		t.Fatal(err)
	}
	d, err := c.Search(&imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 0, Stop: 0}}}}, nil).Wait()
	if err != nil || d.All.String() != "4" {
		t.Errorf("SEARCH *: %v %v", d, err)
	}
	// A message delivered but not yet announced is not found by SEARCH… until NOOP.
	deliver(t, ts.st, "INBOX", []byte("Subject: fresh\r\n\r\nnew\r\n"))
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	deliver(t, ts.st, "INBOX", []byte("Subject: fresher\r\n\r\nnew\r\n"))
	u, _ := r.cmd("SEARCH SUBJECT fresh")
	if !has(u, "* SEARCH 5") || has(u, "* SEARCH 5 6") {
		t.Errorf("SEARCH before the EXISTS: %q", u)
	}
	if !has(u, "* 6 EXISTS") {
		t.Errorf("EXISTS after SEARCH: %q", u)
	}
	if u := r.ok("SEARCH SUBJECT fresh"); !has(u, "* SEARCH 5 6") {
		t.Errorf("SEARCH after the EXISTS: %q", u)
	}
}
