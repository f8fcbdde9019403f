package store

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestCopyMapsUIDsAndCarriesFlags(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	arch := mustMailbox(t, s, "Archive")
	mustAppend(t, s, arch.ID, rawMsg("pre", "occupies Archive UID 1"))
	mustAppend(t, s, inbox.ID, rawMsg("1", "a"), `\Seen`)
	mustAppend(t, s, inbox.ID, rawMsg("2", "b"), `\Flagged`, "$label2")
	mustAppend(t, s, inbox.ID, rawMsg("3", "c"))
	m1, _ := s.Message(ctx, inbox.ID, 1)
	bodies := countRows(t, s, "body")

	l := s.Subscribe()
	defer l.Close()
	r, err := s.Copy(ctx, inbox.ID, UIDSet{{1, 2}, {9, 12}}, arch.ID) // 9:12 do not exist
	if err != nil {
		t.Fatal(err)
	}
	wantPairs := []UIDPair{{1, 2}, {2, 3}}
	if !slices.Equal(r.Pairs, wantPairs) || r.UIDValidity != arch.UIDValidity || r.ModSeq == 0 {
		t.Errorf("Copy = %+v, want pairs %v and Archive's UIDVALIDITY %d", r, wantPairs, arch.UIDValidity)
	}
	if got := countRows(t, s, "body"); got != bodies {
		t.Errorf("copy added body rows: %d → %d", bodies, got)
	}
	al, _ := s.List(ctx, arch.ID, ListQuery{UIDs: UIDSet{{2, 3}}})
	if len(al.Messages) != 2 || !al.Messages[0].Flags.Has(`\Seen`) || !al.Messages[1].Flags.Has("$LABEL2") ||
		!al.Messages[1].Flags.Has(`\Flagged`) {
		t.Fatalf("copies %+v", al.Messages)
	}
	if !al.Messages[0].Received.Equal(m1.Received) {
		t.Errorf("internal date not carried: %v vs %v", al.Messages[0].Received, m1.Received)
	}
	if mb := mustMailbox(t, s, "Archive"); !slices.Contains(mb.Keywords, "$label2") || mb.UIDNext != 4 {
		t.Errorf("Archive after copy: %+v", mb)
	}
	if got := uidsString(listUIDs(t, s, inbox.ID)); got != "1,2,3" {
		t.Errorf("source after copy: %s", got)
	}
	changes, _ := l.Take()
	var added []UID
	for _, c := range changes {
		if a, ok := c.(ChangeAdd); ok && a.MailboxID == arch.ID {
			added = append(added, a.UID)
		}
	}
	if uidsString(added) != "2,3" {
		t.Errorf("ChangeAdd UIDs %v", added)
	}
	if r, err := s.Copy(ctx, inbox.ID, UIDSetOf(77), arch.ID); err != nil || len(r.Pairs) != 0 || r.ModSeq != 0 {
		t.Errorf("copy of nothing = %+v, %v", r, err)
	}
	if _, err := s.Copy(ctx, inbox.ID, UIDSetOf(1), 424242); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("copy to missing mailbox: %v", err)
	}
	checkCounts(t, s)
}

func TestMove(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	trash := mustMailbox(t, s, "Trash")
	for i := 0; i < 4; i++ {
		mustAppend(t, s, inbox.ID, rawMsg("m", itoa(int64(i))), `\Answered`)
	}
	meta := Meta{ConversationID: "c9", SenderVerified: "tm1x@tangle", EnvelopeKey: []byte("key")}
	a, _ := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: rawMsg("meta", "x"), Meta: meta})
	l := s.Subscribe()
	defer l.Close()
	r, err := s.Move(ctx, inbox.ID, UIDSet{{2, 3}, {a.UID, a.UID}}, trash.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Pairs, []UIDPair{{2, 1}, {3, 2}, {5, 3}}) {
		t.Errorf("Move pairs %v", r.Pairs)
	}
	if got := uidsString(listUIDs(t, s, inbox.ID)); got != "1,4" {
		t.Errorf("source after move: %s", got)
	}
	tl, _ := s.List(ctx, trash.ID, ListQuery{})
	if len(tl.Messages) != 3 || !tl.Messages[0].Flags.Has(`\Answered`) {
		t.Errorf("destination after move: %+v", tl.Messages)
	}
	if m, _ := s.Message(ctx, trash.ID, 3); !reflect.DeepEqual(m.Meta, meta) {
		t.Errorf("metadata not carried: %+v", m.Meta)
	}
	if v, _ := s.Vanished(ctx, inbox.ID, r.ModSeq-1); uidsString(v) != "2,3,5" {
		t.Errorf("tombstones in source: %v", v)
	}
	changes, _ := l.Take()
	var kinds []string
	for _, c := range changes {
		switch c := c.(type) {
		case ChangeAdd:
			kinds = append(kinds, "add")
		case ChangeExpunge:
			kinds = append(kinds, "expunge:"+uidsString(c.UIDs))
		}
		if c.ChangeModSeq() != r.ModSeq {
			t.Errorf("change %+v has modseq %d, move's is %d", c, c.ChangeModSeq(), r.ModSeq)
		}
	}
	if !slices.Equal(kinds, []string{"add", "add", "add", "expunge:2,3,5"}) {
		t.Errorf("move changes %q", kinds)
	}
	if _, err := s.Move(ctx, inbox.ID, UIDSetOf(1), inbox.ID); !errors.Is(err, ErrSameMailbox) {
		t.Errorf("move to same mailbox: %v", err)
	}
	raw, err := s.Raw(ctx, trash.ID, 1)
	if err != nil || string(raw) != string(rawMsg("m", "1")) {
		t.Errorf("moved bytes: %q, %v", raw, err)
	}
	checkCounts(t, s)
}
