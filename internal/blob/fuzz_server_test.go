package blob

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// fuzzStream feeds a server the fuzzer's bytes and discards what it answers.
type fuzzStream struct{ r io.Reader }

func (s fuzzStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s fuzzStream) Write(p []byte) (int, error) { return len(p), nil }
func (s fuzzStream) Close() error                { return nil }
func (s fuzzStream) Reset() error                { return nil }
func (s fuzzStream) SetDeadline(time.Time) error { return nil }
func (s fuzzStream) RemotePeer() peer.ID         { return "" }

func frameBytes(typ byte, parts ...[]byte) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeFrame(w, typ, parts...)
	w.Flush()
	return b.Bytes()
}

// fixedBlob seals 2 chunks and a bit with a fixed key, so seeds can name its id.
func fixedBlob(t testing.TB) ([]byte, Manifest) {
	var ct bytes.Buffer
	s := NewSealer(&ct, Key{1})
	s.Write(patternBytes(2*ChunkSize + 10))
	s.Close()
	return ct.Bytes(), s.Manifest()
}

// FuzzServer runs a server (puts allowed, a small budget) over arbitrary client bytes: it must never
// panic, hang or exceed its budget.
func FuzzServer(f *testing.F) {
	ct, m := fixedBlob(f)
	id := m.ID()
	f.Add(frameBytes(tGetManifest, id[:]))
	f.Add(append(frameBytes(tGetManifest, id[:]), frameBytes(tGetChunks, id[:], le32(0), le32(3))...))
	f.Add(frameBytes(tGetChunks, id[:], le32(2), le32(5)))
	put := frameBytes(tPut, id[:], le32(60), m.Encode())
	f.Add(append(put, frameBytes(tChunk, le32(2), ct[2*SealedChunkSize:])...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	dir := filepath.Join(f.TempDir(), "blobs")
	st, err := OpenStore(dir, 8*SealedChunkSize)
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	srv := &Server{Store: st, Authorize: func(context.Context, Request) error { return nil }}
	f.Fuzz(func(t *testing.T, b []byte) {
		srv.Serve(fuzzStream{bytes.NewReader(b)})
		if used, budget, _ := st.Usage(); used > budget {
			t.Fatalf("store uses %d of %d bytes", used, budget)
		}
		for _, id := range st.ids() {
			st.Delete(id)
		}
	})
}
