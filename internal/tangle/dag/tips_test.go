package dag

import (
	"fmt"
	"math"
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

// URTS: each of k tips is drawn with probability n/k, and so is every pair with n(n−1)/(k(k−1)). Chi-square
// tests with bounds of mean + 8 standard deviations (false failures far below one in a million). k = 10
// exercises the shuffle of a small pool, k = 40 the rejection sampling of a large one.
func TestSelectParentsUniform(t *testing.T) {
	for _, c := range []struct{ k, n int }{{10, 3}, {40, 4}} {
		t.Run(fmt.Sprintf("k=%d,n=%d", c.k, c.n), func(t *testing.T) {
			clk := newClock(t0 + 1000)
			s, _ := open(t, bench, WithClock(clk.Now))
			var tips []*tangle.Block
			for range c.k {
				tips = append(tips, mk(t, bench, spec{}))
			}
			put(t, s, tips...)
			const draws = 30000
			count := map[tangle.ID]int{}
			pairs := map[[2]tangle.ID]int{}
			for range draws {
				got := s.SelectParents(0, c.n)
				if len(got) != c.n {
					t.Fatalf("got %d parents", len(got))
				}
				for i, id := range got {
					count[id]++
					for _, id2 := range got[i+1:] {
						pairs[[2]tangle.ID{id, id2}]++
					}
				}
			}
			chiSquare(t, "tips", count, c.k, float64(draws*c.n)/float64(c.k))
			chiSquare(t, "pairs", pairs, c.k*(c.k-1)/2, float64(draws*c.n*(c.n-1))/float64(c.k*(c.k-1)))
		})
	}
}

func chiSquare[K comparable](t *testing.T, what string, counts map[K]int, cells int, expect float64) {
	t.Helper()
	if len(counts) != cells {
		t.Fatalf("%s: %d of %d ever drawn", what, len(counts), cells)
	}
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - expect
		chi += d * d / expect
	}
	dof := float64(cells - 1)
	if limit := dof + 8*math.Sqrt(2*dof); chi > limit {
		t.Fatalf("%s not uniform: χ² = %.1f > %.1f (%d degrees of freedom)", what, chi, limit, cells-1)
	}
}

// In a large pool, too-old tips are dropped during sampling and too-new ones skipped.
func TestSelectParentsLargePoolWindow(t *testing.T) {
	clk := newClock(t0)
	s, _ := open(t, bench, WithClock(clk.Now))
	eligible := bench.TipEligible.Milliseconds()
	var old, young, future []*tangle.Block
	for range 60 {
		old = append(old, mk(t, bench, spec{time: t0}))
	}
	for range 5 {
		young = append(young, mk(t, bench, spec{time: t0 + eligible + 10}))
	}
	for range 30 {
		future = append(future, mk(t, bench, spec{time: t0 + 2*eligible + bench.ClockSkew.Milliseconds() + 1}))
	}
	put(t, s, old...)
	put(t, s, young...)
	put(t, s, future...)
	clk.Set(t0 + 2*eligible) // old: too old; future: beyond the skew
	seen := map[tangle.ID]bool{}
	for range 200 {
		got := s.SelectParents(0, 4)
		if len(got) != 4 {
			t.Fatalf("got %d parents, want 4 of the 5 eligible", len(got))
		}
		for _, id := range got {
			if !slices.Contains(ids(young...), id) {
				t.Fatalf("selected an ineligible tip")
			}
			seen[id] = true
		}
	}
	if len(seen) != len(young) {
		t.Fatalf("only %d of %d eligible tips ever selected", len(seen), len(young))
	}
	if st := stats(t, s); st.Tips[0] != len(young) {
		t.Fatalf("Stats.Tips = %v, want %d", st.Tips, len(young))
	}
}
