package mail

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Default limits of a Reassembler.
const (
	DefaultMaxPending      = 256
	DefaultMaxPendingBytes = 64 << 20
)

// Reassembler puts chunked messages back together (protocol.md §10.1), in memory. Manifest and
// chunks may arrive in any order and more than once. A message is identified by its sender's key and
// its message id, so chunks of different senders never mix, whatever ids they choose. Its zero value
// is ready to use with the default limits; it is safe for concurrent use. Keeping partial messages
// across restarts is the inbox's business: it can replay what it stored.
type Reassembler struct {
	// MaxMessageSize bounds a message's length (manifest) and the bytes held for it before its
	// manifest arrives; 0 means MaxMessageSize (25 MiB).
	MaxMessageSize int
	// MaxPending bounds the number of incomplete messages; 0 means DefaultMaxPending.
	MaxPending int
	// MaxPendingBytes bounds the chunk bytes held for all incomplete messages; 0 means
	// DefaultMaxPendingBytes.
	MaxPendingBytes int
	// Now is the clock for Expire; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	pending map[partialKey]*partial
	bytes   int
}

type partialKey struct {
	sender string
	id     [IDSize]byte
}

type partial struct {
	manifest *Manifest
	count    int
	chunks   [][]byte // by index; nil = missing
	have     int
	size     int
	first    time.Time
}

func (r *Reassembler) limits() (maxSize, maxPending, maxBytes int) {
	maxSize, maxPending, maxBytes = r.MaxMessageSize, r.MaxPending, r.MaxPendingBytes
	if maxSize <= 0 || maxSize > MaxMessageSize {
		maxSize = MaxMessageSize
	}
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPendingBytes
	}
	return
}

func (r *Reassembler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// get returns the partial message for k, creating it (count chunks) if absent.
func (r *Reassembler) get(k partialKey, count int) (*partial, error) {
	if r.pending == nil {
		r.pending = make(map[partialKey]*partial)
	}
	p := r.pending[k]
	if p != nil {
		if p.count != count {
			return nil, fmt.Errorf("%w: %d chunks announced, earlier %d", ErrConflict, count, p.count)
		}
		return p, nil
	}
	_, maxPending, _ := r.limits()
	if len(r.pending) >= maxPending {
		return nil, fmt.Errorf("%w: %d incomplete messages", ErrPendingFull, len(r.pending))
	}
	p = &partial{count: count, chunks: make([][]byte, count), first: r.now()}
	r.pending[k] = p
	return p, nil
}

func (r *Reassembler) drop(k partialKey) {
	if p := r.pending[k]; p != nil {
		r.bytes -= p.size
		delete(r.pending, k)
	}
}

// AddManifest records a manifest from sender (the sender's Ed25519 public key). It returns the
// message when this completes it, else nil. ErrTooLarge (beyond MaxMessageSize; the partial message
// is dropped), ErrConflict (a different manifest, or chunks that disagree with it; a manifest that
// contradicts held chunks drops them), ErrHashMismatch (all chunks present but the bytes do not match:
// dropped) and ErrPendingFull are possible.
func (r *Reassembler) AddManifest(sender []byte, m Manifest) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := partialKey{string(sender), m.ID}
	maxSize, _, _ := r.limits()
	if m.Length > maxSize {
		r.drop(k)
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Length, maxSize)
	}
	if m.Count < 2 || m.Count > MaxChunks || m.Length < m.Count {
		return nil, fmt.Errorf("%w: manifest with %d chunks for %d bytes", ErrContent, m.Count, m.Length)
	}
	p, err := r.get(k, m.Count)
	if err != nil {
		return nil, err
	}
	if p.manifest != nil {
		if *p.manifest != m {
			return nil, fmt.Errorf("%w: two different manifests", ErrConflict)
		}
		return nil, nil
	}
	if p.size > m.Length {
		r.drop(k)
		return nil, fmt.Errorf("%w: chunks hold %d bytes, the manifest says %d", ErrConflict, p.size, m.Length)
	}
	mc := m
	p.manifest = &mc
	return r.complete(k, p)
}

// AddChunk records a chunk from sender. It returns the message when this completes it, else nil.
// A chunk seen before with the same bytes is ignored; with other bytes it is ErrConflict (the first
// one is kept). Besides the errors of AddManifest, a chunk beyond the limits before its manifest
// arrived is ErrTooLarge (MaxMessageSize for the message) or ErrPendingFull (MaxPendingBytes).
func (r *Reassembler) AddChunk(sender []byte, c Chunk) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Count < 2 || c.Count > MaxChunks || c.Index < 0 || c.Index >= c.Count || len(c.Data) == 0 {
		return nil, fmt.Errorf("%w: chunk %d of %d with %d bytes", ErrContent, c.Index, c.Count, len(c.Data))
	}
	k := partialKey{string(sender), c.ID}
	p, err := r.get(k, c.Count)
	if err != nil {
		return nil, err
	}
	if old := p.chunks[c.Index]; old != nil {
		if !bytes.Equal(old, c.Data) {
			return nil, fmt.Errorf("%w: chunk %d seen with other bytes", ErrConflict, c.Index)
		}
		return nil, nil
	}
	maxSize, _, maxBytes := r.limits()
	limit := maxSize
	if p.manifest != nil {
		limit = p.manifest.Length
	}
	if p.size+len(c.Data) > limit {
		r.drop(k)
		if p.manifest != nil {
			return nil, fmt.Errorf("%w: chunks hold more than the manifest's %d bytes", ErrConflict, limit)
		}
		return nil, fmt.Errorf("%w: chunks hold more than %d bytes", ErrTooLarge, limit)
	}
	if r.bytes+len(c.Data) > maxBytes {
		if p.have == 0 && p.manifest == nil {
			delete(r.pending, k)
		}
		return nil, fmt.Errorf("%w: %d bytes held", ErrPendingFull, r.bytes)
	}
	p.chunks[c.Index] = bytes.Clone(c.Data)
	p.have++
	p.size += len(c.Data)
	r.bytes += len(c.Data)
	return r.complete(k, p)
}

// complete assembles p if it has its manifest and every chunk, and removes it either way once it is
// complete.
func (r *Reassembler) complete(k partialKey, p *partial) ([]byte, error) {
	if p.manifest == nil || p.have < p.count {
		return nil, nil
	}
	r.drop(k)
	if p.size != p.manifest.Length {
		return nil, fmt.Errorf("%w: chunks hold %d bytes, the manifest says %d", ErrConflict, p.size, p.manifest.Length)
	}
	raw := make([]byte, 0, p.size)
	for _, c := range p.chunks {
		raw = append(raw, c...)
	}
	if blake2b.Sum256(raw) != p.manifest.Hash {
		return nil, ErrHashMismatch
	}
	return raw, nil
}

// Missing reports, for an incomplete message, the indexes of the chunks not yet seen and whether its
// manifest has arrived. ok is false when nothing is pending under that sender and id.
func (r *Reassembler) Missing(sender []byte, id [IDSize]byte) (missing []int, haveManifest, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[partialKey{string(sender), id}]
	if p == nil {
		return nil, false, false
	}
	for i, c := range p.chunks {
		if c == nil {
			missing = append(missing, i)
		}
	}
	return missing, p.manifest != nil, true
}

// Expire drops the incomplete messages whose first piece arrived before t (chunks live as long as
// their blocks' TTL; a message still incomplete after it never completes) and returns how many.
func (r *Reassembler) Expire(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var old []partialKey
	for k, p := range r.pending {
		if p.first.Before(t) {
			old = append(old, k)
		}
	}
	for _, k := range old {
		r.drop(k)
	}
	return len(old)
}

// Pending returns the number of incomplete messages and the chunk bytes held for them.
func (r *Reassembler) Pending() (messages, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending), r.bytes
}
