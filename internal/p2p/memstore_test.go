package p2p

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// memStore is an in-memory Store with the semantics of dag.Store's API, for unit tests that need no
// SQLite. Integration tests use the real dag.Store.
type memStore struct {
	mu      sync.Mutex
	params  tangle.Params
	now     func() time.Time
	blocks  map[tangle.ID]*tangle.Block
	refs    map[tangle.ID]int64 // missing parent → first reference order
	seq     int64
	givenUp map[tangle.ID]bool
}

func newMemStore(params tangle.Params) *memStore {
	return &memStore{params: params, now: time.Now, blocks: map[tangle.ID]*tangle.Block{},
		refs: map[tangle.ID]int64{}, givenUp: map[tangle.ID]bool{}}
}

func (s *memStore) Put(ctx context.Context, blocks ...*tangle.Block) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	added := make([]bool, len(blocks))
	for i, b := range blocks {
		id := b.ID()
		if _, ok := s.blocks[id]; ok {
			continue
		}
		s.blocks[id] = b
		added[i] = true
		delete(s.refs, id)
		for _, p := range b.Parents {
			if p == tangle.Genesis || s.givenUp[p] {
				continue
			}
			if _, ok := s.blocks[p]; ok {
				continue
			}
			if _, ok := s.refs[p]; !ok {
				s.seq++
				s.refs[p] = s.seq
			}
		}
	}
	return added, nil
}

func (s *memStore) Has(id tangle.ID) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blocks[id]
	return ok, nil
}

func (s *memStore) Get(id tangle.ID) (*tangle.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[id]
	if !ok {
		return nil, dag.ErrNotFound
	}
	return b, nil
}

func (s *memStore) Missing(limit int) ([]tangle.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]tangle.ID, 0, len(s.refs))
	for id := range s.refs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b tangle.ID) int { return int(s.refs[a] - s.refs[b]) })
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

func (s *memStore) GiveUp(id tangle.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.givenUp[id] = true
	delete(s.refs, id)
	return nil
}

func (s *memStore) solidLocked(id tangle.ID, memo map[tangle.ID]bool) bool {
	if v, ok := memo[id]; ok {
		return v
	}
	if id == tangle.Genesis || s.givenUp[id] {
		return true
	}
	b, ok := s.blocks[id]
	if !ok {
		return false
	}
	memo[id] = false
	for _, p := range b.Parents {
		if !s.solidLocked(p, memo) {
			return false
		}
	}
	memo[id] = true
	return true
}

func (s *memStore) IsSolid(id tangle.ID) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blocks[id]; !ok {
		return false, nil
	}
	return s.solidLocked(id, map[tangle.ID]bool{}), nil
}

func (s *memStore) IDsSince(shard uint32, since time.Time, after dag.Cursor, limit int) ([]dag.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []dag.Cursor
	for id, b := range s.blocks {
		if b.Shard(s.params.ShardBits) != shard || b.Time < since.UnixMilli() || b.Expired(now) {
			continue
		}
		c := dag.Cursor{Time: b.Time, ID: id}
		if c.Time < after.Time || (c.Time == after.Time && bytes.Compare(c.ID[:], after.ID[:]) <= 0) {
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b dag.Cursor) int {
		if a.Time != b.Time {
			if a.Time < b.Time {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) Stats() (dag.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := dag.Stats{Blocks: len(s.blocks), Missing: len(s.refs), Tips: map[uint32]int{}}
	memo := map[tangle.ID]bool{}
	for id, b := range s.blocks {
		if s.solidLocked(id, memo) {
			st.Solid++
		} else {
			st.Unsolid++
		}
		st.Bytes += int64(len(b.Raw))
	}
	return st, nil
}
