package p2p

import (
	"testing"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestIDSetGrowsToCapacity: the set starts empty, grows as ids arrive, holds at most capacity ids and
// evicts the oldest first.
func TestIDSetGrowsToCapacity(t *testing.T) {
	const capacity = 1000
	s := newIDSet(capacity)
	if cap(s.ring) != 0 {
		t.Fatalf("a new set holds room for %d ids", cap(s.ring))
	}
	id := func(i int) tangle.ID { return tangle.ID{byte(i), byte(i >> 8), 1} }
	for i := range 2500 {
		if !s.add(id(i)) {
			t.Fatalf("id %d added twice", i)
		}
		if s.add(id(i)) {
			t.Fatalf("id %d: a repeat was added", i)
		}
	}
	if s.len() != capacity || len(s.ring) != capacity || cap(s.ring) > capacity+capacity/8 {
		t.Fatalf("len %d, ring %d/%d, want %d", s.len(), len(s.ring), cap(s.ring), capacity)
	}
	if s.has(id(1499)) || !s.has(id(1500)) || !s.has(id(2499)) {
		t.Error("not the last capacity ids")
	}
}
