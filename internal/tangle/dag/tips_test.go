package dag

import (
	"slices"
	"testing"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func TestSelectParentsEmpty(t *testing.T) {
	s, _ := open(t, bench, WithClock(newClock(t0).Now))
	for _, n := range []int{-1, 0, 1, 2, 4, 8, 100} {
		if got := s.SelectParents(0, n); !slices.Equal(got, []tangle.ID{tangle.Genesis}) {
			t.Fatalf("SelectParents(empty, %d) = %v, want [Genesis]", n, got)
		}
	}
	if got := s.SelectParents(5, 4); !slices.Equal(got, []tangle.ID{tangle.Genesis}) {
		t.Fatalf("unknown shard: %v", got)
	}
}

func TestTipWithChildIsNotATip(t *testing.T) {
	clk := newClock(t0 + 1000)
	s, _ := open(t, bench, WithClock(clk.Now))
	a := mk(t, bench, spec{})
	put(t, s, a)
	if got := s.SelectParents(0, 2); !slices.Equal(got, []tangle.ID{a.ID()}) {
		t.Fatalf("tips = %v, want [a]", got)
	}
	b := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 10})
	c := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 20})
	put(t, s, b, c)
	if got := s.SelectParents(0, 8); !slices.Equal(got, sortIDs(b.ID(), c.ID())) {
		t.Fatalf("tips = %v, want b and c", got)
	}
	if st := stats(t, s); st.Tips[0] != 2 || len(st.Tips) != 1 {
		t.Fatalf("Stats.Tips = %v", st.Tips)
	}
	// An unsolid block is not a tip; once solid it is.
	ghost := tangle.ID{0xee}
	u := mk(t, bench, spec{parents: []tangle.ID{ghost}, time: t0 + 30})
	put(t, s, u)
	if got := s.SelectParents(0, 8); slices.Contains(got, u.ID()) {
		t.Fatal("unsolid block selected as a parent")
	}
	if err := s.GiveUp(ghost); err != nil {
		t.Fatal(err)
	}
	if got := s.SelectParents(0, 8); !slices.Equal(got, sortIDs(b.ID(), c.ID(), u.ID())) {
		t.Fatalf("tips = %v, want b, c, u", got)
	}
	// A child that arrives before its parent: the parent has a child when it arrives, so is no tip.
	p := mk(t, bench, spec{time: t0 + 40})
	k := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + 50})
	put(t, s, k)
	put(t, s, p)
	got := s.SelectParents(0, 8)
	if slices.Contains(got, p.ID()) || !slices.Contains(got, k.ID()) {
		t.Fatalf("tips = %v: want k, not its parent", got)
	}
}

func TestTipEligibilityWindow(t *testing.T) {
	clk := newClock(t0)
	s, path := open(t, bench, WithClock(clk.Now))
	eligible := bench.TipEligible.Milliseconds()
	old := mk(t, bench, spec{time: t0})
	young := mk(t, bench, spec{time: t0 + eligible/2})
	put(t, s, old, young)
	clk.Set(t0 + eligible) // old is exactly at the window's edge: still eligible
	if got := s.SelectParents(0, 8); !slices.Equal(got, sortIDs(old.ID(), young.ID())) {
		t.Fatalf("at the edge: %v", got)
	}
	clk.Set(t0 + eligible + 1)
	if got := s.SelectParents(0, 8); !slices.Equal(got, []tangle.ID{young.ID()}) {
		t.Fatalf("after old left the window: %v", got)
	}
	// A block stored after it has left the window never enters the pool.
	late := mk(t, bench, spec{time: t0})
	put(t, s, late)
	if got := s.SelectParents(0, 8); slices.Contains(got, late.ID()) {
		t.Fatal("block older than TipEligible selected")
	}
	// Blocks issued too far in the future (beyond the clock skew) are not selected.
	future := mk(t, bench, spec{time: clk.Now().UnixMilli() + bench.ClockSkew.Milliseconds() + 1})
	put(t, s, future)
	if got := s.SelectParents(0, 8); slices.Contains(got, future.ID()) {
		t.Fatal("block beyond the clock skew selected")
	}
	clk.Set(t0 + eligible + eligible/2 + 1)
	if got := s.SelectParents(0, 8); slices.Contains(got, young.ID()) {
		t.Fatalf("young should have left the window: %v", got)
	}
	// The pool is rebuilt at Open from the database with the same rule.
	clk.Set(t0 + eligible)
	s.Close()
	s2 := openAt(t, path, bench, WithClock(clk.Now))
	if got := s2.SelectParents(0, 8); !slices.Equal(got, sortIDs(old.ID(), young.ID(), late.ID())) {
		t.Fatalf("rebuilt pool = %v", got)
	}
}

func TestSelectParentsClamp(t *testing.T) {
	clk := newClock(t0 + 1000)
	s, _ := open(t, bench, WithClock(clk.Now))
	var all []*tangle.Block
	for range 12 {
		all = append(all, mk(t, bench, spec{}))
	}
	put(t, s, all...)
	for _, c := range []struct{ n, want int }{{-3, DefaultParents}, {0, DefaultParents}, {1, 2}, {2, 2}, {5, 5}, {8, 8}, {9, 8}, {1000, 8}} {
		got := s.SelectParents(0, c.n)
		if len(got) != c.want {
			t.Fatalf("SelectParents(n=%d) gave %d parents, want %d", c.n, len(got), c.want)
		}
		if !slices.IsSortedFunc(got, func(a, b tangle.ID) int { return compareID(a, b) }) {
			t.Fatalf("not sorted: %v", got)
		}
		if len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("duplicate parents: %v", got)
		}
		// Usable as parents of a new block.
		h := tangle.Header{Network: bench.ID, Time: t0, TTL: 60, Parents: got, PayloadType: tangle.PayloadSealed, Payload: make([]byte, 48)}
		raw, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tangle.Decode(raw); err != nil {
			t.Fatal(err)
		}
	}
	// Shards are separate pools.
	other := mk(t, bench, spec{shard: 0x80})
	sharded := bench
	sharded.ShardBits = 1
	s2, _ := open(t, sharded, WithClock(clk.Now))
	put(t, s2, all[0], other)
	if got := s2.SelectParents(1, 4); !slices.Equal(got, []tangle.ID{other.ID()}) {
		t.Fatalf("shard 1 = %v", got)
	}
	if got := s2.SelectParents(0, 4); !slices.Equal(got, []tangle.ID{all[0].ID()}) {
		t.Fatalf("shard 0 = %v", got)
	}
}

func compareID(a, b tangle.ID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// URTS: each of k tips is drawn with probability n/k; pairs too are uniform. A chi-square test with
// generous bounds (the chance of a false failure is far below 1e-6).
func TestSelectParentsUniform(t *testing.T) {
	clk := newClock(t0 + 1000)
	s, _ := open(t, bench, WithClock(clk.Now))
	const k, n, draws = 10, 3, 30000
	var tips []*tangle.Block
	for range k {
		tips = append(tips, mk(t, bench, spec{}))
	}
	put(t, s, tips...)
	count := map[tangle.ID]int{}
	pairs := map[[2]tangle.ID]int{}
	for range draws {
		got := s.SelectParents(0, n)
		if len(got) != n {
			t.Fatalf("got %d parents", len(got))
		}
		for i, id := range got {
			count[id]++
			for _, id2 := range got[i+1:] {
				pairs[[2]tangle.ID{id, id2}]++
			}
		}
	}
	if len(count) != k {
		t.Fatalf("only %d of %d tips ever drawn", len(count), k)
	}
	expect := float64(draws) * n / k
	chi := 0.0
	for _, c := range count {
		d := float64(c) - expect
		chi += d * d / expect
	}
	// 9 degrees of freedom: P(χ² > 40) ≈ 7e-6.
	if chi > 40 {
		t.Fatalf("tip counts not uniform: χ² = %.1f, counts %v", chi, count)
	}
	// 45 pairs, each with probability n(n−1)/(k(k−1)) per draw.
	expectPair := float64(draws) * n * (n - 1) / (k * (k - 1))
	chi = 0
	for _, c := range pairs {
		d := float64(c) - expectPair
		chi += d * d / expectPair
	}
	if len(pairs) != k*(k-1)/2 || chi > 100 { // 44 d.o.f.: P(χ² > 100) < 1e-6
		t.Fatalf("pairs not uniform: %d pairs, χ² = %.1f", len(pairs), chi)
	}
}
