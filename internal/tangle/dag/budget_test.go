package dag

import (
	"testing"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestBudget: over budget, unheld blocks go oldest first, whatever their route tag; held blocks (not
// yet trial-opened, or own and awaiting a receipt) stay until released; a child of an evicted parent
// stays solid.
func TestBudget(t *testing.T) {
	clk := newClock(t0)
	one := len(mk(t, bench, spec{}).Raw)
	budget := int64(10 * one)
	s, path := open(t, bench, WithClock(clk.Now), WithBudget(budget), WithHoldNew(HoldUnopened))

	// 20 blocks, issued 1 ms apart; every other one "ground" to a tag that sorts first.
	var bs []*tangle.Block
	for i := range 20 {
		tag := byte(0xff)
		if i%2 == 1 {
			tag = 0x00
		}
		bs = append(bs, mk(t, bench, spec{time: t0 + int64(i), shard: tag}))
	}
	child := mk(t, bench, spec{parents: []tangle.ID{bs[0].ID()}, time: t0 + 100})
	put(t, s, append(bs, child)...)
	st := stats(t, s)
	if st.Blocks != 21 || st.HeldBytes != st.Bytes {
		t.Fatalf("before any release: %d blocks, %d of %d bytes held; want all 21 held", st.Blocks, st.HeldBytes, st.Bytes)
	}
	// The node published bs[2] and awaits its receipt.
	if err := s.Hold(HoldOwn, bs[2].ID()); err != nil {
		t.Fatal(err)
	}
	// The inbox has handled everything.
	if err := s.Release(HoldUnopened, ids(append(bs, child)...)...); err != nil {
		t.Fatal(err)
	}
	st = stats(t, s)
	if st.Bytes > budget {
		t.Fatalf("%d bytes stored, budget %d", st.Bytes, budget)
	}
	if st.Evicted != 11 || st.HeldBytes != int64(len(bs[2].Raw)) {
		t.Fatalf("evicted %d (want 11), held %d bytes", st.Evicted, st.HeldBytes)
	}
	// Oldest first, tag ignored: bs[0..1] and bs[3..11] went, bs[2] (held) and bs[12..] stayed.
	stored := func(id tangle.ID) bool {
		_, err := s.Get(id)
		return err == nil
	}
	for i, b := range bs {
		if want := i == 2 || i >= 12; stored(b.ID()) != want {
			t.Errorf("block %d stored: %v, want %v", i, !want, want)
		}
	}
	if !stored(child.ID()) {
		t.Fatal("the newest block was evicted")
	}
	wantSolid(t, s, child, true)
	// An evicted block counts as had (Has), so catch-up does not fetch it, and is not stored again.
	wantHas(t, s, bs[0].ID(), true)
	if added := put(t, s, bs[0]); added[0] || stored(bs[0].ID()) {
		t.Fatal("an evicted block was stored again")
	}

	// The receipt came: bs[2] is the oldest unheld block and goes at the next write over budget.
	if err := s.SetHeld(HoldOwn); err != nil {
		t.Fatal(err)
	}
	put(t, s, mk(t, bench, spec{time: t0 + 200}))
	if err := s.Release(HoldUnopened, ids(bs...)...); err != nil { // a write: enforces the budget
		t.Fatal(err)
	}
	if stored(bs[2].ID()) {
		t.Fatal("a released own block was kept over budget")
	}
	if st := stats(t, s); st.Bytes > budget || st.HeldBytes > int64(one) {
		t.Fatalf("%d bytes (%d held), budget %d", st.Bytes, st.HeldBytes, budget)
	}

	// The holds and the totals survive a reopen.
	s.Close()
	s2 := openAt(t, path, bench, WithClock(clk.Now), WithBudget(budget), WithHoldNew(HoldUnopened))
	if st := stats(t, s2); st.Bytes > budget {
		t.Fatalf("after reopen: %d bytes, budget %d", st.Bytes, budget)
	}
}
