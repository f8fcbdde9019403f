package dag

import (
	"encoding/binary"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// The writer's two in-memory aids. Both belong to the writer goroutine (no locking) and both may only
// err on the safe side: the cache may forget a block but never claims one that is not stored or shows
// stale fields; the filter may say "maybe" for an id without a missing row but never "no" for one with
// a row. When a transaction rolls back the cache is emptied (its entries might describe rolled-back
// rows); the filter keeps its extra bits, which only cost false positives.

// recentCap is how many recently stored blocks the cache remembers. Parents chosen by URTS are tips of
// the last TipEligible, so for gossip nearly every parent lookup hits.
const recentCap = 1 << 16

type meta struct {
	nid   int64
	time  int64
	shard uint32
	solid bool
}

// recentCache maps the ids of recently stored (or looked-up) blocks to the fields Put needs of a
// parent. Eviction is first-in first-out through a ring of ids.
type recentCache struct {
	m    map[tangle.ID]meta
	ring []tangle.ID
	next int
	cap  int
}

func newRecentCache(n int) *recentCache {
	return &recentCache{m: map[tangle.ID]meta{}, cap: max(n, 1)}
}

func (c *recentCache) get(id tangle.ID) (meta, bool) {
	m, ok := c.m[id]
	return m, ok
}

func (c *recentCache) put(id tangle.ID, m meta) {
	if _, ok := c.m[id]; ok {
		c.m[id] = m
		return
	}
	if len(c.ring) < c.cap {
		c.ring = append(c.ring, id)
	} else {
		// Evicting a ring slot whose id was deleted and re-added meanwhile drops the new entry too:
		// harmless, a miss only costs a database lookup.
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = id
		c.next = (c.next + 1) % c.cap
	}
	c.m[id] = m
}

// setSolid records that a cached block became solid.
func (c *recentCache) setSolid(id tangle.ID) {
	if m, ok := c.m[id]; ok {
		m.solid = true
		c.m[id] = m
	}
}

func (c *recentCache) del(id tangle.ID) { delete(c.m, id) }

func (c *recentCache) reset() {
	clear(c.m)
	c.ring = c.ring[:0]
	c.next = 0
}

// missingFilter is a Bloom filter over the ids that have (or had) a row in the missing table, so that
// Put can skip the "do children wait for this block?" query for nearly every block. Ids are BLAKE2b
// outputs, so their four 64-bit words serve as the four independent hashes. It only grows; the writer
// rebuilds it from the table when it has taken in more ids than its size suits (about 0.2 % false
// positives at 16 bits per id).
type missingFilter struct {
	bits  []uint64
	mask  uint64 // number of bits − 1 (a power of two)
	adds  int
	limit int // rebuild after this many adds
}

const minFilterBits = 1 << 20 // 128 KiB

func newMissingFilter(ids int) *missingFilter {
	n := uint64(minFilterBits)
	for n < uint64(ids)*32 {
		n <<= 1
	}
	return &missingFilter{bits: make([]uint64, n/64), mask: n - 1, limit: int(n / 16)}
}

func (f *missingFilter) add(id tangle.ID) {
	for i := 0; i < 32; i += 8 {
		h := binary.LittleEndian.Uint64(id[i:]) & f.mask
		f.bits[h/64] |= 1 << (h % 64)
	}
	f.adds++
}

func (f *missingFilter) mayHave(id tangle.ID) bool {
	for i := 0; i < 32; i += 8 {
		h := binary.LittleEndian.Uint64(id[i:]) & f.mask
		if f.bits[h/64]&(1<<(h%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *missingFilter) full() bool { return f.adds > f.limit }
