package dag

import (
	"slices"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func TestIDsSincePaging(t *testing.T) {
	sharded := bench
	sharded.ShardBits = 2
	clk := newClock(t0)
	s, _ := open(t, sharded, WithClock(clk.Now))
	// Blocks in shards 0..3 (tag's top two bits), several per millisecond so ids break ties.
	want := map[uint32][]Cursor{}
	var all []*tangle.Block
	for i := range 60 {
		shard := uint32(i % 4)
		b := mk(t, sharded, spec{time: t0 + int64(i/8)*10, shard: byte(shard << 6), ttl: 3600})
		all = append(all, b)
		want[shard] = append(want[shard], Cursor{Time: b.Time, ID: b.ID()})
	}
	slices.Reverse(all) // insertion order must not matter
	put(t, s, all...)
	for shard := range uint32(4) {
		w := want[shard]
		slices.SortFunc(w, func(a, b Cursor) int {
			if a.Less(b) {
				return -1
			}
			if b.Less(a) {
				return 1
			}
			return 0
		})
		// Page through with a small limit.
		var got []Cursor
		var after Cursor
		for {
			page, err := s.IDsSince(shard, time.UnixMilli(0), after, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 4 {
				t.Fatalf("page of %d > limit", len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, w) {
			t.Fatalf("shard %d: paged %d cursors, want %d in (time, id) order", shard, len(got), len(w))
		}
		// since: only blocks issued at or after it.
		since := w[len(w)/2].Time
		got, err := s.IDsSince(shard, time.UnixMilli(since), Cursor{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var wantSince []Cursor
		for _, c := range w {
			if c.Time >= since {
				wantSince = append(wantSince, c)
			}
		}
		if !slices.Equal(got, wantSince) {
			t.Fatalf("shard %d since %d: %d cursors, want %d", shard, since, len(got), len(wantSince))
		}
		// A cursor before since does not widen the result; a cursor inside it narrows.
		got, _ = s.IDsSince(shard, time.UnixMilli(since), Cursor{Time: 1}, 1000)
		if !slices.Equal(got, wantSince) {
			t.Fatal("cursor before since changed the result")
		}
		got, _ = s.IDsSince(shard, time.UnixMilli(since), wantSince[0], 1000)
		if !slices.Equal(got, wantSince[1:]) {
			t.Fatal("cursor at the first result did not skip it")
		}
	}
	if got, _ := s.IDsSince(0, time.UnixMilli(0), Cursor{}, 0); len(got) != 0 {
		t.Fatal("limit 0 returned ids")
	}
	// Expired blocks (at the store's clock) are not listed, even before Prune.
	clk.Set(t0 + 3600*1000 + 10)
	got, _ := s.IDsSince(0, time.UnixMilli(0), Cursor{}, 1000)
	for _, c := range got {
		if c.Time+3600*1000 <= t0+3600*1000+10 {
			t.Fatalf("expired block %v listed", c)
		}
	}
	if len(got) == 0 || len(got) == len(want[0]) {
		t.Fatalf("after expiry of the oldest: %d of %d listed", len(got), len(want[0]))
	}
}

func TestPrune(t *testing.T) {
	clk := newClock(t0)
	s, _ := open(t, bench, WithClock(clk.Now))
	ghost := tangle.ID{0x42}
	// short lives 60 s, long 1 h.
	short := mk(t, bench, spec{ttl: 60})
	long := mk(t, bench, spec{parents: []tangle.ID{short.ID()}, time: t0 + 1, ttl: 3600})
	shortOrphan := mk(t, bench, spec{parents: []tangle.ID{ghost}, ttl: 60})    // only referrer of ghost
	unsolidParent := mk(t, bench, spec{parents: []tangle.ID{{0x43}}, ttl: 60}) // missing parent
	waiting := mk(t, bench, spec{parents: []tangle.ID{unsolidParent.ID()}, time: t0 + 2, ttl: 3600})
	put(t, s, short, long, shortOrphan, unsolidParent, waiting)
	wantSolid(t, s, long, true)
	wantSolid(t, s, waiting, false)
	if m := missing(t, s); !slices.Equal(m, []tangle.ID{ghost, {0x43}}) {
		t.Fatalf("Missing = %v", m)
	}
	before := stats(t, s)

	if n, err := s.Prune(time.UnixMilli(t0 + 60_000 - 1)); err != nil || n != 0 {
		t.Fatalf("Prune before expiry = %d, %v", n, err)
	}
	n, err := s.Prune(time.UnixMilli(t0 + 60_000)) // expires = time + TTL ≤ now
	if err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want 3", n, err)
	}
	for _, b := range []*tangle.Block{short, shortOrphan, unsolidParent} {
		wantHas(t, s, b.ID(), false)
	}
	wantHas(t, s, long.ID(), true)
	wantSolid(t, s, long, true) // parent pruned: stays solid
	// A pruned parent counts as given up: the child that waited on it is solid now.
	wantSolid(t, s, waiting, true)
	// ghost was referenced only by a pruned block, 0x43 only by a pruned one too.
	if m := missing(t, s); len(m) != 0 {
		t.Fatalf("Missing after prune = %v", m)
	}
	if kids, _ := s.Children(ghost); len(kids) != 0 {
		t.Fatalf("edges of pruned blocks remain: %v", kids)
	}
	if kids, _ := s.Children(short.ID()); !slices.Equal(kids, []tangle.ID{long.ID()}) {
		t.Fatalf("Children(pruned parent) = %v, want [long]", kids)
	}
	st := stats(t, s)
	wantBytes := before.Bytes - int64(len(short.Raw)+len(shortOrphan.Raw)+len(unsolidParent.Raw))
	if st.Blocks != 2 || st.Solid != 2 || st.Unsolid != 0 || st.Bytes != wantBytes {
		t.Fatalf("Stats after prune = %+v", st)
	}
	// Pruning everything leaves an empty store and no missing rows behind.
	if n, err := s.Prune(time.UnixMilli(t0 + 3600_000 + 2)); err != nil || n != 2 {
		t.Fatalf("second Prune = %d, %v", n, err)
	}
	st = stats(t, s)
	if st.Blocks != 0 || st.Solid != 0 || st.Bytes != 0 || st.Missing != 0 {
		t.Fatalf("Stats after pruning all = %+v", st)
	}
	var rows int
	if err := s.r.QueryRow(`SELECT (SELECT COUNT(*) FROM edges) + (SELECT COUNT(*) FROM missing)`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d edge or missing rows left", rows)
	}
}

// Prune deletes more than one chunk.
func TestPruneManyChunks(t *testing.T) {
	s, _ := open(t, bench)
	var bs []*tangle.Block
	for range pruneChunk + 10 {
		bs = append(bs, mk(t, bench, spec{ttl: 60}))
	}
	put(t, s, bs...)
	n, err := s.Prune(time.UnixMilli(t0 + 61_000))
	if err != nil || n != len(bs) {
		t.Fatalf("Prune = %d, %v; want %d", n, err, len(bs))
	}
	if st := stats(t, s); st.Blocks != 0 {
		t.Fatalf("Blocks = %d", st.Blocks)
	}
}

// A rejected id is refused until it expires, then forgotten by Prune.
func TestPruneRejected(t *testing.T) {
	s, _ := open(t, bench)
	p := mk(t, bench, spec{})
	bad := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + bench.MaxParentAge.Milliseconds() + 1, ttl: 60})
	put(t, s, p)
	if added := put(t, s, bad); added[0] {
		t.Fatal("bad block added")
	}
	if _, err := s.Prune(bad.ExpiresAt()); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM missing`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d missing rows left after the rejected block expired", rows)
	}
}
