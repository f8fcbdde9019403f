package blob

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
)

// Errors of the store.
var (
	ErrNotFound = errors.New("blob: not found")
	ErrBudget   = errors.New("blob: store budget full")
)

// Store keeps sealed blobs, complete and partial, in one directory (see the package comment).
type Store struct {
	dir    string
	budget uint64
	now    func() time.Time

	mu    sync.Mutex
	blobs map[ID]*entry
	used  uint64
}

type entry struct {
	man      Manifest
	f        *os.File
	syncMu   sync.Mutex // one Sync (fsync + meta write) at a time
	expires  time.Time  // guarded by Store.mu, like the fields below
	have     []byte     // chunks durable on disk (bitmap, bit i = chunk i, MSB first)
	pending  []byte     // chunks written, not yet fsync'd
	complete bool
	size     uint64 // bytes reserved (SealedSize)
}

// meta is the <id>.meta file.
type meta struct {
	Manifest []byte `json:"manifest"`
	Expires  int64  `json:"expires_ms"`
	Have     []byte `json:"have"`
	Complete bool   `json:"complete"`
}

// OpenStore opens (creating it 0700) the blob directory dir with a budget of budget bytes of sealed
// data. It drops expired blobs and leftovers of interrupted seals.
func OpenStore(dir string, budget uint64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, budget: budget, now: time.Now, blobs: map[ID]*entry{}}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, de := range names {
		name := de.Name()
		idHex, ok := strings.CutSuffix(name, ".meta")
		if !ok {
			continue
		}
		id, err := parseID(idHex)
		if err != nil {
			continue
		}
		e, err := s.load(id)
		if err != nil || !e.expires.After(s.now()) {
			s.removeFiles(id)
			continue
		}
		s.blobs[id] = e
		s.used += e.size
		keep[idHex+".blob"], keep[name] = true, true
	}
	for _, de := range names {
		if !keep[de.Name()] && (strings.HasSuffix(de.Name(), ".blob") || strings.HasSuffix(de.Name(), ".tmp") ||
			strings.HasSuffix(de.Name(), ".meta") || strings.Contains(de.Name(), ".tmp-")) {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
	return s, nil
}

func parseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, errors.New("blob: bad id")
	}
	copy(id[:], b)
	return id, nil
}

func (s *Store) path(id ID, ext string) string {
	return filepath.Join(s.dir, hex.EncodeToString(id[:])+ext)
}

func (s *Store) load(id ID) (*entry, error) {
	raw, err := os.ReadFile(s.path(id, ".meta"))
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	man, err := DecodeManifest(m.Manifest)
	if err != nil || man.ID() != id {
		return nil, fmt.Errorf("blob: bad manifest in %x.meta", id[:4])
	}
	n := len(man.Hashes)
	if len(m.Have) != (n+7)/8 {
		return nil, errors.New("blob: bad bitmap")
	}
	f, err := os.OpenFile(s.path(id, ".blob"), os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || uint64(st.Size()) != SealedSize(man.Size) {
		f.Close()
		return nil, errors.New("blob: data file has the wrong size")
	}
	return &entry{man: man, f: f, expires: time.UnixMilli(m.Expires), have: m.Have,
		pending: make([]byte, len(m.Have)), complete: m.Complete, size: SealedSize(man.Size)}, nil
}

func (s *Store) removeFiles(id ID) {
	os.Remove(s.path(id, ".meta"))
	os.Remove(s.path(id, ".blob"))
	atomicfile.SyncDir(s.dir)
}

func bit(b []byte, i int) bool { return b[i/8]&(0x80>>(i%8)) != 0 }
func setBit(b []byte, i int)   { b[i/8] |= 0x80 >> (i % 8) }

func (s *Store) reserve(n uint64) error {
	if s.used+n > s.budget {
		return ErrBudget
	}
	s.used += n
	return nil
}

// writeMeta persists e's durable state; the caller holds e.syncMu.
func (s *Store) writeMeta(id ID, e *entry) error {
	s.mu.Lock()
	m := meta{Manifest: e.man.Encode(), Expires: e.expires.UnixMilli(), Have: append([]byte(nil), e.have...),
		Complete: e.complete}
	s.mu.Unlock()
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path(id, ".meta"), raw, 0o600)
}

// budgetWriter writes sealed chunks to a file, reserving budget as it goes.
type budgetWriter struct {
	s *Store
	f *os.File
	n uint64
}

func (w *budgetWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	err := w.s.reserve(uint64(len(p)))
	w.s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	w.n += uint64(len(p))
	return w.f.Write(p)
}

// Seal encrypts everything read from r into a new blob with a fresh key, kept until expires, and
// returns its Ref (without holders). The blob is durable when Seal returns.
func (s *Store) Seal(r io.Reader, expires time.Time) (Ref, error) {
	f, err := os.CreateTemp(s.dir, "seal-*.tmp")
	if err != nil {
		return Ref{}, err
	}
	w := &budgetWriter{s: s, f: f}
	fail := func(err error) (Ref, error) {
		f.Close()
		os.Remove(f.Name())
		s.mu.Lock()
		s.used -= w.n
		s.mu.Unlock()
		return Ref{}, err
	}
	m, key, err := Seal(w, r)
	if err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	id := m.ID()
	if err := os.Rename(f.Name(), s.path(id, ".blob")); err != nil {
		return fail(err)
	}
	have := make([]byte, (len(m.Hashes)+7)/8)
	for i := range m.Hashes {
		setBit(have, i)
	}
	e := &entry{man: m, f: f, expires: expires, have: have, pending: make([]byte, len(have)),
		complete: true, size: w.n}
	if err := s.writeMeta(id, e); err != nil {
		os.Remove(s.path(id, ".blob"))
		return fail(err)
	}
	s.mu.Lock()
	s.blobs[id] = e
	s.mu.Unlock()
	return Ref{ID: id, Size: m.Size, Key: key}, nil
}

// Begin makes room for the blob of manifest m, to be filled chunk by chunk (WriteChunk, Sync) and kept
// until expires. For a blob already present it only extends the expiry.
func (s *Store) Begin(m Manifest, expires time.Time) error {
	if len(m.Hashes) != NumChunks(m.Size) || m.Size > MaxSize {
		return errors.New("blob: bad manifest")
	}
	id := m.ID()
	s.mu.Lock()
	if e, ok := s.blobs[id]; ok {
		if expires.After(e.expires) {
			e.expires = expires
		}
		s.mu.Unlock()
		return nil
	}
	size := SealedSize(m.Size)
	if err := s.reserve(size); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	fail := func(err error) error {
		s.mu.Lock()
		s.used -= size
		s.mu.Unlock()
		os.Remove(s.path(id, ".blob"))
		return err
	}
	f, err := os.OpenFile(s.path(id, ".blob"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fail(err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return fail(err)
	}
	nb := (len(m.Hashes) + 7) / 8
	e := &entry{man: m, f: f, expires: expires, have: make([]byte, nb), pending: make([]byte, nb), size: size}
	if err := s.writeMeta(id, e); err != nil {
		f.Close()
		return fail(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[id]; ok { // a concurrent Begin won
		f.Close()
		s.used -= size
		return nil
	}
	s.blobs[id] = e
	return nil
}

func (s *Store) get(id ID) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[id]
	return e, ok
}

// Manifest returns the manifest of a blob present (complete or partial).
func (s *Store) Manifest(id ID) (Manifest, bool) {
	e, ok := s.get(id)
	if !ok {
		return Manifest{}, false
	}
	return e.man, true
}

// Complete reports whether the whole blob is durable in the store.
func (s *Store) Complete(id ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[id]
	return ok && e.complete
}

// Missing returns the chunks of a present blob that are neither durable nor written.
func (s *Store) Missing(id ID) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	var out []int
	for i := range e.man.Hashes {
		if !bit(e.have, i) && !bit(e.pending, i) {
			out = append(out, i)
		}
	}
	return out, nil
}

// Have returns a copy of the bitmap of durable chunks.
func (s *Store) Have(id ID) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), e.have...), nil
}

// WriteChunk checks sealed chunk i against the manifest (ErrAuth if it does not match) and writes it.
// It is durable after the next Sync.
func (s *Store) WriteChunk(id ID, i int, sealed []byte) error {
	e, ok := s.get(id)
	if !ok {
		return ErrNotFound
	}
	if i < 0 || i >= len(e.man.Hashes) {
		return fmt.Errorf("blob: chunk %d out of range", i)
	}
	if len(sealed) != sealedChunkLen(e.man.Size, i) || ChunkHash(sealed) != e.man.Hashes[i] {
		return ErrAuth
	}
	if _, err := e.f.WriteAt(sealed, int64(i)*SealedChunkSize); err != nil {
		return err
	}
	s.mu.Lock()
	setBit(e.pending, i)
	s.mu.Unlock()
	return nil
}

// Sync makes every chunk written so far durable (fsync, then the bitmap) and reports whether the blob
// is complete.
func (s *Store) Sync(id ID) (bool, error) {
	e, ok := s.get(id)
	if !ok {
		return false, ErrNotFound
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	s.mu.Lock()
	pend := append([]byte(nil), e.pending...)
	s.mu.Unlock()
	if err := e.f.Sync(); err != nil {
		return false, err
	}
	s.mu.Lock()
	all := true
	for i := range e.man.Hashes {
		if bit(pend, i) {
			setBit(e.have, i)
		}
		all = all && bit(e.have, i)
	}
	e.complete = all
	s.mu.Unlock()
	if err := s.writeMeta(id, e); err != nil {
		return false, err
	}
	return all, nil
}

// ReadChunk reads sealed chunk i of a blob, if written, into buf (grown as needed).
func (s *Store) ReadChunk(id ID, i int, buf []byte) ([]byte, error) {
	s.mu.Lock()
	e, ok := s.blobs[id]
	if ok && (i < 0 || i >= len(e.man.Hashes) || !(bit(e.have, i) || bit(e.pending, i))) {
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return nil, ErrNotFound
	}
	n := sealedChunkLen(e.man.Size, i)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := e.f.ReadAt(buf, int64(i)*SealedChunkSize); err != nil {
		return nil, err
	}
	return buf, nil
}

// Open returns a reader of the plaintext of a complete blob; it checks every chunk again as it reads.
func (s *Store) Open(ref Ref) (io.Reader, error) {
	s.mu.Lock()
	e, ok := s.blobs[ref.ID]
	complete := ok && e.complete
	s.mu.Unlock()
	if !complete {
		return nil, ErrNotFound
	}
	if e.man.Size != ref.Size {
		return nil, errors.New("blob: size differs from the ref")
	}
	return NewReader(io.NewSectionReader(e.f, 0, int64(e.size)), ref.Key, e.man), nil
}

// Extend keeps a present blob at least until t.
func (s *Store) Extend(id ID, t time.Time) error {
	s.mu.Lock()
	e, ok := s.blobs[id]
	if !ok {
		s.mu.Unlock()
		return ErrNotFound
	}
	if !t.After(e.expires) {
		s.mu.Unlock()
		return nil
	}
	e.expires = t
	s.mu.Unlock()
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	return s.writeMeta(id, e)
}

// Delete removes a blob and frees its budget.
func (s *Store) Delete(id ID) error {
	s.mu.Lock()
	e, ok := s.blobs[id]
	if ok {
		delete(s.blobs, id)
		s.used -= e.size
	}
	s.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	e.f.Close()
	s.removeFiles(id)
	return nil
}

// Prune deletes the blobs whose expiry has passed and returns how many.
func (s *Store) Prune() int {
	now := s.now()
	var ids []ID
	s.mu.Lock()
	for id, e := range s.blobs {
		if !e.expires.After(now) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.Delete(id)
	}
	return len(ids)
}

// Usage returns the bytes reserved, the budget and the number of blobs.
func (s *Store) Usage() (used, budget uint64, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.budget, len(s.blobs)
}

// Close closes the data files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.blobs {
		e.f.Close()
	}
	return nil
}

// ids lists the blobs present (tests).
func (s *Store) ids() []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ID, 0, len(s.blobs))
	for id := range s.blobs {
		out = append(out, id)
	}
	return out
}
