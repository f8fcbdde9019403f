package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// collectErr takes changes from l until it has n or the deadline passes. It may run on any goroutine.
func collectErr(l *Listener, n int, deadline time.Duration) ([]Change, error) {
	var got []Change
	timeout := time.After(deadline)
	for len(got) < n {
		select {
		case <-l.Ready():
			cs, overflow := l.Take()
			if overflow {
				return got, fmt.Errorf("unexpected overflow after %d changes", len(got))
			}
			got = append(got, cs...)
		case <-timeout:
			return got, fmt.Errorf("got %d changes before the deadline, want %d", len(got), n)
		}
	}
	return got, nil
}

func collect(t *testing.T, l *Listener, n int, deadline time.Duration) []Change {
	t.Helper()
	got, err := collectErr(l, n, deadline)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestChangesInCommitOrder(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	arch := mustMailbox(t, s, "Archive")
	l := s.Subscribe()
	defer l.Close()

	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			mbox := inbox.ID
			if w%2 == 1 {
				mbox = arch.ID
			}
			for i := 0; i < each; i++ {
				raw := rawMsg("w"+itoa(int64(w)), itoa(int64(i)))
				if _, err := s.Append(ctx, NewMessage{MailboxID: mbox, Raw: raw}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	var got []Change
	var collectErr2 error
	done := make(chan struct{})
	go func() { defer close(done); got, collectErr2 = collectErr(l, writers*each, 30*time.Second) }()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	<-done
	if collectErr2 != nil {
		t.Fatal(collectErr2)
	}

	var lastModSeq uint64
	lastUID := map[MailboxID]UID{}
	for _, c := range got {
		a, ok := c.(ChangeAdd)
		if !ok {
			t.Fatalf("unexpected change %T", c)
		}
		if a.ModSeq <= lastModSeq {
			t.Errorf("modseq %d after %d: not in commit order", a.ModSeq, lastModSeq)
		}
		if a.UID <= lastUID[a.MailboxID] {
			t.Errorf("mailbox %d: UID %d after %d", a.MailboxID, a.UID, lastUID[a.MailboxID])
		}
		lastModSeq, lastUID[a.MailboxID] = a.ModSeq, a.UID
	}
	if st, _ := s.Account(ctx); st.LastModSeq != lastModSeq {
		t.Errorf("last change modseq %d, account LastModSeq %d", lastModSeq, st.LastModSeq)
	}
}

func TestSlowListenerOverflowsInsteadOfBlocking(t *testing.T) {
	s := openTest(t, WithChangeLimit(10))
	inbox := mustMailbox(t, s, "INBOX")
	slow := s.Subscribe() // never takes until the writes are done
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 25; i++ {
		if _, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: rawMsg("o", itoa(int64(i)))}); err != nil {
			t.Fatalf("writer blocked or failed at %d: %v", i, err)
		}
	}
	select {
	case <-slow.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("slow listener was never signalled")
	}
	changes, overflow := slow.Take()
	if !overflow || changes != nil {
		t.Fatalf("Take = %d changes, overflow %v; want the overflow signal", len(changes), overflow)
	}
	// Resync: take a snapshot, then changes above it arrive normally again.
	l, _ := s.List(ctx, inbox.ID, ListQuery{})
	if len(l.Messages) != 25 {
		t.Fatalf("snapshot has %d messages", len(l.Messages))
	}
	a := mustAppend(t, s, inbox.ID, rawMsg("after", "resync"))
	got := collect(t, slow, 1, 10*time.Second)
	if c := got[0].(ChangeAdd); c.UID != a.UID || c.ModSeq <= l.ModSeq {
		t.Errorf("after resync got %+v (snapshot modseq %d)", c, l.ModSeq)
	}
}

func TestSnapshotRuleDropsChangesAlreadyInSnapshot(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	l := s.Subscribe()
	defer l.Close()
	mustAppend(t, s, inbox.ID, rawMsg("in", "snapshot"))
	snap, _ := s.List(ctx, inbox.ID, ListQuery{})
	mustAppend(t, s, inbox.ID, rawMsg("after", "snapshot"))
	var fresh []UID
	for _, c := range collect(t, l, 2, 10*time.Second) {
		if c.ChangeModSeq() > snap.ModSeq {
			fresh = append(fresh, c.(ChangeAdd).UID)
		}
	}
	if uidsString(fresh) != "2" || len(snap.Messages) != 1 {
		t.Errorf("changes above the snapshot: %v (snapshot %d messages)", fresh, len(snap.Messages))
	}
}

func TestRolledBackUpdateBroadcastsNothing(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	l := s.Subscribe()
	defer l.Close()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Append(NewMessage{MailboxID: inbox.ID, Raw: rawMsg("x", "y")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}
	select {
	case <-l.Ready():
		c, _ := l.Take()
		t.Errorf("rolled-back transaction broadcast %v", c)
	default:
	}
	if m := mustMailbox(t, s, "INBOX"); m.Messages != 0 || m.UIDNext != 1 {
		t.Errorf("rolled-back append left %+v", m)
	}
	if n := countRows(t, s, "body"); n != 0 {
		t.Errorf("rolled-back append left %d bodies", n)
	}
}
