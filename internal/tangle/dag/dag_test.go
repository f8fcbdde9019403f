package dag

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

var bench = tangle.BenchNet

func TestPutGetHas(t *testing.T) {
	s, _ := open(t, bench)
	a := mk(t, bench, spec{})
	b := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 1000})
	wantHas(t, s, a.ID(), false)
	if _, err := s.Get(a.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}
	if got := put(t, s, a, b); !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("added = %v", got)
	}
	for _, want := range []*tangle.Block{a, b} {
		wantHas(t, s, want.ID(), true)
		got, err := s.Get(want.ID())
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !bytes.Equal(got.Raw, want.Raw) || got.ID() != want.ID() || got.Time != want.Time {
			t.Fatalf("Get returned a different block")
		}
		if &got.Raw[0] == &want.Raw[0] {
			t.Fatalf("Get returned the caller's buffer, want a fresh decode")
		}
	}
	kids, err := s.Children(a.ID())
	if err != nil || !slices.Equal(kids, []tangle.ID{b.ID()}) {
		t.Fatalf("Children(a) = %v, %v", kids, err)
	}
	if kids, _ := s.Children(tangle.Genesis); len(kids) != 0 {
		t.Fatalf("Children(Genesis) = %v, want none", kids)
	}
	wantSolid(t, s, a, true)
	wantSolid(t, s, b, true)
	st := stats(t, s)
	if st.Blocks != 2 || st.Solid != 2 || st.Unsolid != 0 || st.Missing != 0 || st.Bytes != int64(len(a.Raw)+len(b.Raw)) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestPutRejectsNonBlocks(t *testing.T) {
	s, _ := open(t, bench)
	if _, err := s.Put(ctxT(t), nil); err == nil {
		t.Fatal("Put(nil) succeeded")
	}
	if _, err := s.Put(ctxT(t), &tangle.Block{}); err == nil {
		t.Fatal("Put(empty block) succeeded")
	}
	if _, err := s.Put(ctxT(t), &tangle.Block{Raw: []byte{1}, Parents: []tangle.ID{{1}}}); err == nil {
		t.Fatal("Put(block without an id) succeeded")
	}
	if added, err := s.Put(ctxT(t)); err != nil || len(added) != 0 {
		t.Fatalf("Put() = %v, %v", added, err)
	}
}

func TestDuplicatePuts(t *testing.T) {
	s, _ := open(t, bench)
	a := mk(t, bench, spec{})
	b := mk(t, bench, spec{})
	if got := put(t, s, a, a, b, a); !slices.Equal(got, []bool{true, false, true, false}) {
		t.Fatalf("added = %v, want [true false true false]", got)
	}
	if got := put(t, s, b, a); !slices.Equal(got, []bool{false, false}) {
		t.Fatalf("second Put: added = %v, want all false", got)
	}
	// A re-decoded copy (different *Block, same bytes) is the same block.
	cp, _ := tangle.Decode(bytes.Clone(a.Raw))
	if got := put(t, s, cp); got[0] {
		t.Fatal("copy of a stored block was added")
	}
	if st := stats(t, s); st.Blocks != 2 {
		t.Fatalf("Blocks = %d, want 2", st.Blocks)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	s, path := open(t, bench)
	ghost := tangle.ID{9}
	a := mk(t, bench, spec{})
	b := mk(t, bench, spec{parents: []tangle.ID{a.ID(), ghost}, time: t0 + 1})
	put(t, s, a, b)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Put(ctxT(t), mk(t, bench, spec{})); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s2 := openAt(t, path, bench)
	for _, x := range []*tangle.Block{a, b} {
		got, err := s2.Get(x.ID())
		if err != nil || !bytes.Equal(got.Raw, x.Raw) {
			t.Fatalf("after reopen Get(%s) = %v", x.ID().Short(), err)
		}
	}
	wantSolid(t, s2, a, true)
	wantSolid(t, s2, b, false)
	if m := missing(t, s2); !slices.Equal(m, []tangle.ID{ghost}) {
		t.Fatalf("Missing after reopen = %v", m)
	}
	st := stats(t, s2)
	if st.Blocks != 2 || st.Solid != 1 || st.Unsolid != 1 || st.Missing != 1 {
		t.Fatalf("Stats after reopen = %+v", st)
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, _ := open(t, bench)
	const workers, per = 16, 40
	blocks := make([]*tangle.Block, workers*per)
	for i := range blocks {
		blocks[i] = mk(t, bench, spec{})
	}
	// Every block is put by two workers: exactly one of them must see added = true.
	var mu sync.Mutex
	addedBy := map[tangle.ID]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			mine := append(slices.Clone(blocks[w*per:(w+1)*per]), blocks[((w+1)%workers)*per:((w+1)%workers+1)*per]...)
			for i := 0; i < len(mine); i += 3 {
				chunk := mine[i:min(i+3, len(mine))]
				added, err := s.Put(context.Background(), chunk...)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for j, ok := range added {
					if ok {
						addedBy[chunk[j].ID()]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	for _, b := range blocks {
		if addedBy[b.ID()] != 1 {
			t.Fatalf("block %s added %d times, want 1", b.ID().Short(), addedBy[b.ID()])
		}
	}
	if st := stats(t, s); st.Blocks != len(blocks) || st.Solid != len(blocks) {
		t.Fatalf("Stats = %+v, want %d solid blocks", st, len(blocks))
	}
}

func TestContextCancelled(t *testing.T) {
	s, _ := open(t, bench)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, mk(t, bench, spec{})); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
}

func TestSolidityChildBeforeParent(t *testing.T) {
	s, _ := open(t, bench)
	a := mk(t, bench, spec{})
	b := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 1})
	c := mk(t, bench, spec{parents: []tangle.ID{a.ID(), b.ID()}, time: t0 + 2})
	put(t, s, c)
	wantSolid(t, s, c, false)
	if m := missing(t, s); !slices.Equal(m, sortIDs(a.ID(), b.ID())) {
		t.Fatalf("Missing = %v", m)
	}
	put(t, s, b)
	wantSolid(t, s, b, false)
	wantSolid(t, s, c, false)
	if m := missing(t, s); !slices.Equal(m, []tangle.ID{a.ID()}) {
		t.Fatalf("Missing = %v, want [a]", m)
	}
	put(t, s, a)
	for _, x := range []*tangle.Block{a, b, c} {
		wantSolid(t, s, x, true)
	}
	if m := missing(t, s); len(m) != 0 {
		t.Fatalf("Missing = %v, want none", m)
	}
	if st := stats(t, s); st.Solid != 3 || st.Unsolid != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func sortIDs(ids ...tangle.ID) []tangle.ID {
	slices.SortFunc(ids, func(a, b tangle.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// A long chain stored newest first becomes solid at once when its root arrives: the propagation is
// iterative and runs in the root's transaction.
func TestSolidityDeepChainReversed(t *testing.T) {
	s, _ := open(t, bench)
	const depth = 3000
	chain := make([]*tangle.Block, depth)
	parent := tangle.Genesis
	for i := range chain {
		chain[i] = mk(t, bench, spec{parents: []tangle.ID{parent}, time: t0 + int64(i)})
		parent = chain[i].ID()
	}
	rev := slices.Clone(chain[1:])
	slices.Reverse(rev)
	put(t, s, rev...)
	wantSolid(t, s, chain[depth-1], false)
	if m := missing(t, s); !slices.Equal(m, []tangle.ID{chain[0].ID()}) {
		t.Fatalf("Missing = %d ids, want the root", len(m))
	}
	put(t, s, chain[0])
	for _, b := range []*tangle.Block{chain[0], chain[1], chain[depth/2], chain[depth-1]} {
		wantSolid(t, s, b, true)
	}
	if st := stats(t, s); st.Solid != depth {
		t.Fatalf("Solid = %d, want %d", st.Solid, depth)
	}
	// Only the newest block is a tip (clock at the chain's end).
}

// A block whose parent and child are in the same Put, child first.
func TestSolidityWithinOneBatch(t *testing.T) {
	s, _ := open(t, bench)
	a := mk(t, bench, spec{})
	b := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 1})
	put(t, s, b, a)
	wantSolid(t, s, b, true)
	if m := missing(t, s); len(m) != 0 {
		t.Fatalf("Missing = %v", m)
	}
}

func TestGiveUp(t *testing.T) {
	s, _ := open(t, bench)
	ghost1, ghost2 := tangle.ID{1}, tangle.ID{2}
	a := mk(t, bench, spec{parents: []tangle.ID{ghost1, ghost2}})
	b := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 1})
	put(t, s, a, b)
	wantSolid(t, s, b, false)
	if err := s.GiveUp(ghost1); err != nil {
		t.Fatalf("GiveUp: %v", err)
	}
	wantSolid(t, s, a, false)
	if m := missing(t, s); !slices.Equal(m, []tangle.ID{ghost2}) {
		t.Fatalf("Missing = %v, want [ghost2]", m)
	}
	if err := s.GiveUp(ghost2); err != nil {
		t.Fatalf("GiveUp: %v", err)
	}
	wantSolid(t, s, a, true)
	wantSolid(t, s, b, true)
	if m := missing(t, s); len(m) != 0 {
		t.Fatalf("Missing = %v, want none", m)
	}
	// Giving up a stored block, Genesis, or an id again changes nothing.
	for _, id := range []tangle.ID{a.ID(), tangle.Genesis, ghost1} {
		if err := s.GiveUp(id); err != nil {
			t.Fatalf("GiveUp: %v", err)
		}
	}
	wantHas(t, s, a.ID(), true)
	// A child of an id given up before anyone referenced it is solid at once.
	ghost3 := tangle.ID{3}
	if err := s.GiveUp(ghost3); err != nil {
		t.Fatal(err)
	}
	c := mk(t, bench, spec{parents: []tangle.ID{ghost3}})
	put(t, s, c)
	wantSolid(t, s, c, true)
}

// A given-up parent that arrives later is stored; its children stay solid.
func TestGiveUpThenArrives(t *testing.T) {
	s, _ := open(t, bench)
	ghost := tangle.ID{7}
	p := mk(t, bench, spec{parents: []tangle.ID{ghost}})
	c := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + 1})
	put(t, s, c)
	if err := s.GiveUp(p.ID()); err != nil {
		t.Fatal(err)
	}
	wantSolid(t, s, c, true)
	if got := put(t, s, p); !got[0] {
		t.Fatal("given-up parent not added")
	}
	wantSolid(t, s, p, false) // its own parent is missing
	wantSolid(t, s, c, true)
	if m := missing(t, s); !slices.Equal(m, []tangle.ID{ghost}) {
		t.Fatalf("Missing = %v, want [ghost]", m)
	}
}

func TestParentAgeRejectAtPut(t *testing.T) {
	var mu sync.Mutex
	var rejected []tangle.ID
	s, _ := open(t, bench, WithRejectHandler(func(id tangle.ID, err error) {
		if !errors.Is(err, tangle.ErrParentAge) {
			t.Errorf("reject error %v does not wrap ErrParentAge", err)
		}
		mu.Lock()
		rejected = append(rejected, id)
		mu.Unlock()
	}))
	p := mk(t, bench, spec{})
	tooNew := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + bench.MaxParentAge.Milliseconds() + 1})
	edge := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + bench.MaxParentAge.Milliseconds()})
	tooOld := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 - bench.ClockSkew.Milliseconds() - 1})
	put(t, s, p)
	res, err := s.PutResults(ctxT(t), tooNew, edge, tooOld)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Added || !errors.Is(res[0].Err, tangle.ErrParentAge) {
		t.Fatalf("tooNew: %+v", res[0])
	}
	if !res[1].Added || res[1].Err != nil {
		t.Fatalf("edge of the window: %+v", res[1])
	}
	if res[2].Added || !errors.Is(res[2].Err, tangle.ErrParentAge) {
		t.Fatalf("tooOld: %+v", res[2])
	}
	wantHas(t, s, tooNew.ID(), false)
	wantHas(t, s, tooOld.ID(), false)
	mu.Lock()
	got := slices.Clone(rejected)
	mu.Unlock()
	if !slices.Equal(got, []tangle.ID{tooNew.ID(), tooOld.ID()}) {
		t.Fatalf("reject handler saw %v", got)
	}
	// A rejected id stays refused.
	res, _ = s.PutResults(ctxT(t), tooNew)
	if res[0].Added || !errors.Is(res[0].Err, tangle.ErrParentAge) {
		t.Fatalf("second Put of a rejected block: %+v", res[0])
	}
}

func TestParentAgeRejectLate(t *testing.T) {
	rejected := make(chan tangle.ID, 4)
	s, _ := open(t, bench, WithRejectHandler(func(id tangle.ID, err error) { rejected <- id }))
	p := mk(t, bench, spec{})
	bad := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + bench.MaxParentAge.Milliseconds() + 1})
	good := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + 1000})
	grandchild := mk(t, bench, spec{parents: []tangle.ID{bad.ID()}, time: bad.Time + 1})
	put(t, s, bad, good, grandchild)
	wantSolid(t, s, grandchild, false)
	res, err := s.PutResults(ctxT(t), p)
	if err != nil || !res[0].Added {
		t.Fatalf("parent: %+v, %v", res, err)
	}
	select {
	case id := <-rejected:
		if id != bad.ID() {
			t.Fatalf("rejected %s, want the bad child", id.Short())
		}
	default:
		t.Fatal("reject handler not called before Put returned")
	}
	wantHas(t, s, bad.ID(), false)
	wantHas(t, s, good.ID(), true)
	wantSolid(t, s, good, true)
	// The deleted block counts as given up for its own children.
	wantSolid(t, s, grandchild, true)
	if m := missing(t, s); len(m) != 0 {
		t.Fatalf("Missing = %v", m)
	}
	if st := stats(t, s); st.Blocks != 3 || st.Solid != 3 {
		t.Fatalf("Stats = %+v", st)
	}
	if added := put(t, s, bad); added[0] {
		t.Fatal("rejected block stored again")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	s, path := open(t, bench)
	a := mk(t, bench, spec{})
	put(t, s, a)
	s.Close()
	for range 3 {
		s2, err := Open(path, bench)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		wantHas(t, s2, a.ID(), true)
		s2.Close()
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, v int
	if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_version`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() || v != SchemaVersion() || v < 1 {
		t.Fatalf("schema_version: %d rows, max %d; want %d", n, v, SchemaVersion())
	}
	// A store from a newer program is refused, untouched.
	if _, err := db.Exec(`INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'future.sql', 0)`, v+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, bench); !errors.Is(err, ErrSchema) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchema", err)
	}
}

func TestMigrationSet(t *testing.T) {
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "0001_init.sql" {
		t.Fatalf("migrations = %v", ms)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	// A file that is not a database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 300), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, bench); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(junk) = %v, want ErrCorrupt", err)
	} else {
		t.Logf("junk file: %v", err)
	}
	// A database whose header is damaged.
	s, path := open(t, bench)
	put(t, s, mk(t, bench, spec{}))
	s.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage garbage!"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(path, bench); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(damaged) = %v, want ErrCorrupt", err)
	}
	// A missing directory.
	_, err = Open(filepath.Join(dir, "no", "such", "blocks.db"), bench)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open in a missing directory: %v, want an error wrapping ErrNotExist", err)
	}
	t.Logf("missing directory: %v", err)
	// A directory in place of the file.
	if _, err := Open(dir, bench); err == nil {
		t.Fatal("Open(directory) succeeded")
	}
	// Another network's store.
	s2, path2 := open(t, bench)
	s2.Close()
	if _, err := Open(path2, tangle.DevNet); !errors.Is(err, ErrSchema) {
		t.Fatalf("Open with another network: %v, want ErrSchema", err)
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?#%", "blocks 1.db")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path, bench)
	put(t, s, mk(t, bench, spec{}))
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("store not at the given path: %v", err)
	}
}

func TestBatchWindowOptions(t *testing.T) {
	for _, w := range []time.Duration{0, 50 * time.Millisecond} {
		s, _ := open(t, bench, WithBatchWindow(w), WithMaxBatch(3))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := s.Put(context.Background(), mk(t, bench, spec{}), mk(t, bench, spec{})); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if st := stats(t, s); st.Blocks != 16 {
			t.Fatalf("window %v: Blocks = %d", w, st.Blocks)
		}
	}
}

// A database error in a batch rolls the whole transaction back: nothing of it is stored, every block
// of it can be put again, and the in-memory state (cache, tips, counters) shows none of it.
func TestFailedBatchRollsBack(t *testing.T) {
	clk := newClock(t0 + 1000)
	s, _ := open(t, bench, WithClock(clk.Now))
	a := mk(t, bench, spec{})
	c := mk(t, bench, spec{parents: []tangle.ID{a.ID()}, time: t0 + 1})
	bad := mk(t, bench, spec{})
	boom := errors.New("boom")
	s.wr.failPut = func(b *tangle.Block) error {
		if b.ID() == bad.ID() {
			return boom
		}
		return nil
	}
	if _, err := s.Put(ctxT(t), a, c, bad); !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want the injected error", err)
	}
	for _, b := range []*tangle.Block{a, c, bad} {
		wantHas(t, s, b.ID(), false)
	}
	if st := stats(t, s); st.Blocks != 0 || st.Missing != 0 || len(st.Tips) != 0 {
		t.Fatalf("Stats after rollback = %+v", st)
	}
	if got := s.SelectParents(0, 4); !slices.Equal(got, []tangle.ID{tangle.Genesis}) {
		t.Fatalf("tips after rollback = %v", got)
	}
	s.wr.failPut = nil
	if got := put(t, s, c, a); !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("Put after rollback: added = %v", got)
	}
	wantSolid(t, s, c, true)
}
