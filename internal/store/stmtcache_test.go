package store

import (
	"fmt"
	"testing"
)

// TestStatementsPreparedOnce: the store's queries are prepared once, however often they run: appending
// and listing more messages prepares nothing new, and the cache stays within its bound when a caller
// runs ever new query texts.
func TestStatementsPreparedOnce(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	round := func(i int) {
		mustAppend(t, s, inbox.ID, rawMsg(fmt.Sprint("m", i), "x"))
		if _, err := s.List(ctx, inbox.ID, ListQuery{}); err != nil {
			t.Fatal(err)
		}
	}
	round(0)
	w, r := s.wst.prepared.Load(), s.rst.prepared.Load()
	if w == 0 || r == 0 {
		t.Fatalf("nothing prepared: %d write, %d read statements", w, r)
	}
	for i := 1; i <= 20; i++ {
		round(i)
	}
	if w2, r2 := s.wst.prepared.Load(), s.rst.prepared.Load(); w2 != w || r2 != r {
		t.Errorf("20 more rounds prepared %d write and %d read statements more, want none", w2-w, r2-r)
	}

	for i := range 2 * maxCachedStmts {
		err := s.Update(ctx, func(tx *Tx) error {
			var n int
			return tx.queryRow(fmt.Sprintf("SELECT %d", i)).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.wst.mu.Lock()
	n := len(s.wst.m)
	s.wst.mu.Unlock()
	if n > maxCachedStmts {
		t.Errorf("%d statements cached, bound %d", n, maxCachedStmts)
	}
}
