package store

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// The search corpus; UIDs are 1-based positions.
var searchCorpus = []struct {
	raw      string
	flags    []string
	received time.Time
}{
	{ // 1: plain ASCII
		raw: "From: Alice Example <alice@tangle>\r\nTo: bob@tangle\r\nCc: carol@tangle\r\nSubject: Lunch plans\r\n" +
			"Date: Tue, 03 Mar 2026 23:30:00 -0500\r\nX-Priority: 1\r\n\r\nShall we meet at noon?\r\n",
		flags:    []string{`\Seen`},
		received: time.Date(2026, 3, 4, 4, 30, 0, 0, time.UTC),
	},
	{ // 2: base64 UTF-8 body, RFC 2047 subject
		raw: "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@tangle>\r\nTo: alice@tangle\r\nSubject: =?UTF-8?B?" +
			base64.StdEncoding.EncodeToString([]byte("Grüße aus Köln")) + "?=\r\n" +
			"Date: Wed, 04 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString([]byte("Der Dom in KÖLN ist groß. Viele Grüße!")) + "\r\n",
		flags:    []string{`\Flagged`, "$label1"},
		received: time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC),
	},
	{ // 3: quoted-printable ISO-8859-1 body
		raw: "From: Zoé <zoe@tangle>\r\nTo: alice@tangle\r\nSubject: menu\r\nDate: Thu, 05 Mar 2026 12:00:00 +0000\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"Un caf=E9 cr=E8me et une cr=EApe, s'il vous pla=EEt. Tr=E8s long=\r\nue ligne.\r\n",
		flags:    []string{`\Seen`, `\Deleted`},
		received: time.Date(2026, 3, 6, 0, 0, 0, 0, time.FixedZone("", 2*3600)), // 5 March 22:00 UTC, 6 March locally
	},
	{ // 4: multipart: text part plus a base64 attachment that contains the word "secretword"
		raw: "From: bob@tangle\r\nTo: alice@tangle\r\nSubject: report attached\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n" +
			"--XYZ\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee the attached report.\r\n" +
			"--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString([]byte("secretword inside the attachment")) + "\r\n--XYZ--\r\n",
		received: time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC),
	},
}

func searchStore(t *testing.T) (*Store, Mailbox) {
	t.Helper()
	s := openTest(t)
	inbox := mustMailbox(t, s, "INBOX")
	for _, m := range searchCorpus {
		f, err := ParseFlags(m.flags...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(testCtx(t), NewMessage{MailboxID: inbox.ID, Raw: []byte(m.raw), Flags: f, Received: m.received}); err != nil {
			t.Fatal(err)
		}
	}
	return s, inbox
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestSearch(t *testing.T) {
	s, inbox := searchStore(t)
	size := func(i int) int64 { return int64(len(searchCorpus[i-1].raw)) }
	cases := []struct {
		name string
		c    SearchCriteria
		want string
	}{
		{"all", SearchCriteria{}, "1,2,3,4"},
		{"seen", SearchCriteria{Flag: []string{`\Seen`}}, "1,3"},
		{"unseen", SearchCriteria{NotFlag: []string{`\seen`}}, "2,4"},
		{"keyword any case", SearchCriteria{Flag: []string{"$LABEL1"}}, "2"},
		{"not keyword", SearchCriteria{NotFlag: []string{"$label1"}}, "1,3,4"},
		{"recent never", SearchCriteria{Flag: []string{`\Recent`}}, ""},
		{"undeleted and seen", SearchCriteria{Flag: []string{`\Seen`}, NotFlag: []string{`\Deleted`}}, "1"},
		{"since (internal date, own zone)", SearchCriteria{Since: day(2026, 3, 6)}, "3,4"},
		{"before", SearchCriteria{Before: day(2026, 3, 5)}, "1"},
		{"on 5 March", SearchCriteria{Since: day(2026, 3, 5), Before: day(2026, 3, 6)}, "2"},
		{"sent before (Date header, own zone)", SearchCriteria{SentBefore: day(2026, 3, 4)}, "1"},
		{"sent on 4 March", SearchCriteria{SentSince: day(2026, 3, 4), SentBefore: day(2026, 3, 5)}, "2"},
		{"sent since excludes no Date", SearchCriteria{SentSince: day(2000, 1, 1)}, "1,2,3"},
		{"not sent since includes no Date", SearchCriteria{Not: []SearchCriteria{{SentSince: day(2000, 1, 1)}}}, "4"},
		{"larger", SearchCriteria{Larger: size(1)}, "2,3,4"},
		{"smaller", SearchCriteria{Smaller: size(1) + 1}, "1"},
		{"from name, case", SearchCriteria{Header: []HeaderMatch{{"From", "ALICE example"}}}, "1"},
		{"from encoded word", SearchCriteria{Header: []HeaderMatch{{"from", "jürgen"}}}, "2"},
		{"to", SearchCriteria{Header: []HeaderMatch{{"To", "alice@"}}}, "2,3,4"},
		{"cc", SearchCriteria{Header: []HeaderMatch{{"Cc", "carol"}}}, "1"},
		{"bcc none", SearchCriteria{Header: []HeaderMatch{{"Bcc", "a"}}}, ""},
		{"subject decoded", SearchCriteria{Header: []HeaderMatch{{"Subject", "grüße"}}}, "2"},
		{"arbitrary header", SearchCriteria{Header: []HeaderMatch{{"X-Priority", "1"}}}, "1"},
		{"header presence", SearchCriteria{Header: []HeaderMatch{{"x-priority", ""}}}, "1"},
		{"body base64 utf-8", SearchCriteria{Body: []string{"köln ist"}}, "2"},
		{"body base64 utf-8 ß", SearchCriteria{Body: []string{"groß"}}, "2"},
		{"body qp latin-1", SearchCriteria{Body: []string{"café crème"}}, "3"},
		{"body qp soft break", SearchCriteria{Body: []string{"longue ligne"}}, "3"},
		{"body qp latin-1 case", SearchCriteria{Body: []string{"CRÊPE"}}, "3"},
		{"body not in header", SearchCriteria{Body: []string{"lunch"}}, ""},
		{"body skips attachments", SearchCriteria{Body: []string{"secretword"}}, ""},
		{"body multipart text part", SearchCriteria{Body: []string{"attached report"}}, "4"},
		{"text in header", SearchCriteria{Text: []string{"lunch"}}, "1"},
		{"text in body", SearchCriteria{Text: []string{"noon"}}, "1"},
		{"text decoded header", SearchCriteria{Text: []string{"köln"}}, "2"},
		{"or", SearchCriteria{Or: [][2]SearchCriteria{{{Flag: []string{`\Flagged`}}, {Body: []string{"café"}}}}}, "2,3"},
		{"not body", SearchCriteria{Not: []SearchCriteria{{Body: []string{"noon"}}}}, "2,3,4"},
		{"not (seen or flagged)", SearchCriteria{Not: []SearchCriteria{{Or: [][2]SearchCriteria{{{Flag: []string{`\Seen`}}, {Flag: []string{`\Flagged`}}}}}}}, "4"},
		{"and of text and flag", SearchCriteria{Flag: []string{`\Seen`}, Text: []string{"tangle"}}, "1,3"},
		{"uid sets", SearchCriteria{UID: []UIDSet{{{1, 3}}, {{2, 4}}}}, "2,3"},
		{"empty uid set", SearchCriteria{UID: []UIDSet{{}}}, ""},
		{"or with uid", SearchCriteria{Or: [][2]SearchCriteria{{{UID: []UIDSet{UIDSetOf(4)}}, {Header: []HeaderMatch{{"Subject", "menu"}}}}}}, "3,4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := s.Search(testCtx(t), inbox.ID, c.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := uidsString(r.UIDs); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestSearchModSeqAndMaxModSeq(t *testing.T) {
	s, inbox := searchStore(t)
	ctx := testCtx(t)
	r, _ := s.StoreFlags(ctx, inbox.ID, UIDSetOf(2), FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagAnswered}})
	res, err := s.Search(ctx, inbox.ID, SearchCriteria{ModSeq: r.ModSeq})
	if err != nil || uidsString(res.UIDs) != "2" || res.MaxModSeq != r.ModSeq {
		t.Errorf("Search(MODSEQ %d) = %+v, %v", r.ModSeq, res, err)
	}
	res, _ = s.Search(ctx, inbox.ID, SearchCriteria{Flag: []string{"nosuchkeyword"}})
	if len(res.UIDs) != 0 || res.MaxModSeq != 0 {
		t.Errorf("empty search = %+v", res)
	}
	if _, err := s.Search(ctx, 12345, SearchCriteria{}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("search of missing mailbox: %v", err)
	}
}

func TestSearchScansInBatches(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	const n = 3*searchBatch + 17
	var want []UID
	err := s.Update(ctx, func(tx *Tx) error {
		for i := 1; i <= n; i++ {
			body := "filler"
			if i%97 == 0 {
				body = "the needle is here"
				want = append(want, UID(i))
			}
			if _, err := tx.Append(NewMessage{MailboxID: inbox.ID, Raw: rawMsg("b"+itoa(int64(i)), body)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Search(ctx, inbox.ID, SearchCriteria{Body: []string{"NEEDLE"}})
	if err != nil || uidsString(r.UIDs) != uidsString(want) {
		t.Errorf("batched body search = %v, %v; want %v", r.UIDs, err, want)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Search(cctx, inbox.ID, SearchCriteria{Body: []string{"x"}}); err == nil {
		t.Errorf("search with a cancelled context succeeded")
	}
}

func TestParseHeader(t *testing.T) {
	h := ParseHeader([]byte("Subject: a\r\n  folded\r\n\tline\r\nnot a field\r\nX-A: =?ISO-8859-1?Q?caf=E9?=\r\nTo: x\r\n\r\nBody: no\r\n"))
	if len(h) != 3 || h.Get("subject") != "a folded line" || h.Get("x-a") != "café" || h.Get("body") != "" {
		t.Errorf("ParseHeader = %+v", h)
	}
	if v := ParseHeader([]byte("A: 1\nB: 2\nA: 3\n")).Values("a"); strings.Join(v, ",") != "1,3" {
		t.Errorf("Values = %q", v)
	}
}
