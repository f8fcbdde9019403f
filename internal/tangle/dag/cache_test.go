package dag

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func withCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// With a tiny recent-block cache every parent lookup and duplicate check goes to the database: the
// results must be the same as with the cache.
func TestTinyCacheSameResults(t *testing.T) {
	for _, size := range []int{1, 3, recentCap} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			clk := newClock(t0 + 1000)
			s, _ := open(t, bench, WithClock(clk.Now), withCacheSize(size))
			var chain []*tangle.Block
			parent := tangle.Genesis
			for i := range 20 {
				b := mk(t, bench, spec{parents: []tangle.ID{parent}, time: t0 + int64(i)})
				chain = append(chain, b)
				parent = b.ID()
			}
			// In order, one per Put: each parent must be found stored and solid.
			for _, b := range chain[:10] {
				put(t, s, b)
			}
			// Out of order: the rest newest first, in one Put.
			rest := slices.Clone(chain[10:])
			slices.Reverse(rest)
			put(t, s, rest...)
			for _, b := range chain {
				wantSolid(t, s, b, true)
			}
			// Every block is a duplicate now, cached or not.
			for _, added := range put(t, s, chain...) {
				if added {
					t.Fatal("stored block added again")
				}
			}
			if got := s.SelectParents(0, 8); !slices.Equal(got, []tangle.ID{chain[19].ID()}) {
				t.Fatalf("tips = %v, want only the chain's head", got)
			}
			if st := stats(t, s); st.Blocks != 20 || st.Solid != 20 || st.Missing != 0 {
				t.Fatalf("Stats = %+v", st)
			}
		})
	}
}

// After a reopen the cache is empty and the filter is rebuilt from the table.
func TestReopenRebuildsFilter(t *testing.T) {
	s, path := open(t, bench)
	p := mk(t, bench, spec{})
	c := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + 1})
	put(t, s, c)
	s.Close()
	s2 := openAt(t, path, bench)
	put(t, s2, p) // must find the missing row for p (filter rebuilt) and solidify c
	wantSolid(t, s2, c, true)
	if m := missing(t, s2); len(m) != 0 {
		t.Fatalf("Missing = %v", m)
	}
	if got := put(t, s2, c); got[0] {
		t.Fatal("stored block added again after reopen")
	}
}

func TestMissingFilter(t *testing.T) {
	f := newMissingFilter(0)
	var ids []tangle.ID
	for i := range 5000 {
		ids = append(ids, mk(t, bench, spec{seq: uint64(i)}).ID())
	}
	for _, id := range ids[:2500] {
		f.add(id)
	}
	for _, id := range ids[:2500] {
		if !f.mayHave(id) {
			t.Fatal("false negative")
		}
	}
	fp := 0
	for _, id := range ids[2500:] {
		if f.mayHave(id) {
			fp++
		}
	}
	if fp > 25 { // ≈ 0 expected at this load
		t.Fatalf("%d false positives in 2500", fp)
	}
	if f.full() {
		t.Fatal("filter full after 2500 adds")
	}
	g := newMissingFilter(1 << 20)
	if len(g.bits)*64 < 32<<20 {
		t.Fatalf("filter for 1M ids has only %d bits", len(g.bits)*64)
	}
}

// The filter is rebuilt when it has taken in more ids than it suits; it must still see every row.
func TestFilterRebuild(t *testing.T) {
	s, _ := open(t, bench)
	p := mk(t, bench, spec{})
	c := mk(t, bench, spec{parents: []tangle.ID{p.ID()}, time: t0 + 1})
	put(t, s, c)
	s.wr.filter.adds = s.wr.filter.limit + 1 // next batch rebuilds
	put(t, s, mk(t, bench, spec{}))
	if s.wr.filter.full() {
		t.Fatal("filter not rebuilt")
	}
	put(t, s, p)
	wantSolid(t, s, c, true)
}

// A Put that returned survives the process being killed: a child process puts blocks and prints each
// id once Put returned; the parent kills it mid-stream, reopens the store and finds every printed id.
func TestCrashDurability(t *testing.T) {
	if os.Getenv("DAG_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "blocks.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), "DAG_CRASH_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []tangle.ID
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && len(acked) < 300 && time.Now().Before(deadline) {
		line := strings.TrimSpace(sc.Text())
		raw, err := hex.DecodeString(line)
		if err != nil || len(raw) != tangle.IDSize {
			continue // test framework output
		}
		acked = append(acked, tangle.ID(raw))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d blocks", len(acked))
	}
	s := openAt(t, path, bench)
	for _, id := range acked {
		wantHas(t, s, id, true)
	}
	st := stats(t, s)
	if st.Blocks < len(acked) {
		t.Fatalf("Stats.Blocks = %d < %d acknowledged", st.Blocks, len(acked))
	}
	t.Logf("%d acknowledged blocks present after SIGKILL; %d stored", len(acked), st.Blocks)
}

func crashChild() {
	path := os.Getenv("DAG_CRASH_CHILD")
	s, err := Open(path, bench)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	parent := tangle.Genesis
	for i := 0; ; i++ {
		b := mkChild(parent, i)
		if _, err := s.Put(context.Background(), b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(w, hex.EncodeToString(idBytes(b.ID())))
		w.Flush()
		parent = b.ID()
	}
}

func mkChild(parent tangle.ID, i int) *tangle.Block {
	h := tangle.Header{Network: bench.ID, Time: t0 + int64(i), TTL: 3600, Parents: []tangle.ID{parent},
		PayloadType: tangle.PayloadSealed, Payload: make([]byte, 512)}
	raw, err := h.Encode()
	if err != nil {
		panic(err)
	}
	b, err := tangle.Decode(raw)
	if err != nil {
		panic(err)
	}
	return b
}

func idBytes(id tangle.ID) []byte { return id[:] }
