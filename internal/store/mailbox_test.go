package store

import (
	"errors"
	"slices"
	"strconv"
	"testing"
)

func mailboxNames(t *testing.T, s *Store) []string {
	t.Helper()
	ms, err := s.Mailboxes(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestCreateMailboxHierarchy(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	m, err := s.CreateMailbox(ctx, "Projects/2026/tangle")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "Projects/2026/tangle" || m.UIDNext != 1 || m.Role != RoleNone || m.Subscribed {
		t.Errorf("created %+v", m)
	}
	for _, parent := range []string{"Projects", "Projects/2026"} {
		p := mustMailbox(t, s, parent)
		if !p.HasChildren {
			t.Errorf("%s: HasChildren false", parent)
		}
	}
	if m.HasChildren {
		t.Errorf("leaf has children")
	}
	if _, err := s.CreateMailbox(ctx, "Projects/2026"); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("create existing: %v", err)
	}
	if _, err := s.CreateMailbox(ctx, "inbox"); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("create inbox: %v", err)
	}
	sub, err := s.CreateMailbox(ctx, "inbox/sub")
	if err != nil || sub.Name != "INBOX/sub" {
		t.Errorf("create inbox/sub: %+v, %v (INBOX prefix must be normalised)", sub.Name, err)
	}
	if got := mustMailbox(t, s, "Inbox"); got.Role != RoleInbox {
		t.Errorf("lookup of Inbox gave %+v", got)
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a*", "b%", "tab\there", "\x7f"} {
		if _, err := s.CreateMailbox(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("create %q: %v, want ErrInvalidName", bad, err)
		}
	}
	if _, err := s.CreateMailbox(ctx, "Ünïcödé/名前"); err != nil {
		t.Errorf("UTF-8 name: %v", err)
	}
}

func TestUIDValidityChangesWhenNameReused(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	first, _ := s.CreateMailbox(ctx, "Reused")
	mustAppend(t, s, first.ID, rawMsg("a", "1"))
	if err := s.DeleteMailbox(ctx, "Reused"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, "Reused"); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("deleted mailbox still there: %v", err)
	}
	second, _ := s.CreateMailbox(ctx, "Reused")
	if second.UIDValidity == first.UIDValidity {
		t.Errorf("recreated mailbox kept UIDVALIDITY %d", first.UIDValidity)
	}
	if second.ID == first.ID || second.Messages != 0 || second.UIDNext != 1 {
		t.Errorf("recreated mailbox %+v", second)
	}

	// A name freed by RENAME and created anew also gets a new UIDVALIDITY; the renamed mailbox keeps its own.
	a := mustAppend(t, s, second.ID, rawMsg("b", "2"))
	if err := s.RenameMailbox(ctx, "Reused", "Moved"); err != nil {
		t.Fatal(err)
	}
	moved := mustMailbox(t, s, "Moved")
	if moved.ID != second.ID || moved.UIDValidity != second.UIDValidity || moved.Messages != 1 {
		t.Errorf("renamed mailbox %+v, want id %d UIDVALIDITY %d with its message", moved, second.ID, second.UIDValidity)
	}
	if raw, err := s.Raw(ctx, moved.ID, a.UID); err != nil || string(raw) != string(rawMsg("b", "2")) {
		t.Errorf("message after rename: %v", err)
	}
	third, _ := s.CreateMailbox(ctx, "Reused")
	if third.UIDValidity == second.UIDValidity || third.UIDValidity == first.UIDValidity {
		t.Errorf("UIDVALIDITY %d reused (earlier %d, %d)", third.UIDValidity, first.UIDValidity, second.UIDValidity)
	}
}

func TestUIDValidityStrictlyIncreasesWithBadGenerator(t *testing.T) {
	s := openTest(t, WithUIDValidity(func() uint32 { return 7 })) // a generator that repeats itself
	seen := map[uint32]bool{}
	for _, m := range must(s.Mailboxes(testCtx(t))) {
		seen[m.UIDValidity] = true
	}
	for _, n := range []string{"a", "b", "c"} {
		m, err := s.CreateMailbox(testCtx(t), n)
		if err != nil {
			t.Fatal(err)
		}
		if seen[m.UIDValidity] {
			t.Errorf("UIDVALIDITY %d handed out twice", m.UIDValidity)
		}
		seen[m.UIDValidity] = true
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRenameMailboxWithChildren(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	for _, n := range []string{"Work/a", "Work/b/c", "Workshop"} {
		if _, err := s.CreateMailbox(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSubscribed(ctx, "Work/a", true); err != nil {
		t.Fatal(err)
	}
	wa := mustMailbox(t, s, "Work/a")
	l := s.Subscribe()
	defer l.Close()
	if err := s.RenameMailbox(ctx, "Work", "Archive/Old work"); err != nil {
		t.Fatal(err)
	}
	want := []string{"Archive", "Archive/Old work", "Archive/Old work/a", "Archive/Old work/b", "Archive/Old work/b/c",
		"Chats", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Workshop"}
	if got := mailboxNames(t, s); !slices.Equal(got, want) {
		t.Errorf("after rename:\n got %q\nwant %q", got, want)
	}
	if m := mustMailbox(t, s, "Archive/Old work/a"); m.ID != wa.ID || m.UIDValidity != wa.UIDValidity || !m.Subscribed {
		t.Errorf("renamed child %+v (was %+v), subscription must follow", m, wa)
	}
	subs, _ := s.Subscriptions(ctx)
	if slices.Contains(subs, "Work/a") {
		t.Errorf("old name still subscribed: %q", subs)
	}
	changes, _ := l.Take()
	var renames []string
	for _, c := range changes {
		if r, ok := c.(ChangeMailboxRename); ok {
			renames = append(renames, r.OldName+"→"+r.NewName)
		}
	}
	if len(renames) != 4 {
		t.Errorf("rename changes %q, want 4 (Work and its 3 inferiors)", renames)
	}

	if err := s.RenameMailbox(ctx, "Workshop", "Workshop/inner"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("rename into itself: %v", err)
	}
	if err := s.RenameMailbox(ctx, "Workshop", "Sent"); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("rename onto existing: %v", err)
	}
	if err := s.RenameMailbox(ctx, "Nope", "Other"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("rename missing: %v", err)
	}
	// A role mailbox can be renamed and keeps its role.
	if err := s.RenameMailbox(ctx, "Sent", "Sent Items"); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.MailboxByRole(ctx, RoleSent); m.Name != "Sent Items" || m.SpecialUse != `\Sent` {
		t.Errorf("renamed Sent: %+v", m)
	}
}

func TestRenameInboxMovesMessages(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	child, _ := s.CreateMailbox(ctx, "INBOX/keep")
	mustAppend(t, s, inbox.ID, rawMsg("one", "1"), `\Seen`)
	mustAppend(t, s, inbox.ID, rawMsg("two", "2"), `\Flagged`, "$label1")
	if err := s.RenameMailbox(ctx, "INBOX", "Old mail"); err != nil {
		t.Fatal(err)
	}
	inbox2 := mustMailbox(t, s, "INBOX")
	if inbox2.ID != inbox.ID || inbox2.Messages != 0 || inbox2.Role != RoleInbox || inbox2.UIDNext != 3 {
		t.Errorf("INBOX after rename: %+v", inbox2)
	}
	old := mustMailbox(t, s, "Old mail")
	if old.Messages != 2 || old.Role != RoleNone || old.UIDValidity == inbox.UIDValidity {
		t.Errorf("new mailbox: %+v", old)
	}
	l, _ := s.List(ctx, old.ID, ListQuery{})
	if len(l.Messages) != 2 || !l.Messages[0].Flags.Has(`\Seen`) || !l.Messages[1].Flags.Has("$label1") {
		t.Errorf("moved messages: %+v", l.Messages)
	}
	if c := mustMailbox(t, s, "INBOX/keep"); c.ID != child.ID {
		t.Errorf("INBOX's inferior moved: %+v", c)
	}
	checkCounts(t, s)
}

func TestDeleteMailbox(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	for _, n := range []string{"INBOX", "inbox", "Sent", "Trash", "Chats"} {
		if err := s.DeleteMailbox(ctx, n); !errors.Is(err, ErrProtected) {
			t.Errorf("delete %s: %v, want ErrProtected", n, err)
		}
	}
	if err := s.DeleteMailbox(ctx, "nope"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("delete missing: %v", err)
	}
	p, _ := s.CreateMailbox(ctx, "P/child")
	parent := mustMailbox(t, s, "P")
	mustAppend(t, s, parent.ID, rawMsg("only-here", "bytes only in P"))
	shared := rawMsg("shared", "bytes also in child")
	mustAppend(t, s, parent.ID, shared)
	mustAppend(t, s, p.ID, shared)
	s.SetSubscribed(ctx, "P", true)
	bodies := countRows(t, s, "body")
	if err := s.DeleteMailbox(ctx, "P"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, "P/child"); err != nil {
		t.Errorf("inferior deleted too: %v", err)
	}
	if got := countRows(t, s, "body"); got != bodies-1 {
		t.Errorf("bodies %d → %d, want the unshared one collected", bodies, got)
	}
	if subs, _ := s.Subscriptions(ctx); !slices.Contains(subs, "P") {
		t.Errorf("subscription of deleted mailbox removed: %q", subs)
	}
	if n := countRows(t, s, "message WHERE mailbox_id = "+itoa(int64(parent.ID))); n != 0 {
		t.Errorf("%d message rows of the deleted mailbox remain", n)
	}
	checkCounts(t, s)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSubscriptions(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	l := s.Subscribe()
	defer l.Close()
	if err := s.SetSubscribed(ctx, "Not/there", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, "Not/there", true); err != nil { // no-op
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, "Sent", false); err != nil {
		t.Fatal(err)
	}
	subs, _ := s.Subscriptions(ctx)
	want := []string{"Archive", "Chats", "Drafts", "INBOX", "Junk", "Not/there", "Trash"}
	if !slices.Equal(subs, want) {
		t.Errorf("subscriptions %q, want %q", subs, want)
	}
	if m := mustMailbox(t, s, "Sent"); m.Subscribed {
		t.Errorf("Sent still subscribed")
	}
	changes, _ := l.Take()
	if len(changes) != 2 {
		t.Errorf("changes %+v, want 2 (the repeated subscribe changes nothing)", changes)
	}
}
