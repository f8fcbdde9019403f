package tangle

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// t0 is the issuing time of the test blocks: 2026-01-01T00:00:00Z.
const t0 int64 = 1_767_225_600_000

// now0 is a receiver's clock one second after t0.
var now0 = time.UnixMilli(t0 + 1000)

// lowWork is DevNet with B = 1: W ≈ 1,000 hashes, so tests can grind many blocks, and a nonce picked at
// random still fails the PoW check with probability ≈ 0.999.
var lowWork = func() Params { p := DevNet; p.WorkPerByte = 1; return p }()

// unreachable has a work so large (saturated W, target 1) that no grind finishes.
var unreachable = func() Params { p := DevNet; p.WorkPerByte = 1 << 62; return p }()

// testParent returns a deterministic parent id.
func testParent(i int) ID { return blake2b.Sum256([]byte{'p', byte(i)}) }

// testHeader is a valid header for p: n parents (ascending), a sealed payload of size bytes, chat TTL.
func testHeader(p *Params, n, size int) Header {
	h := Header{
		Network:     p.ID,
		Time:        t0,
		TTL:         p.DefaultChatTTL,
		Tag:         Tag{0xa5, 0x5a, 0x0f, 0xf0, 0x12, 0x34, 0x56, 0x78},
		PayloadType: PayloadSealed,
		Payload:     make([]byte, size),
	}
	for i := range n {
		h.Parents = append(h.Parents, testParent(i))
	}
	h.Parents = SortParents(h.Parents)
	for i := range h.Payload {
		h.Payload[i] = byte(i*7 + 3)
	}
	return h
}

// encodeT encodes h or fails the test.
func encodeT(t testing.TB, h Header) []byte {
	t.Helper()
	raw, err := h.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return raw
}

// Byte offsets of the fields that follow the parents, for a block with n parents (protocol.md §2).
func offTag(n int) int     { return offParents + IDSize*n }
func offType(n int) int    { return offTag(n) + TagSize }
func offLength(n int) int  { return offType(n) + 1 }
func offPayload(n int) int { return offLength(n) + 4 }

func putU32(raw []byte, off int, v uint32) []byte {
	binary.LittleEndian.PutUint32(raw[off:], v)
	return raw
}

func putU64(raw []byte, off int, v uint64) []byte {
	binary.LittleEndian.PutUint64(raw[off:], v)
	return raw
}

// wantErr asserts that err wraps want (nil: no error) and, for a failure, is a *ValidationError.
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
}

// smallestValidNonce scans nonces from 0 upward (slow reference for the grinder).
func smallestValidNonce(p *Params, raw []byte) uint64 {
	w := p.Work(len(raw), binary.LittleEndian.Uint32(raw[offTTL:]))
	if w == 0 {
		return 0
	}
	d, target := PoWDigest(raw), Target(w)
	for n := uint64(0); ; n++ {
		if PoWScore(&d, n) <= target {
			return n
		}
	}
}
