package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// queued waits until n Updates wait in the store's queue.
func queued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.qmu.Lock()
		got := len(s.queue)
		s.qmu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdWriter runs an Update that holds the writer until the returned func is called.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	holding, free := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(context.Background(), func(tx *Tx) error {
			close(holding)
			<-free
			return nil
		})
	}()
	<-holding
	return func() {
		close(free)
		if err := <-done; err != nil {
			t.Errorf("holding Update: %v", err)
		}
	}
}

// TestGroupCommit: Updates that queue behind a running one commit together in one transaction; one
// that fails rolls back alone (its savepoint), the others' messages are there, each took its own
// modseq, and the changes are broadcast in order.
func TestGroupCommit(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	l := s.Subscribe()
	defer l.Close()
	c0, w0 := s.WriteStats()

	release := holdWriter(t, s)
	errBoom := errors.New("boom")
	type result struct {
		i   int
		a   Appended
		err error
	}
	results := make(chan result, 3)
	for i := range 3 {
		go func() {
			var a Appended
			err := s.Update(ctx, func(tx *Tx) error {
				var err error
				a, err = tx.Append(NewMessage{MailboxID: inbox.ID, Raw: rawMsg(fmt.Sprintf("m%d", i), "x")})
				if err != nil {
					return err
				}
				if i == 1 {
					return errBoom // after its Append: the savepoint must undo it
				}
				return nil
			})
			results <- result{i, a, err}
		}()
		queued(t, s, i+1) // arrival order 0, 1, 2
	}
	release()
	got := map[int]result{}
	for range 3 {
		r := <-results
		got[r.i] = r
	}
	if got[0].err != nil || got[2].err != nil {
		t.Fatalf("Updates 0 and 2: %v, %v", got[0].err, got[2].err)
	}
	if !errors.Is(got[1].err, errBoom) {
		t.Fatalf("Update 1 = %v, want its own error", got[1].err)
	}
	if c, w := s.WriteStats(); c-c0 != 2 || w-w0 != 3 {
		t.Errorf("commits, writes = +%d, +%d; want +2 (the holder, then one group), +3", c-c0, w-w0)
	}
	if uids := uidsString(listUIDs(t, s, inbox.ID)); uids != fmt.Sprintf("%d,%d", got[0].a.UID, got[2].a.UID) {
		t.Errorf("INBOX UIDs %s, want the two committed messages %d,%d", uids, got[0].a.UID, got[2].a.UID)
	}
	if countRows(t, s, "body") != 2 {
		t.Errorf("%d body rows, want 2 (the failed Update's body rolled back)", countRows(t, s, "body"))
	}
	checkCounts(t, s)
	changes, overflow := l.Take()
	if overflow {
		t.Fatal("listener overflowed")
	}
	var seqs []uint64
	for _, c := range changes {
		if a, ok := c.(ChangeAdd); ok {
			seqs = append(seqs, a.ModSeq)
		}
	}
	if len(seqs) != 2 || seqs[0] >= seqs[1] {
		t.Errorf("broadcast adds with modseqs %v, want two, increasing", seqs)
	}
}

// TestGroupCommitCanceledWhileQueued: an Update whose context ends while it waits returns the
// context's error and writes nothing; the queue goes on.
func TestGroupCommitCanceledWhileQueued(t *testing.T) {
	s := openTest(t)
	inbox := mustMailbox(t, s, "INBOX")
	release := holdWriter(t, s)
	cctx, cancel := context.WithCancel(context.Background())
	ran := false
	done := make(chan error, 1)
	go func() {
		done <- s.Update(cctx, func(tx *Tx) error { ran = true; return nil })
	}()
	queued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Update = %v, want context.Canceled", err)
	}
	queued(t, s, 0)
	release()
	if ran {
		t.Error("the canceled Update's fn ran")
	}
	mustAppend(t, s, inbox.ID, rawMsg("after", "x"))
}

// TestGroupCommitConcurrent: many writers at once; every Update that returned nil is in the store,
// in the same number, with group commit sharing transactions.
func TestGroupCommitConcurrent(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	c0, w0 := s.WriteStats()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: rawMsg(fmt.Sprintf("w%d-%d", g, i), "x")})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(listUIDs(t, s, inbox.ID)); n != writers*each {
		t.Errorf("%d messages in INBOX, want %d", n, writers*each)
	}
	checkCounts(t, s)
	c, w := s.WriteStats()
	t.Logf("%d writes in %d commits", w-w0, c-c0)
	if w-w0 != writers*each {
		t.Errorf("writes = %d, want %d", w-w0, writers*each)
	}
}

// TestGroupCommitClose: Updates queued when the store closes return ErrClosed; the running one
// finishes and commits.
func TestGroupCommitClose(t *testing.T) {
	s := openTest(t)
	release := holdWriter(t, s)
	done := make(chan error, 1)
	go func() { done <- s.Update(context.Background(), func(tx *Tx) error { return nil }) }()
	queued(t, s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("queued Update after Close = %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("queued Update did not return after Close")
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitPanic: an Update whose fn panics panics in its caller's goroutine, as without group
// commit; its work is rolled back, the other Updates of its group commit, and the store stays usable.
func TestGroupCommitPanic(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	release := holdWriter(t, s)
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.Append(NewMessage{MailboxID: inbox.ID, Raw: rawMsg("panics", "x")}); err != nil {
				return err
			}
			panic("fn panic")
		})
	}()
	queued(t, s, 1)
	other := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: rawMsg("other", "x")})
		other <- err
	}()
	queued(t, s, 2)
	release()
	if v := <-panicked; v != "fn panic" {
		t.Fatalf("caller recovered %v, want the fn's panic", v)
	}
	if err := <-other; err != nil {
		t.Fatalf("the other Update of the group: %v", err)
	}
	mustAppend(t, s, inbox.ID, rawMsg("after", "x"))
	if n := len(listUIDs(t, s, inbox.ID)); n != 2 {
		t.Errorf("%d messages, want 2 (the panicking Update's rolled back)", n)
	}
	checkCounts(t, s)
}
