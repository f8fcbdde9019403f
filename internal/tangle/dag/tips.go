package dag

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

type tipEntry struct {
	id    tangle.ID
	shard uint32
	time  int64 // issuing time, Unix ms
}

type tipOp struct {
	add bool
	tipEntry
}

// tipPool holds, per shard, the stored solid blocks without stored children. Entries older than the
// eligibility window are dropped lazily (on selection, and when a shard's pool has doubled since its
// last sweep), so the pool stays about as large as the blocks of the last TipEligible.
type tipPool struct {
	mu     sync.Mutex
	shards map[uint32]*tipSet
}

// tipSet supports O(1) add, remove and uniform sampling: a dense slice plus an index.
type tipSet struct {
	tips  []tipEntry
	pos   map[tangle.ID]int
	sweep int // size after the last sweep
}

func (p *tipPool) set(shard uint32) *tipSet {
	if p.shards == nil {
		p.shards = map[uint32]*tipSet{}
	}
	t := p.shards[shard]
	if t == nil {
		t = &tipSet{pos: map[tangle.ID]int{}}
		p.shards[shard] = t
	}
	return t
}

// addLocked adds a tip unless it is already too old to be eligible at nowMs.
func (p *tipPool) addLocked(e tipEntry, oldest int64) {
	if e.time < oldest {
		return
	}
	t := p.set(e.shard)
	if _, ok := t.pos[e.id]; ok {
		return
	}
	t.pos[e.id] = len(t.tips)
	t.tips = append(t.tips, e)
	if len(t.tips) >= 2*max(t.sweep, 512) {
		t.evict(oldest)
	}
}

func (p *tipPool) delLocked(e tipEntry) {
	t := p.shards[e.shard]
	if t == nil {
		return
	}
	t.remove(e.id)
}

func (t *tipSet) remove(id tangle.ID) {
	i, ok := t.pos[id]
	if !ok {
		return
	}
	last := len(t.tips) - 1
	if i != last {
		t.tips[i] = t.tips[last]
		t.pos[t.tips[i].id] = i
	}
	t.tips = t.tips[:last]
	delete(t.pos, id)
}

// evict drops the tips issued before oldest: they can never become eligible again while the clock
// moves forward.
func (t *tipSet) evict(oldest int64) {
	for i := 0; i < len(t.tips); {
		if t.tips[i].time < oldest {
			t.remove(t.tips[i].id) // moves the last entry to i: look at i again
			continue
		}
		i++
	}
	t.sweep = len(t.tips)
}

// window is the eligibility window at nowMs: issued in [now − TipEligible, now + ClockSkew]. The upper
// bound keeps every selected parent within the parent-age rule of a child issued now.
func (s *Store) window(nowMs int64) (oldest, newest int64) {
	return nowMs - s.params.TipEligible.Milliseconds(), nowMs + s.params.ClockSkew.Milliseconds()
}

// apply makes a committed transaction's effects visible in memory.
func (s *Store) apply(e *effects) {
	if len(e.tips) > 0 {
		oldest, _ := s.window(s.opts.now().UnixMilli())
		s.tips.mu.Lock()
		for _, op := range e.tips {
			if op.add {
				s.tips.addLocked(op.tipEntry, oldest)
			} else {
				s.tips.delLocked(op.tipEntry)
			}
		}
		s.tips.mu.Unlock()
	}
	if s.opts.onReject != nil {
		for _, r := range e.rejected {
			s.opts.onReject(r.id, r.err)
		}
	}
}

// SelectParents picks n distinct parents uniformly at random (URTS) from the shard's tip pool: stored,
// solid blocks of that shard without stored children, issued within params.TipEligible before now (and
// not more than params.ClockSkew after it). n is clamped to 2..8; n ≤ 0 means DefaultParents. With fewer
// eligible tips than n it returns them all; with none it returns []ID{tangle.Genesis}. The result is
// sorted ascending, as a block's parents must be.
func (s *Store) SelectParents(shard uint32, n int) []tangle.ID {
	switch {
	case n <= 0:
		n = DefaultParents
	case n < 2:
		n = 2
	case n > tangle.MaxParents:
		n = tangle.MaxParents
	}
	oldest, newest := s.window(s.opts.now().UnixMilli())
	s.tips.mu.Lock()
	var out []tangle.ID
	if t := s.tips.shards[shard]; t != nil {
		out = t.sample(n, oldest, newest)
	}
	s.tips.mu.Unlock()
	if len(out) == 0 {
		return []tangle.ID{tangle.Genesis}
	}
	slices.SortFunc(out, func(a, b tangle.ID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// sample draws min(n, eligible) distinct eligible tips uniformly at random. In a large pool it uses
// rejection sampling — draw an index, drop it if it is too old (it will never be eligible again), skip
// it if it is too new or already drawn — which costs O(n) instead of a pass over the pool; it falls back
// to a partial Fisher–Yates shuffle of the eligible entries when the pool is small or rejections pile
// up. Both give every n-subset of the eligible tips the same probability.
func (t *tipSet) sample(n int, oldest, newest int64) []tangle.ID {
	if len(t.tips) > 4*n {
		out := make([]tangle.ID, 0, n)
		for misses := 0; len(out) < n && misses < 8*n && len(t.tips) > 4*n; {
			e := t.tips[rand.IntN(len(t.tips))]
			switch {
			case e.time < oldest:
				t.remove(e.id)
			case e.time > newest || slices.Contains(out, e.id):
				misses++
			default:
				out = append(out, e.id)
			}
		}
		if len(out) == n {
			return out
		}
	}
	t.evict(oldest)
	cand := make([]int, 0, len(t.tips))
	for i, e := range t.tips {
		if e.time <= newest {
			cand = append(cand, i)
		}
	}
	if len(cand) > n { // partial Fisher–Yates: the first n of a uniform random permutation
		for i := range n {
			j := i + rand.IntN(len(cand)-i)
			cand[i], cand[j] = cand[j], cand[i]
		}
		cand = cand[:n]
	}
	out := make([]tangle.ID, len(cand))
	for i, c := range cand {
		out[i] = t.tips[c].id
	}
	return out
}

// tipCounts counts the eligible tips per shard at nowMs.
func (s *Store) tipCounts(nowMs int64) map[uint32]int {
	oldest, newest := s.window(nowMs)
	s.tips.mu.Lock()
	defer s.tips.mu.Unlock()
	out := map[uint32]int{}
	for shard, t := range s.tips.shards {
		t.evict(oldest)
		n := 0
		for _, e := range t.tips {
			if e.time <= newest {
				n++
			}
		}
		if n > 0 {
			out[shard] = n
		}
	}
	return out
}

// rebuildTips fills the tip pool from the database at Open: for each shard (found by jumping through
// the (shard, time, id) index), the solid blocks of the eligibility window without children.
func (s *Store) rebuildTips(ctx context.Context) error {
	oldest, newest := s.window(s.opts.now().UnixMilli())
	next, err := s.r.PrepareContext(ctx, `SELECT shard FROM blocks WHERE shard > ? ORDER BY shard LIMIT 1`)
	if err != nil {
		return err
	}
	defer next.Close()
	tips, err := s.r.PrepareContext(ctx, `SELECT id, time FROM blocks b
		WHERE shard = ? AND time >= ? AND time <= ? AND solid = 1
		AND NOT EXISTS (SELECT 1 FROM edges WHERE parent = b.nid)`)
	if err != nil {
		return err
	}
	defer tips.Close()
	s.tips.mu.Lock()
	defer s.tips.mu.Unlock()
	for shard := int64(-1); ; {
		if err := next.QueryRowContext(ctx, shard).Scan(&shard); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		rows, err := tips.QueryContext(ctx, shard, oldest, newest)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				raw []byte
				t   int64
			)
			if err := rows.Scan(&raw, &t); err != nil {
				rows.Close()
				return err
			}
			s.tips.addLocked(tipEntry{id: idOf(raw), shard: uint32(shard), time: t}, oldest)
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
}
