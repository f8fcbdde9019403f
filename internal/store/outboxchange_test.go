package store

import "testing"

// TestChangeOutboxNamesSentCopy: every ChangeOutbox of a submitted item names its sent copy (so chat
// can skip mail items without reading them, issue 16); an item enqueued without one names none.
func TestChangeOutboxNamesSentCopy(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	l := s.Subscribe()
	defer l.Close()
	sub, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b", "c"}, Raw: rawMsg("s", "x")}})
	if err != nil {
		t.Fatal(err)
	}
	named := func(c Change) bool {
		co, ok := c.(ChangeOutbox)
		return ok && co.OutboxID == sub.OutboxID && co.SentMailboxID == sub.Sent.MailboxID && co.SentUID == sub.Sent.UID
	}
	waitChange(t, l, func(c Change) bool { return named(c) && c.(ChangeOutbox).Rcpt == "c" })
	if _, err := s.UpdateRecipient(ctx, sub.OutboxID, "b", RcptUpdate{State: RcptFailed, Error: "test"}); err != nil {
		t.Fatal(err)
	}
	waitChange(t, l, func(c Change) bool { return named(c) && c.(ChangeOutbox).State == RcptFailed })
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.MarkRecipientRead(sub.OutboxID, "c"); return err })
	if err != nil {
		t.Fatal(err)
	}
	waitChange(t, l, func(c Change) bool { return named(c) && c.(ChangeOutbox).Read })

	var id OutboxID
	err = s.Update(ctx, func(tx *Tx) (err error) {
		id, _, err = tx.Enqueue(OutboxNew{From: "a", Rcpts: []string{"d"}, Raw: rawMsg("e", "y")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitChange(t, l, func(c Change) bool {
		co, ok := c.(ChangeOutbox)
		if ok && co.OutboxID == id && (co.SentMailboxID != 0 || co.SentUID != 0) {
			t.Errorf("enqueued item without a sent copy: change %+v", co)
		}
		return ok && co.OutboxID == id
	})
}
