package store

import "testing"

func TestStatusCounts(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	junk := mustMailbox(t, s, "Junk")
	var size int64
	for i, flags := range [][]string{{}, {`\Seen`}, {`\Deleted`}, {`\Seen`, `\Deleted`}, {"$x"}} {
		raw := rawMsg("s", itoa(int64(i)))
		size += int64(len(raw))
		mustAppend(t, s, inbox.ID, raw, flags...)
	}
	st, err := s.Status(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Messages: 5, Unseen: 3, Deleted: 2, Size: size, UIDNext: 6, UIDValidity: inbox.UIDValidity, HighestModSeq: st.HighestModSeq}
	if st != want || st.HighestModSeq == 0 {
		t.Errorf("Status = %+v, want %+v", st, want)
	}
	s.StoreFlags(ctx, inbox.ID, UIDSetOf(1, 5), FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagSeen}})
	s.Expunge(ctx, inbox.ID)
	s.Move(ctx, inbox.ID, UIDSetOf(2), junk.ID)
	st, _ = s.Status(ctx, inbox.ID)
	if st.Messages != 2 || st.Unseen != 0 || st.Deleted != 0 {
		t.Errorf("Status after store, expunge, move = %+v", st)
	}
	js, _ := s.Status(ctx, junk.ID)
	if js.Messages != 1 || js.Unseen != 0 || js.UIDNext != 2 {
		t.Errorf("Junk status %+v", js)
	}
	checkCounts(t, s)
}
