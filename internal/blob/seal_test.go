package blob

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// pattern is a deterministic, allocation-free plaintext source: byte i is (i*7 + i>>16) mod 251.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		o := p.off + int64(i)
		b[i] = byte((o*7 + o>>16) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternBytes(n int) []byte {
	b, _ := io.ReadAll(&pattern{n: int64(n)})
	return b
}

func sealBytes(t testing.TB, pt []byte) ([]byte, Manifest, Key) {
	t.Helper()
	var ct bytes.Buffer
	m, k, err := Seal(&ct, bytes.NewReader(pt))
	if err != nil {
		t.Fatal(err)
	}
	return ct.Bytes(), m, k
}

func TestSealRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3 * ChunkSize, 3*ChunkSize + 77} {
		pt := patternBytes(n)
		ct, m, k := sealBytes(t, pt)
		if uint64(len(ct)) != SealedSize(uint64(n)) || m.Size != uint64(n) || len(m.Hashes) != NumChunks(uint64(n)) {
			t.Fatalf("n=%d: sealed %d bytes, manifest size %d with %d hashes", n, len(ct), m.Size, len(m.Hashes))
		}
		m2, err := DecodeManifest(m.Encode())
		if err != nil || m2.ID() != m.ID() {
			t.Fatalf("n=%d: manifest round trip: %v", n, err)
		}
		got, err := io.ReadAll(NewReader(bytes.NewReader(ct), k, m))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: open: %v (got %d bytes)", n, err, len(got))
		}
	}
}

func TestSealTamper(t *testing.T) {
	pt := patternBytes(3*ChunkSize + 5)
	ct, m, k := sealBytes(t, pt)
	open := func(ct []byte, m Manifest, k Key) error {
		_, err := io.ReadAll(NewReader(bytes.NewReader(ct), k, m))
		return err
	}
	flip := bytes.Clone(ct)
	flip[SealedChunkSize+3] ^= 1
	if err := open(flip, m, k); !errors.Is(err, ErrAuth) {
		t.Errorf("flipped bit: %v, want ErrAuth", err)
	}
	// Swapping two chunks and their hashes: the manifest matches, the nonce does not.
	sw := bytes.Clone(ct)
	copy(sw[:SealedChunkSize], ct[SealedChunkSize:2*SealedChunkSize])
	copy(sw[SealedChunkSize:2*SealedChunkSize], ct[:SealedChunkSize])
	m2 := Manifest{Size: m.Size, Hashes: append([][32]byte{m.Hashes[1], m.Hashes[0]}, m.Hashes[2:]...)}
	if err := open(sw, m2, k); !errors.Is(err, ErrAuth) {
		t.Errorf("swapped chunks: %v, want ErrAuth", err)
	}
	// Truncation at a chunk boundary with a manifest claiming the shorter size: the last-chunk flag.
	m3 := Manifest{Size: 3 * ChunkSize, Hashes: m.Hashes[:3]}
	if err := open(ct[:3*SealedChunkSize], m3, k); !errors.Is(err, ErrAuth) {
		t.Errorf("truncated blob: %v, want ErrAuth", err)
	}
	if err := open(ct[:len(ct)-1], m, k); err == nil {
		t.Error("short ciphertext opened")
	}
	var wrong Key
	if err := open(ct, m, wrong); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong key: %v", err)
	}
}

// TestMemoryBounded seals 25 MiB into a file and opens it again, streaming: the bytes allocated in all
// (not just live) stay far below the blob's size, so neither side ever held the blob in memory.
func TestMemoryBounded(t *testing.T) {
	const size = 25 << 20
	f, err := os.Create(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, k, err := Seal(f, &pattern{n: size})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, NewReader(f, k, m), make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	want := sha256.New()
	io.Copy(want, &pattern{n: size})
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("25 MiB round trip differs")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("sealing and opening 25 MiB allocated %d bytes in all", alloc)
	if alloc > 2<<20 {
		t.Fatalf("allocated %d bytes for a 25 MiB blob, want < 2 MiB", alloc)
	}
}

func testPeer(t testing.TB, seed byte) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRefRoundTrip(t *testing.T) {
	r := Ref{Size: 12345, Holders: []Holder{
		{Peer: testPeer(t, 1), Sender: true, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}},
		{Peer: testPeer(t, 2)},
	}}
	r.ID[0], r.Key[31] = 9, 7
	enc, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRef(enc)
	if err != nil {
		t.Fatal(err)
	}
	enc2, _ := got.Encode()
	if !bytes.Equal(enc, enc2) || got.Holders[0].Peer != r.Holders[0].Peer || !got.Holders[0].Sender ||
		got.Holders[1].Sender || !got.Holders[0].Addrs[0].Equal(r.Holders[0].Addrs[0]) {
		t.Fatalf("round trip: %+v", got)
	}
	for i := range enc {
		if _, err := DecodeRef(enc[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
	if _, err := DecodeRef(append(enc, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecodeRef(f *testing.F) {
	r := Ref{Size: 1 << 20, Holders: []Holder{{Peer: testPeer(f, 1), Sender: true,
		Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")}}}}
	enc, _ := r.Encode()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRef(b)
		if err != nil {
			return
		}
		enc, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded ref does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", enc, b)
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	_, m, _ := sealBytes(f, patternBytes(ChunkSize+1))
	f.Add(m.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}
