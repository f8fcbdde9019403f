package store

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestAppendListRead(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	raw := rawMsg("hello", "line one\r\nline two\r\n")
	zone := time.FixedZone("", -7*3600)
	recv := time.Date(2026, 3, 4, 5, 6, 7, 999, zone)
	f, _ := ParseFlags(`\seen`, "$Forwarded", "Work")
	a, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: raw, Flags: f, Received: recv,
		Meta: Meta{SenderVerified: "tm1alice@tangle", ConversationID: "conv-1", ViaTangle: true, EnvelopeKey: []byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	if a.UID != 1 || a.UIDValidity != inbox.UIDValidity || a.ModSeq == 0 {
		t.Errorf("Append = %+v", a)
	}

	l, err := s.List(ctx, inbox.ID, ListQuery{})
	if err != nil || len(l.Messages) != 1 {
		t.Fatalf("List: %+v, %v", l, err)
	}
	mi := l.Messages[0]
	if mi.UID != 1 || mi.Size != int64(len(raw)) || mi.ModSeq != a.ModSeq {
		t.Errorf("listed %+v", mi)
	}
	if got := mi.Flags.Strings(); len(got) != 3 || got[0] != `\Seen` || got[1] != "$Forwarded" || got[2] != "Work" {
		t.Errorf("flags %q, want [\\Seen $Forwarded Work]", got)
	}
	if !mi.Received.Equal(recv.Truncate(time.Second)) {
		t.Errorf("internal date %v, want %v", mi.Received, recv)
	}
	if _, off := mi.Received.Zone(); off != -7*3600 {
		t.Errorf("internal date zone offset %d, want the appended -25200", off)
	}
	if l.UIDNext != 2 || l.UIDValidity != inbox.UIDValidity || l.HighestModSeq != a.ModSeq || l.ModSeq < a.ModSeq {
		t.Errorf("listing header %+v", l)
	}
	if mb := mustMailbox(t, s, "INBOX"); len(mb.Keywords) != 2 || mb.Keywords[0] != "$Forwarded" {
		t.Errorf("mailbox keywords %q", mb.Keywords)
	}

	got, err := s.Raw(ctx, inbox.ID, 1)
	if err != nil || !bytes.Equal(got, raw) {
		t.Errorf("Raw = %q, %v", got, err)
	}
	hdrEnd := int64(bytes.Index(raw, []byte("\r\n\r\n")) + 4)
	h, _ := s.RawHeader(ctx, inbox.ID, 1)
	if !bytes.Equal(h, raw[:hdrEnd]) {
		t.Errorf("RawHeader = %q", h)
	}
	for _, r := range []struct{ off, n int64 }{{0, 5}, {hdrEnd - 3, 6}, {hdrEnd, 4}, {0, 1 << 20}, {int64(len(raw)) - 2, 10}, {int64(len(raw)), 5}, {1000, 1}, {3, 0}} {
		got, err := s.RawRange(ctx, inbox.ID, 1, r.off, r.n)
		end := min(int64(len(raw)), r.off+r.n)
		want := []byte{}
		if r.off < end {
			want = raw[r.off:end]
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("RawRange(%d, %d) = %q, %v; want %q", r.off, r.n, got, err, want)
		}
	}
	hdr, _ := s.Header(ctx, inbox.ID, 1)
	if hdr.Get("subject") != "hello" || hdr.Get("TO") != "bob@tangle" || len(hdr) != 5 || hdr[0].Name != "From" {
		t.Errorf("Header = %+v", hdr)
	}

	m, err := s.Message(ctx, inbox.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := Meta{SenderVerified: "tm1alice@tangle", ConversationID: "conv-1", ViaTangle: true, EnvelopeKey: []byte("k")}
	if !reflect.DeepEqual(m.Meta, wantMeta) || m.CreateSeq != a.ModSeq || m.HeaderSize != hdrEnd || m.MailboxID != inbox.ID {
		t.Errorf("Message = %+v", m)
	}
	if want := time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("", 3600)); !m.Sent.Equal(want) {
		t.Errorf("Sent (Date header) = %v, want %v", m.Sent, want)
	}
	if _, err := s.Raw(ctx, inbox.ID, 2); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Raw of missing UID: %v", err)
	}
	if _, err := s.Append(ctx, NewMessage{MailboxID: 9999, Raw: raw}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("Append to missing mailbox: %v", err)
	}
	if _, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: raw, Flags: Flags{Keywords: []string{"bad word"}}}); !errors.Is(err, ErrInvalidFlag) {
		t.Errorf("Append with invalid keyword: %v", err)
	}
	checkCounts(t, s)
}

func TestAppendOddMessages(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	for _, raw := range [][]byte{
		[]byte("Subject: header only, no blank line"),
		[]byte("Subject: lf only\n\nbody\n"),
		[]byte("\r\nno header at all"),
		[]byte("Subject: empty body\r\n\r\n"),
		{},
	} {
		a, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: raw})
		if err != nil {
			t.Fatalf("Append(%q): %v", raw, err)
		}
		got, err := s.Raw(ctx, inbox.ID, a.UID)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("Raw(%q) = %q, %v", raw, got, err)
		}
		if r, _ := s.RawRange(ctx, inbox.ID, a.UID, 1, 1000); len(raw) > 1 && !bytes.Equal(r, raw[1:]) {
			t.Errorf("RawRange(%q) = %q", raw, r)
		}
	}
}

func TestUIDsStrictlyIncreaseAndAreNeverReused(t *testing.T) {
	path := t.TempDir() + "/mail.db"
	s := openTestAt(t, path)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	var last UID
	for i := 0; i < 5; i++ {
		a := mustAppend(t, s, inbox.ID, rawMsg("m", string(rune('a'+i))), `\Deleted`)
		if a.UID <= last {
			t.Fatalf("UID %d after %d", a.UID, last)
		}
		last = a.UID
	}
	if e, err := s.Expunge(ctx, inbox.ID); err != nil || len(e.UIDs) != 5 {
		t.Fatalf("Expunge = %+v, %v", e, err)
	}
	if _, err := s.PurgeTombstones(ctx, ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestAt(t, path)
	// Same bytes as an expunged message: still a new UID.
	a := mustAppend(t, s, inbox.ID, rawMsg("m", "a"))
	if a.UID != 6 {
		t.Errorf("UID after expunging and purging 1..5 and reopening = %d, want 6", a.UID)
	}
	c, err := s.Copy(ctx, inbox.ID, UIDSetOf(6), inbox.ID)
	if err != nil || len(c.Pairs) != 1 || c.Pairs[0].Dst != 7 {
		t.Errorf("copy within the mailbox = %+v, %v; want UID 7", c, err)
	}
	if got := uidsString(listUIDs(t, s, inbox.ID)); got != "6,7" {
		t.Errorf("UIDs %s, want 6,7", got)
	}
}

func TestListUIDSetAndChangedSince(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	var as []Appended
	for i := 0; i < 200; i++ {
		as = append(as, mustAppend(t, s, inbox.ID, rawMsg("n", string(rune('A'+i%50))+itoa(int64(i)))))
	}
	l, _ := s.List(ctx, inbox.ID, ListQuery{UIDs: UIDSet{{5, 3}, {100, 100}, {198, 500}}})
	if got := uidsOf(l); got != "3,4,5,100,198,199,200" {
		t.Errorf("List(3:5,100,198:500) = %s", got)
	}
	var many UIDSet
	for u := UID(1); u <= 200; u += 2 {
		many = append(many, UIDRange{u, u})
	}
	l, _ = s.List(ctx, inbox.ID, ListQuery{UIDs: many}) // more ranges than SQL spells out
	if len(l.Messages) != 100 || l.Messages[0].UID != 1 || l.Messages[99].UID != 199 {
		t.Errorf("List of 100 odd UIDs gave %d messages", len(l.Messages))
	}
	s.StoreFlags(ctx, inbox.ID, UIDSetOf(7, 150), FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagSeen}})
	l, _ = s.List(ctx, inbox.ID, ListQuery{ChangedSince: as[199].ModSeq})
	if got := uidsOf(l); got != "7,150" {
		t.Errorf("List(CHANGEDSINCE last append) = %s, want 7,150", got)
	}
}

func uidsOf(l Listing) string {
	var u []UID
	for _, m := range l.Messages {
		u = append(u, m.UID)
	}
	return uidsString(u)
}

func TestBodiesSharedByContent(t *testing.T) {
	s := openTest(t)
	inbox := mustMailbox(t, s, "INBOX")
	raw := rawMsg("same", "same bytes")
	mustAppend(t, s, inbox.ID, raw)
	mustAppend(t, s, inbox.ID, raw)
	if n := countRows(t, s, "body"); n != 1 {
		t.Errorf("%d body rows for two identical messages, want 1", n)
	}
}
