package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestSubmitFilesSentAndEnqueuesAtomically(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	sent := mustMailbox(t, s, "Sent")
	l := s.Subscribe()
	defer l.Close()
	raw := rawMsg("outgoing", "hello bob and carol")
	sub, err := s.Submit(ctx, Submission{
		OutboxNew: OutboxNew{From: "alice@tangle", Rcpts: []string{"carol@tangle", "bob@tangle", "bob@tangle"}, Raw: raw},
		Meta:      Meta{ConversationID: "c1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Duplicate || sub.Sent.MailboxID != sent.ID || sub.Sent.UID != 1 || sub.Sent.UIDValidity != sent.UIDValidity {
		t.Errorf("Submit = %+v", sub)
	}
	m, err := s.Message(ctx, sent.ID, 1)
	if err != nil || m.Meta.OutboxID != sub.OutboxID || m.Meta.ConversationID != "c1" || !m.Flags.Has(`\Seen`) {
		t.Errorf("Sent copy %+v, %v", m, err)
	}
	it, err := s.OutboxItem(ctx, sub.OutboxID)
	if err != nil {
		t.Fatal(err)
	}
	if it.From != "alice@tangle" || it.Size != int64(len(raw)) || it.SentMailboxID != sent.ID || it.SentUID != 1 || len(it.Rcpts) != 2 {
		t.Fatalf("outbox item %+v", it)
	}
	for i, want := range []string{"bob@tangle", "carol@tangle"} {
		if r := it.Rcpts[i]; r.Rcpt != want || r.State != RcptPending || r.Attempts != 0 {
			t.Errorf("recipient %d: %+v", i, r)
		}
	}
	if b, _ := s.OutboxRaw(ctx, sub.OutboxID); !bytes.Equal(b, raw) {
		t.Errorf("OutboxRaw = %q", b)
	}
	if n := countRows(t, s, "body"); n != 1 {
		t.Errorf("%d body rows: the Sent copy and the outbox item must share the bytes", n)
	}
	changes, _ := l.Take()
	if len(changes) != 3 {
		t.Errorf("changes %+v, want one add and two outbox", changes)
	}
	for _, c := range changes {
		if c.ChangeModSeq() != sub.Sent.ModSeq {
			t.Errorf("change %+v not in the submit's transaction (modseq %d)", c, sub.Sent.ModSeq)
		}
	}
}

func TestSubmitAllOrNothing(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	// The sent copy cannot be filed: nothing may be enqueued either.
	_, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b"}, Raw: rawMsg("x", "y")}, MailboxID: 999})
	if !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("Submit to a missing mailbox: %v", err)
	}
	// A later step of the same transaction fails: the Sent copy must go too.
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Submit(Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b"}, Raw: rawMsg("x", "z")}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	for _, table := range []string{"outbox", "outbox_rcpt", "message", "body"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("%d rows in %s after failed submissions", n, table)
		}
	}
	if _, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Raw: rawMsg("x", "y")}}); !errors.Is(err, ErrInvalidOutbox) {
		t.Errorf("Submit without recipients: %v", err)
	}
}

func TestSubmitTwiceIsNotDuplicated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	ctx := testCtx(t)
	sub := Submission{OutboxNew: OutboxNew{From: "a@tangle", Rcpts: []string{"b@tangle"}, Raw: rawMsg("once", "only")}}
	first, err := s.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the "250 OK" was lost; the client reconnects and sends again
	s = openTestAt(t, path)
	again, err := s.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.OutboxID != first.OutboxID || again.Sent.UID != first.Sent.UID || again.Sent.UIDValidity != first.Sent.UIDValidity {
		t.Errorf("resubmission = %+v, first %+v", again, first)
	}
	if n := countRows(t, s, "outbox"); n != 1 {
		t.Errorf("%d outbox items", n)
	}
	if st := must(s.MailboxByRole(ctx, RoleSent)); st.Messages != 1 {
		t.Errorf("Sent has %d messages", st.Messages)
	}
	due, _ := s.OutboxDue(ctx, time.Now(), 10)
	if len(due) != 1 {
		t.Errorf("due after reopen: %+v", due)
	}
}

func TestOutboxRecipientLifecycle(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := openTest(t, WithClock(clock))
	ctx := testCtx(t)
	sub, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b", "c"}, Raw: rawMsg("l", "c")}})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.OutboxID
	key := bytes.Repeat([]byte{7}, 32)
	env := []byte("sealed envelope bytes")
	block := [32]byte{1, 2, 3}

	bad := []struct {
		name string
		u    RcptUpdate
		want error
	}{
		{"pending → published", RcptUpdate{State: RcptPublished, BlockIDs: [][32]byte{block}}, ErrBadTransition},
		{"pending → delivered", RcptUpdate{State: RcptDelivered}, ErrBadTransition},
		{"seal without envelope", RcptUpdate{State: RcptSealed, EnvelopeKey: key}, ErrInvalidOutbox},
		{"seal with short key", RcptUpdate{State: RcptSealed, EnvelopeKey: key[:5], Envelope: env}, ErrInvalidOutbox},
	}
	for _, b := range bad {
		if _, err := s.UpdateRecipient(ctx, id, "b", b.u); !errors.Is(err, b.want) {
			t.Errorf("%s: %v, want %v", b.name, err, b.want)
		}
	}
	if _, err := s.UpdateRecipient(ctx, id, "nobody", RcptUpdate{State: RcptSealed}); !errors.Is(err, ErrNoOutboxItem) {
		t.Errorf("unknown recipient: %v", err)
	}

	// No peers: retry later.
	r, err := s.UpdateRecipient(ctx, id, "b", RcptUpdate{State: RcptPending, Attempt: true, Error: "no peers", NextAttempt: now.Add(time.Minute)})
	if err != nil || r.Attempts != 1 || r.LastError != "no peers" || !r.NextAttempt.Equal(now.Add(time.Minute)) {
		t.Fatalf("reschedule = %+v, %v", r, err)
	}
	due, _ := s.OutboxDue(ctx, now, 10)
	if len(due) != 1 || due[0].Rcpt != "c" {
		t.Errorf("due now: %+v, want only c", due)
	}
	due, _ = s.OutboxDue(ctx, now.Add(time.Minute), 10)
	if len(due) != 2 || due[0].Rcpt != "c" || due[1].Rcpt != "b" {
		t.Errorf("due in a minute: %+v, want c then b", due)
	}

	r, err = s.UpdateRecipient(ctx, id, "b", RcptUpdate{State: RcptSealed, EnvelopeKey: key, Envelope: env})
	if err != nil || !bytes.Equal(r.Envelope, env) || !bytes.Equal(r.EnvelopeKey, key) {
		t.Fatalf("seal = %+v, %v", r, err)
	}
	if _, err := s.UpdateRecipient(ctx, id, "b", RcptUpdate{State: RcptPublished}); !errors.Is(err, ErrInvalidOutbox) {
		t.Errorf("publish without block ids: %v", err)
	}
	r, err = s.UpdateRecipient(ctx, id, "b", RcptUpdate{State: RcptPublished, BlockIDs: [][32]byte{block}, NextAttempt: now.Add(time.Hour)})
	if err != nil || len(r.BlockIDs) != 1 || r.BlockIDs[0] != block || !bytes.Equal(r.Envelope, env) {
		t.Fatalf("publish = %+v, %v", r, err)
	}
	got, err := s.OutboxByEnvelopeKey(ctx, key)
	if err != nil || got.OutboxID != id || got.Rcpt != "b" || got.State != RcptPublished || got.BlockIDs[0] != block {
		t.Errorf("OutboxByEnvelopeKey = %+v, %v", got, err)
	}
	now = now.Add(10 * time.Second)
	r, err = s.UpdateRecipient(ctx, id, "b", RcptUpdate{State: RcptDelivered})
	if err != nil || !r.ReceiptAt.Equal(now) || !r.State.Final() {
		t.Errorf("receipt = %+v, %v", r, err)
	}
	if _, err := s.UpdateRecipient(ctx, id, "b", RcptUpdate{State: RcptPending}); !errors.Is(err, ErrBadTransition) {
		t.Errorf("delivered → pending: %v", err)
	}

	// c fails; the bounce is filed in INBOX in the same transaction.
	inbox := mustMailbox(t, s, "INBOX")
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.UpdateRecipient(id, "c", RcptUpdate{State: RcptFailed, Error: "expired without receipt"}); err != nil {
			return err
		}
		_, err := tx.Append(NewMessage{MailboxID: inbox.ID, Raw: rawMsg("Undelivered", "c did not answer")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	it, _ := s.OutboxItem(ctx, id)
	if c := it.Rcpts[1]; c.State != RcptFailed || c.LastError != "expired without receipt" {
		t.Errorf("c = %+v", c)
	}
	if due, _ := s.OutboxDue(ctx, now.Add(24*time.Hour), 10); len(due) != 0 {
		t.Errorf("final recipients still due: %+v", due)
	}
	if _, err := s.UpdateRecipient(ctx, id, "c", RcptUpdate{State: RcptDelivered}); err != nil {
		t.Errorf("late receipt after failure: %v", err)
	}
	if items, _ := s.OutboxItems(ctx); len(items) != 1 || len(items[0].Rcpts) != 2 {
		t.Errorf("OutboxItems = %+v", items)
	}

	// Deleting the item keeps the bytes of the Sent copy; expunging that copy then frees them.
	if err := s.DeleteOutboxItem(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxItem(ctx, id); !errors.Is(err, ErrNoOutboxItem) {
		t.Errorf("deleted item: %v", err)
	}
	sentBox := mustMailbox(t, s, "Sent")
	if _, err := s.Raw(ctx, sentBox.ID, sub.Sent.UID); err != nil {
		t.Errorf("Sent copy after deleting the outbox item: %v", err)
	}
	s.StoreFlags(ctx, sentBox.ID, UIDSetOf(sub.Sent.UID), FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagDeleted}})
	s.Expunge(ctx, sentBox.ID)
	if n := countRows(t, s, "body"); n != 1 { // only the bounce remains
		t.Errorf("%d bodies, want 1", n)
	}
}

// MarkSentCopy adds the keyword once every recipient passes (nil: at once), and leaves alone an item
// without a Sent copy and a copy whose mailbox is gone.
func TestMarkSentCopy(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	sent := mustMailbox(t, s, "Sent")
	sub, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b", "c"}, Raw: rawMsg("m", "x")}})
	if err != nil {
		t.Fatal(err)
	}
	has := func(kw string) bool {
		t.Helper()
		m, err := s.Message(ctx, sent.ID, sub.Sent.UID)
		if err != nil {
			t.Fatal(err)
		}
		return m.Flags.Has(kw)
	}
	onlyB := func(r OutboxRcpt) bool { return r.Rcpt == "b" }
	if err := s.MarkSentCopy(ctx, sub.OutboxID, DeliveredKeyword, onlyB); err != nil || has(DeliveredKeyword) {
		t.Errorf("one recipient of two passes: %v, keyword set %v", err, has(DeliveredKeyword))
	}
	every := func(OutboxRcpt) bool { return true }
	if err := s.MarkSentCopy(ctx, sub.OutboxID, DeliveredKeyword, every); err != nil || !has(DeliveredKeyword) {
		t.Errorf("every recipient passes: %v, keyword set %v", err, has(DeliveredKeyword))
	}
	if err := s.MarkSentCopy(ctx, sub.OutboxID, ReadKeyword, nil); err != nil || !has(ReadKeyword) {
		t.Errorf("no condition: %v, keyword set %v", err, has(ReadKeyword))
	}

	var queued OutboxID
	if err := s.Update(ctx, func(tx *Tx) (err error) {
		queued, _, err = tx.Enqueue(OutboxNew{From: "a", Rcpts: []string{"b"}, Raw: rawMsg("q", "y")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSentCopy(ctx, queued, ReadKeyword, nil); err != nil {
		t.Errorf("item without a Sent copy: %v", err)
	}

	filed, err := s.CreateMailbox(ctx, "Filed")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "a", Rcpts: []string{"b"}, Raw: rawMsg("g", "z")},
		MailboxID: filed.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, "Filed"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSentCopy(ctx, gone.OutboxID, ReadKeyword, nil); err != nil {
		t.Errorf("Sent copy's mailbox deleted: %v", err)
	}
	if err := s.MarkSentCopy(ctx, 9999, ReadKeyword, nil); !errors.Is(err, ErrNoOutboxItem) {
		t.Errorf("unknown item: %v, want ErrNoOutboxItem", err)
	}
}
