package blob

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openStore(t *testing.T, dir string, budget uint64) *Store {
	t.Helper()
	s, err := OpenStore(dir, budget)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreSealOpenPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	s := openStore(t, dir, 1<<30)
	pt := patternBytes(2*ChunkSize + 9)
	ref, err := s.Seal(bytes.NewReader(pt), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %v", err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("files %v, want .blob and .meta", ents)
	}
	for _, e := range ents {
		st, _ := os.Stat(filepath.Join(dir, e.Name()))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", e.Name(), st.Mode().Perm())
		}
	}
	// Reopened, the blob is still there and complete.
	s.Close()
	s2 := openStore(t, dir, 1<<30)
	r, err = s2.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); !bytes.Equal(got, pt) {
		t.Fatal("reopened blob differs")
	}
}

// TestStorePartialResume writes some chunks of a blob, syncs part of them, and reopens: only the
// synced chunks count, the rest are missing again, and a bad chunk is refused.
func TestStorePartialResume(t *testing.T) {
	src := openStore(t, t.TempDir(), 1<<30)
	ref, err := src.Seal(bytes.NewReader(patternBytes(5*ChunkSize)), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := src.Manifest(ref.ID)
	dir := t.TempDir()
	dst := openStore(t, dir, 1<<30)
	if err := dst.Begin(m, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	copyChunk := func(s *Store, i int) error {
		c, err := src.ReadChunk(ref.ID, i, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.WriteChunk(ref.ID, i, c)
	}
	copyChunk(dst, 0)
	copyChunk(dst, 3)
	if done, err := dst.Sync(ref.ID); err != nil || done {
		t.Fatalf("sync: %v %v", done, err)
	}
	copyChunk(dst, 1) // written, never synced
	bad, _ := src.ReadChunk(ref.ID, 2, nil)
	bad[0] ^= 1
	if err := dst.WriteChunk(ref.ID, 2, bad); !errors.Is(err, ErrAuth) {
		t.Fatalf("bad chunk: %v", err)
	}
	dst.Close()
	dst = openStore(t, dir, 1<<30)
	miss, err := dst.Missing(ref.ID)
	if err != nil || len(miss) != 3 || miss[0] != 1 || miss[1] != 2 || miss[2] != 4 {
		t.Fatalf("missing after reopen: %v %v", miss, err)
	}
	for _, i := range miss {
		if err := copyChunk(dst, i); err != nil {
			t.Fatal(err)
		}
	}
	if done, err := dst.Sync(ref.ID); err != nil || !done {
		t.Fatalf("sync: %v %v", done, err)
	}
	r, err := dst.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); !bytes.Equal(got, patternBytes(5*ChunkSize)) {
		t.Fatal("resumed blob differs")
	}
}

func TestStoreBudgetAndTTL(t *testing.T) {
	s := openStore(t, t.TempDir(), 3*SealedChunkSize)
	if _, err := s.Seal(bytes.NewReader(patternBytes(4*ChunkSize)), time.Now().Add(time.Hour)); !errors.Is(err, ErrBudget) {
		t.Fatalf("over budget: %v", err)
	}
	if used, _, n := s.Usage(); used != 0 || n != 0 {
		t.Fatalf("failed seal left %d bytes, %d blobs", used, n)
	}
	ref, err := s.Seal(bytes.NewReader(patternBytes(ChunkSize)), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	short, err := s.Seal(bytes.NewReader(patternBytes(10)), time.Now().Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Now().Add(time.Minute) }
	if n := s.Prune(); n != 1 || s.Complete(short.ID) || !s.Complete(ref.ID) {
		t.Fatalf("prune removed %d", n)
	}
	if used, _, n := s.Usage(); used != SealedChunkSize || n != 1 {
		t.Fatalf("usage %d bytes, %d blobs", used, n)
	}
}
