package store

import (
	"errors"
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	f, err := ParseFlags(`\SEEN`, `\draft`, "Junk", "$Junk", "junk", `\Recent`)
	if err != nil {
		t.Fatal(err)
	}
	if f.System != FlagSeen|FlagDraft || !slices.Equal(f.Keywords, []string{"$Junk", "Junk"}) {
		t.Errorf("ParseFlags = %+v", f)
	}
	if got := f.Strings(); !slices.Equal(got, []string{`\Seen`, `\Draft`, "$Junk", "Junk"}) {
		t.Errorf("Strings = %q", got)
	}
	for _, bad := range []string{`\Unknown`, "two words", "par(en", "", "quo\"te", "wild*", "ü"} {
		if _, err := ParseFlags(bad); !errors.Is(err, ErrInvalidFlag) {
			t.Errorf("ParseFlags(%q) = %v, want ErrInvalidFlag", bad, err)
		}
	}
}

func TestStoreFlagsModSeq(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	mustAppend(t, s, inbox.ID, rawMsg("1", "a"))
	a2 := mustAppend(t, s, inbox.ID, rawMsg("2", "b"), `\Seen`)
	l := s.Subscribe()
	defer l.Close()
	state0, _ := s.Account(ctx)

	// +FLAGS \Seen: only message 1 changes.
	r, err := s.StoreFlags(ctx, inbox.ID, UIDSet{{1, 2}}, FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagSeen}})
	if err != nil {
		t.Fatal(err)
	}
	if r.ModSeq != state0.LastModSeq+1 || len(r.Messages) != 2 {
		t.Fatalf("StoreFlags = %+v", r)
	}
	if m := r.Messages[0]; m.UID != 1 || !m.Changed || m.ModSeq != r.ModSeq || m.Flags.System != FlagSeen {
		t.Errorf("message 1: %+v", m)
	}
	if m := r.Messages[1]; m.UID != 2 || m.Changed || m.ModSeq != a2.ModSeq {
		t.Errorf("message 2 (already \\Seen) must keep modseq %d: %+v", a2.ModSeq, m)
	}
	changes, _ := l.Take()
	if len(changes) != 1 || changes[0].(ChangeFlags).UID != 1 {
		t.Errorf("changes %+v, want one ChangeFlags for UID 1", changes)
	}

	// The same store again is a no-op: no modseq taken, nothing broadcast.
	r, err = s.StoreFlags(ctx, inbox.ID, UIDSet{{1, 2}}, FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagSeen}})
	if err != nil || r.ModSeq != 0 || r.Messages[0].Changed || r.Messages[1].Changed {
		t.Errorf("no-op store = %+v, %v", r, err)
	}
	state1, _ := s.Account(ctx)
	if state1.LastModSeq != state0.LastModSeq+1 {
		t.Errorf("no-op store moved LastModSeq %d → %d", state0.LastModSeq+1, state1.LastModSeq)
	}
	select {
	case <-l.Ready():
		if c, _ := l.Take(); len(c) > 0 {
			t.Errorf("no-op store broadcast %+v", c)
		}
	default:
	}

	// FLAGS (set) with a new keyword, then -FLAGS.
	r, _ = s.StoreFlags(ctx, inbox.ID, UIDSetOf(2), FlagChange{Op: FlagsSet, Flags: must(ParseFlags(`\Flagged`, "Important"))})
	if m := r.Messages[0]; !m.Changed || m.Flags.System != FlagFlagged || !slices.Equal(m.Flags.Keywords, []string{"Important"}) {
		t.Errorf("set: %+v", m)
	}
	changes, _ = l.Take()
	if len(changes) != 2 {
		t.Fatalf("changes %+v, want keywords then flags", changes)
	}
	if kw, ok := changes[0].(ChangeMailboxKeywords); !ok || !slices.Equal(kw.Keywords, []string{"Important"}) {
		t.Errorf("first change %+v, want the mailbox's new keyword list", changes[0])
	}
	r, _ = s.StoreFlags(ctx, inbox.ID, UIDSetOf(2), FlagChange{Op: FlagsRemove, Flags: must(ParseFlags("IMPORTANT", `\Seen`))})
	if m := r.Messages[0]; !m.Changed || m.Flags.System != FlagFlagged || len(m.Flags.Keywords) != 0 {
		t.Errorf("remove: %+v", m)
	}

	// UNCHANGEDSINCE (RFC 7162 §3.1.3).
	m1, _ := s.Message(ctx, inbox.ID, 1)
	m2, _ := s.Message(ctx, inbox.ID, 2)
	since := m1.ModSeq // message 2 changed later than this
	r, _ = s.StoreFlags(ctx, inbox.ID, UIDSet{{1, 2}}, FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagDeleted}, UnchangedSince: &since})
	if !slices.Equal(r.Modified, []UID{2}) || len(r.Messages) != 1 || r.Messages[0].UID != 1 || !r.Messages[0].Changed {
		t.Errorf("conditional store = %+v", r)
	}
	lastChange := r.ModSeq
	if after, _ := s.Message(ctx, inbox.ID, 2); after.ModSeq != m2.ModSeq || after.Flags.System&FlagDeleted != 0 {
		t.Errorf("MODIFIED message was changed: %+v", after)
	}
	zero := uint64(0)
	r, _ = s.StoreFlags(ctx, inbox.ID, UIDSetOf(1), FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagDraft}, UnchangedSince: &zero})
	if len(r.Modified) != 1 {
		t.Errorf("UNCHANGEDSINCE 0 must fail every message: %+v", r)
	}
	if mb := mustMailbox(t, s, "INBOX"); mb.HighestModSeq != lastChange {
		t.Errorf("mailbox HIGHESTMODSEQ %d, want the last change's %d", mb.HighestModSeq, lastChange)
	}
	checkCounts(t, s)
}
