package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestConversationsPutListAndChanges(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	if _, err := s.Conversation(ctx, "nope"); !errors.Is(err, ErrNoConversation) {
		t.Fatalf("unknown conversation: %v", err)
	}
	l := s.Subscribe()
	defer l.Close()
	t0 := time.UnixMilli(1_700_000_000_000)
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutConversation(Conversation{ID: "aa", Kind: "direct", Peer: "tm1bob@tangle", Updated: t0}); err != nil {
			return err
		}
		return tx.PutConversation(Conversation{ID: "bb", Kind: "group", GroupID: []byte{7}, Name: "Trip", State: []byte{1, 2}, Updated: t0.Add(time.Second)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutConversation(Conversation{ID: "x", Kind: "chat"}) }); err == nil {
		t.Error("a bad kind was accepted")
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutConversation(Conversation{ID: "aa", Kind: "group"}) }); err == nil {
		t.Error("a direct conversation became a group")
	}
	cs, err := s.Conversations(ctx)
	if err != nil || len(cs) != 2 || cs[0].ID != "bb" || cs[1].Peer != "tm1bob@tangle" || !bytes.Equal(cs[0].State, []byte{1, 2}) ||
		!bytes.Equal(cs[0].GroupID, []byte{7}) {
		t.Fatalf("Conversations = %+v, %v", cs, err)
	}
	// Touching moves a conversation forward, never back.
	err = s.Update(ctx, func(tx *Tx) error {
		if err := tx.TouchConversation("aa", t0.Add(time.Hour)); err != nil {
			return err
		}
		return tx.TouchConversation("bb", t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs, _ := s.Conversations(ctx); cs[0].ID != "aa" || !cs[1].Updated.Equal(t0.Add(time.Second)) {
		t.Errorf("after touch: %+v", cs)
	}
	waitChange(t, l, func(c Change) bool { cc, ok := c.(ChangeConversation); return ok && cc.ID == "bb" })

	ch := func(ms int64, author, id byte) ConversationChange {
		return ConversationChange{Sent: time.UnixMilli(ms), AuthorKey: []byte{author}, MessageID: []byte{id}, Author: "a", Content: []byte{id}}
	}
	var added []bool
	err = s.Update(ctx, func(tx *Tx) error {
		for _, c := range []ConversationChange{ch(5, 1, 1), ch(3, 2, 2), ch(3, 1, 3), ch(5, 1, 1)} {
			ok, err := tx.AddConversationChange("bb", c)
			if err != nil {
				return err
			}
			added = append(added, ok)
		}
		got, err := tx.ConversationChanges("bb")
		if err != nil {
			return err
		}
		var order []byte
		for _, c := range got {
			order = append(order, c.Content[0])
		}
		if !bytes.Equal(order, []byte{3, 2, 1}) {
			t.Errorf("changes in order %v, want [3 2 1] (sent, author, id)", order)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if added[0] != true || added[3] != false {
		t.Errorf("added = %v: a repeated change must be recorded once", added)
	}
}

func TestConversationCountsAndUIDs(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	chats, err := s.MailboxByRole(ctx, RoleChats)
	if err != nil {
		t.Fatal(err)
	}
	for i, conv := range []string{"c1", "c2", "c1", "c1", ""} {
		flags := Flags{}
		if i == 0 {
			flags.System = FlagSeen
		}
		if _, err := s.Append(ctx, NewMessage{MailboxID: chats.ID, Raw: rawMsg("m", string(rune('a'+i))), Flags: flags,
			Meta: Meta{ConversationID: ConversationID(conv)}}); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := s.ConversationCounts(ctx, chats.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts["c1"]; c.Messages != 3 || c.Unseen != 2 || c.LastUID != 4 || len(counts) != 2 {
		t.Errorf("counts = %+v", counts)
	}
	uids, more, err := s.ConversationUIDs(ctx, chats.ID, "c1", 0, 2)
	if err != nil || !more || len(uids) != 2 || uids[0] != 3 || uids[1] != 4 {
		t.Errorf("newest two = %v more=%v %v", uids, more, err)
	}
	uids, more, _ = s.ConversationUIDs(ctx, chats.ID, "c1", 3, 10)
	if more || len(uids) != 1 || uids[0] != 1 {
		t.Errorf("before 3 = %v more=%v", uids, more)
	}
}

func TestOutboxContentAndRead(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	sub, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b", "c"}, Raw: rawMsg("chat", "hi"),
		Content: []byte{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.OutboxContent(ctx, sub.OutboxID); err != nil || !bytes.Equal(c, []byte{1, 2, 3}) {
		t.Errorf("content = %v, %v", c, err)
	}
	if _, err := s.OutboxContent(ctx, 999); !errors.Is(err, ErrNoOutboxItem) {
		t.Errorf("unknown item: %v", err)
	}
	l := s.Subscribe()
	defer l.Close()
	var first, again bool
	err = s.Update(ctx, func(tx *Tx) (err error) {
		if first, err = tx.MarkRecipientRead(sub.OutboxID, "b"); err != nil {
			return err
		}
		again, err = tx.MarkRecipientRead(sub.OutboxID, "b")
		return err
	})
	if err != nil || !first || again {
		t.Fatalf("MarkRecipientRead = %v, %v, %v", first, again, err)
	}
	waitChange(t, l, func(c Change) bool { co, ok := c.(ChangeOutbox); return ok && co.Read && co.Rcpt == "b" })
	it, _ := s.OutboxItem(ctx, sub.OutboxID)
	if it.Rcpts[0].ReadAt.IsZero() || !it.Rcpts[1].ReadAt.IsZero() || it.Rcpts[0].State != RcptPending {
		t.Errorf("recipients after read: %+v", it.Rcpts)
	}
}

// waitChange waits (with a deadline) for a broadcast change that matches.
func waitChange(t *testing.T, l *Listener, match func(Change) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-l.Ready():
			changes, _ := l.Take()
			for _, c := range changes {
				if match(c) {
					return
				}
			}
		case <-deadline:
			t.Fatal("no matching change within 5 s")
		}
	}
}
