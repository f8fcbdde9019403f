package chat_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestDirectChat: a 1:1 text arrives live on the other side, is filed in Chats as mail with the chat
// header fields, and the sender sees it delivered and then read.
func TestDirectChat(t *testing.T) {
	net := &network{params: tangle.DevNet}
	alice, bob := startNode(t, net, "alice", 1), startNode(t, net, "bob", 2)
	ctx := testCtx(t)
	if err := alice.st.AddContact(ctx, "bob", bob.addr()); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.chat.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if conv.Kind != chat.KindDirect || conv.Name != "bob" || conv.Peer != bob.addr() || len(conv.Members) != 2 {
		t.Fatalf("conversation %+v", conv)
	}
	sent, err := alice.chat.Send(ctx, conv.ID, "hi bob, ünïcode ✓\nsecond line")
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Mine || sent.Status != chat.StatusSending || sent.Text != "hi bob, ünïcode ✓\nsecond line" {
		t.Errorf("sent %+v", sent)
	}
	e := bob.waitEvent(t, "message", func(e chat.Event) bool { return e.Type == "message" })
	if e.Conversation != conv.ID || e.Message.Text != sent.Text || e.Message.Mine || e.Message.ID != sent.ID ||
		e.Message.From.Address != alice.addr() || e.Message.Seen {
		t.Fatalf("bob got %+v (message %+v)", e, e.Message)
	}
	// The same conversation id on both sides; the peer is named by address until bob adds a contact.
	bc, err := bob.chat.Conversation(ctx, conv.ID)
	if err != nil || bc.Peer != alice.addr() || bc.Unread != 1 || bc.Last == nil || bc.Last.Text != sent.Text {
		t.Fatalf("bob's conversation %+v, %v", bc, err)
	}
	// Filed in Chats as mail.
	chats, _ := bob.st.MailboxByRole(ctx, store.RoleChats)
	raw, err := bob.st.Raw(ctx, chats.ID, e.Message.UID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Chat-Version: 1\r\n", "Chat-Conversation-ID: " + conv.ID + "\r\n",
		"Message-ID: <" + sent.ID + "@tangle>", "From: " + alice.addr(), "To: " + bob.addr()} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("filed message lacks %q:\n%s", want, raw)
		}
	}
	alice.waitEvent(t, "delivered status", func(e chat.Event) bool {
		return e.Type == "status" && e.Message.ID == sent.ID && e.Message.Status == chat.StatusDelivered
	})
	if err := bob.chat.MarkRead(ctx, conv.ID); err != nil {
		t.Fatal(err)
	}
	alice.waitEvent(t, "read status", func(e chat.Event) bool {
		return e.Type == "status" && e.Message.ID == sent.ID && e.Message.Status == chat.StatusRead
	})
	if bc, _ := bob.chat.Conversation(ctx, conv.ID); bc.Unread != 0 {
		t.Errorf("unread after MarkRead: %d", bc.Unread)
	}
	// Bob answers; alice's history has both, oldest first.
	if _, err := bob.chat.Send(ctx, conv.ID, "hello alice"); err != nil {
		t.Fatal(err)
	}
	alice.waitEvent(t, "answer", func(e chat.Event) bool { return e.Type == "message" && e.Message.Text == "hello alice" })
	h, err := alice.chat.History(ctx, conv.ID, 0, 10)
	if err != nil || len(h) != 2 || h[0].ID != sent.ID || h[1].From.Name != "bob" || h[0].Status != chat.StatusRead {
		t.Fatalf("history %+v, %v", h, err)
	}
	// Typing reaches the peer.
	if err := bob.chat.Typing(ctx, conv.ID); err != nil {
		t.Fatal(err)
	}
	alice.waitEvent(t, "typing", func(e chat.Event) bool {
		return e.Type == "typing" && e.Conversation == conv.ID && e.From.Name == "bob"
	})
}

func TestSendErrors(t *testing.T) {
	net := &network{params: tangle.BenchNet}
	alice := startNode(t, net, "alice", 1)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name, conv, text string
		want             error
	}{
		{"bad id", "xyz", "hi", chat.ErrInvalid},
		{"unknown", strings.Repeat("ab", 16), "hi", chat.ErrNotFound},
		{"empty", strings.Repeat("ab", 16), "", chat.ErrInvalid},
		{"blank", strings.Repeat("ab", 16), "  \n", chat.ErrInvalid},
		{"too long", strings.Repeat("ab", 16), strings.Repeat("x", chat.MaxText+1), chat.ErrInvalid},
		{"not utf-8", strings.Repeat("ab", 16), "\xff", chat.ErrInvalid},
	} {
		if _, err := alice.chat.Send(ctx, tc.conv, tc.text); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, who := range []string{"", "nobody", "tm1notanaddress@tangle", alice.addr()} {
		if _, err := alice.chat.Direct(ctx, who); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("Direct(%q): %v", who, err)
		}
	}
	if _, err := alice.chat.CreateGroup(ctx, "solo", nil); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("group without members: %v", err)
	}
	if _, err := alice.chat.CreateGroup(ctx, "", []string{newIdentity(t, 9).Address().Mail()}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("group without a name: %v", err)
	}
}

// TestGroup: a group with signed membership changes that every member's node applies alike.
func TestGroup(t *testing.T) {
	net := &network{params: tangle.BenchNet}
	alice, bob, carol := startNode(t, net, "alice", 1), startNode(t, net, "bob", 2), startNode(t, net, "carol", 3)
	dave := startNode(t, net, "dave", 4)
	ctx := testCtx(t)
	g, err := alice.chat.CreateGroup(ctx, "Trip", []string{bob.addr(), carol.addr(), bob.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if g.Kind != chat.KindGroup || g.Name != "Trip" || len(g.Members) != 3 {
		t.Fatalf("group %+v", g)
	}
	all := []*node{alice, bob, carol}
	for _, nd := range all[1:] {
		nd.waitEvent(t, "create", func(e chat.Event) bool { return e.Type == "message" && e.Message.Kind == "event" })
		if c := mustGroup(t, nd, g.ID); c.Name != "Trip" || len(c.Members) != 3 || c.Left {
			t.Fatalf("%s sees %+v", nd.name, c)
		}
	}
	// A text reaches every other member.
	m, err := bob.chat.Send(ctx, g.ID, "hello group")
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node{alice, carol} {
		nd.waitEvent(t, "group text", func(e chat.Event) bool { return e.Type == "message" && e.Message.ID == m.ID })
	}
	bob.waitEvent(t, "group delivered", func(e chat.Event) bool {
		return e.Type == "status" && e.Message.ID == m.ID && e.Message.Status == chat.StatusDelivered
	})
	// Rename, add dave, remove carol, bob leaves: all members end with the same state.
	if err := bob.chat.Rename(ctx, g.ID, "Road trip"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rename everywhere", func() bool {
		for _, nd := range all {
			if mustGroup(t, nd, g.ID).Name != "Road trip" {
				return false
			}
		}
		return true
	})
	if err := carol.chat.AddMember(ctx, g.ID, dave.addr()); err != nil {
		t.Fatal(err)
	}
	// (A change is sent to the members its author knows of: wait until everyone knows of dave.)
	waitFor(t, "everyone knows dave is in", func() bool {
		for _, nd := range []*node{alice, bob, carol, dave} {
			c, err := nd.chat.Conversation(ctx, g.ID)
			if err != nil || c.Name != "Road trip" || len(c.Members) != 4 {
				return false
			}
		}
		return true
	})
	if err := alice.chat.RemoveMember(ctx, g.ID, carol.addr()); err != nil {
		t.Fatal(err)
	}
	if err := bob.chat.Leave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range []*node{alice, bob, carol, dave} {
				c := mustGroup(t, nd, g.ID)
				var ms []string
				for _, m := range c.Members {
					ms = append(ms, m.Address[:8])
				}
				t.Logf("%s: %q left=%v members=%v", nd.name, c.Name, c.Left, ms)
			}
		}
	})
	waitFor(t, "the same members everywhere", func() bool {
		for _, nd := range []*node{alice, dave} {
			if ms := memberSet(mustGroup(t, nd, g.ID)); len(ms) != 2 || !ms[alice.addr()] || !ms[dave.addr()] {
				return false
			}
		}
		return mustGroup(t, carol, g.ID).Left && mustGroup(t, bob, g.ID).Left
	})
	// Carol was removed: she can no longer send, and a forged text from her would not be filed.
	if _, err := carol.chat.Send(ctx, g.ID, "still here?"); !errors.Is(err, chat.ErrNotMember) {
		t.Errorf("removed member sends: %v", err)
	}
	if err := bob.chat.Rename(ctx, g.ID, "x"); !errors.Is(err, chat.ErrNotMember) {
		t.Errorf("member who left renames: %v", err)
	}
	// Event texts use petnames.
	if err := alice.st.AddContact(ctx, "Dave", dave.addr()); err != nil {
		t.Fatal(err)
	}
	h, err := alice.chat.History(ctx, g.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range h {
		texts = append(texts, m.Text)
	}
	joined := strings.Join(texts, " | ")
	for _, want := range []string{"you created the group “Trip”", "hello group", "added Dave", "renamed the group to “Road trip”", "you removed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("history lacks %q: %s", want, joined)
		}
	}
}

// TestGroupIgnoresNonMembers: a change or a text for a group from someone who is not in it changes
// nothing and shows nothing, even though the envelope is validly signed by its author.
func TestGroupIgnoresNonMembers(t *testing.T) {
	net := &network{params: tangle.BenchNet}
	alice, bob, mallory := startNode(t, net, "alice", 1), startNode(t, net, "bob", 2), startNode(t, net, "mallory", 5)
	ctx := testCtx(t)
	g, err := alice.chat.CreateGroup(ctx, "Trip", []string{bob.addr()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob knows the group", func() bool {
		c, err := bob.chat.Conversation(ctx, g.ID)
		return err == nil && len(c.Members) == 2
	})
	row, err := bob.st.Conversation(ctx, store.ConversationID(g.ID))
	if err != nil || len(row.GroupID) != chat.IDSize || g.ID != chat.GroupConversationID(chat.ID(row.GroupID)).String() {
		t.Fatalf("bob's group row %+v, %v", row, err)
	}
	gid := chat.ID(row.GroupID)
	forge := func(c *chat.Content) store.OutboxID {
		content, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := mallory.st.Submit(ctx, store.Submission{OutboxNew: store.OutboxNew{
			From: mallory.addr(), Rcpts: []string{bob.addr()}, Content: content,
			Raw: []byte("Subject: forged " + c.Message.String() + "\r\n\r\nx\r\n"),
		}})
		if err != nil {
			t.Fatal(err)
		}
		return sub.OutboxID
	}
	rename := forge(&chat.Content{Type: chat.TypeRename, Conversation: gid, Message: chat.NewID(), Name: "pwned"})
	text := forge(&chat.Content{Type: chat.TypeText, Conversation: gid, Message: chat.NewID(), Text: "hello from outside"})
	// The change is receipted (it is kept, and skipped by the fold); the text is neither filed nor
	// receipted. Then a real text shows that bob has processed everything before it.
	waitFor(t, "the forged change receipted", func() bool {
		it, err := mallory.st.OutboxItem(ctx, rename)
		return err == nil && it.Rcpts[0].State == store.RcptDelivered
	})
	if _, err := alice.chat.Send(ctx, g.ID, "real"); err != nil {
		t.Fatal(err)
	}
	bob.waitEvent(t, "the real text", func(e chat.Event) bool { return e.Type == "message" && e.Message.Text == "real" })
	c := mustGroup(t, bob, g.ID)
	if c.Name != "Trip" || len(c.Members) != 2 {
		t.Errorf("bob's group after forgeries: %+v", c)
	}
	h, err := bob.chat.History(ctx, g.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.From.Address == mallory.addr() {
			t.Errorf("a non-member's message was filed: %+v", m)
		}
	}
	if it, _ := mallory.st.OutboxItem(ctx, text); it.Rcpts[0].State == store.RcptDelivered {
		t.Error("a non-member's group text was receipted")
	}
}

// TestGroupCannotTakeADirectConversation: a group id chosen to equal the id of alice's 1:1
// conversation with bob makes a separate group; the 1:1 conversation stays bob's, and a text for it
// from someone else is not filed.
func TestGroupCannotTakeADirectConversation(t *testing.T) {
	net := &network{params: tangle.BenchNet}
	alice, bob, mallory := startNode(t, net, "alice", 1), startNode(t, net, "bob", 2), startNode(t, net, "mallory", 5)
	ctx := testCtx(t)
	direct, err := alice.chat.Direct(ctx, bob.addr())
	if err != nil {
		t.Fatal(err)
	}
	did, _ := chat.ParseID(direct.ID)
	forge := func(c *chat.Content) {
		content, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mallory.st.Submit(ctx, store.Submission{OutboxNew: store.OutboxNew{
			From: mallory.addr(), Rcpts: []string{alice.addr()}, Content: content,
			Raw: []byte("Subject: forged " + c.Message.String() + "\r\n\r\nx\r\n"),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	mAddr := mallory.id.Address()
	forge(&chat.Content{Type: chat.TypeCreate, Conversation: did, Message: chat.NewID(),
		State: &chat.State{Name: "bob", Members: []identity.Address{mAddr, alice.id.Address()}}})
	forge(&chat.Content{Type: chat.TypeText, Conversation: did, Message: chat.NewID(), Text: "it's bob, honest"})
	alice.waitEvent(t, "the forged group", func(e chat.Event) bool { return e.Type == "message" && e.Message.Kind == "event" })
	c, err := alice.chat.Conversation(ctx, direct.ID)
	if err != nil || c.Kind != chat.KindDirect || c.Peer != bob.addr() {
		t.Fatalf("alice's chat with bob became %+v, %v", c, err)
	}
	if again, err := alice.chat.Direct(ctx, "  "+bob.addr()); err != nil || again.ID != direct.ID || again.Kind != chat.KindDirect {
		t.Fatalf("Direct(bob) = %+v, %v", again, err)
	}
	m, err := alice.chat.Send(ctx, direct.ID, "for bob only")
	if err != nil {
		t.Fatal(err)
	}
	bob.waitEvent(t, "alice's text", func(e chat.Event) bool { return e.Type == "message" && e.Message.ID == m.ID })
	h, err := alice.chat.History(ctx, direct.ID, 0, 10)
	if err != nil || len(h) != 1 || h[0].ID != m.ID {
		t.Fatalf("alice's history with bob: %+v, %v", h, err)
	}
}
