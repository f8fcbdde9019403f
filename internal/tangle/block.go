// Package tangle owns the block: its wire codec, its id, the proof of work that pays for it (verifying
// and grinding), the validity rules a receiver applies, and the per-network parameters. It implements
// docs/protocol.md §1–5; the §9.3 and §9.4 test vectors are checked by TestProtocolVectors*.
//
// Implementation notes:
//   - A Block keeps the exact bytes it was decoded from (Raw). Ids, PoW digests and re-encoding all work on
//     those bytes, so a block is never re-serialised differently from how it arrived. Decode's invariant
//     (fuzzed): Header().Encode() plus SetNonce gives back Raw exactly.
//   - Validate follows protocol.md §2.1 in order, cheapest and spam-resistant checks first: size, version,
//     network id, then the proof of work over the raw bytes (CheckPoW reads only the TTL field and the
//     length), and only then the full decode and the field and payload rules. A block without work is
//     never parsed. Nothing here panics on any input; every rejection is a *ValidationError that wraps
//     exactly one of the Err* sentinels, so callers (gossip scoring, fuzzers) can classify it.
//   - Work (W) uses a 128-bit intermediate and saturates; time windows saturate instead of wrapping, so
//     attacker-chosen issuing times near the int64 limits are rejected rather than mis-compared.
//   - Grinding (pow.go) runs WithWorkers goroutines that claim disjoint chunks of 4096 consecutive nonces
//     from one atomic counter and hash d ‖ nonce in a 40-byte stack buffer (no allocation per hash). The
//     result is the smallest valid nonce whatever the worker count. Cancellation: the calling goroutine
//     waits on the context and raises a stop flag that workers read once per chunk; progress callbacks
//     run on the calling goroutine.
//   - Otherwise the package is pure: no I/O, no goroutines outside Grind, no mutable global state (the
//     network Params values MainNet, DevNet, BenchNet are never modified; copy them to vary).
package tangle

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Wire constants (protocol.md §2).
const (
	Version        = 1
	IDSize         = 32
	TagSize        = 8
	NonceSize      = 8
	MaxBlockSize   = 32768
	MinParents     = 1
	MaxParents     = 8
	MinTTL         = 60
	MaxTTL         = 2_419_200
	headerFixed    = 1 + 8 + 8 + 4 + 1 // version, network id, time, TTL, parent count
	afterParents   = TagSize + 1 + 4   // tag, payload type, payload length
	Overhead       = headerFixed + afterParents + NonceSize
	MinBlockSize   = Overhead + IDSize
	offNetworkID   = 1
	offTime        = 9
	offTTL         = 17
	offParentCount = 21
	offParents     = 22
)

// PayloadSealed is the only payload type of version 1: a sealed envelope (protocol.md §5, §6).
const PayloadSealed byte = 0x01

// MinSealedPayload is the smallest well-formed sealed payload: the HPKE encapsulated key and AEAD tag.
const MinSealedPayload = 32 + 16

// ID is a block id: BLAKE2b-256 of the whole block.
type ID [IDSize]byte

// Genesis is the all-zero id: always solid, never stored, the parent of a shard's first block.
var Genesis ID

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 hex digits, for logs.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// Tag is a block's route tag (protocol.md §4).
type Tag [TagSize]byte

// NetworkID is the first 8 bytes of BLAKE2b-256 of the network name.
type NetworkID [8]byte

func (n NetworkID) String() string { return hex.EncodeToString(n[:]) }

// NetworkIDOf computes the network id of a network name.
func NetworkIDOf(name string) NetworkID {
	sum := blake2b.Sum256([]byte(name))
	var n NetworkID
	copy(n[:], sum[:8])
	return n
}

// Block is a decoded block. Build new blocks with Params.Build (or Header.Encode, Params.Grind and
// Decode); decode received bytes with Decode or, for untrusted input, Params.Validate. Fields other than Raw are views of Raw for decoded blocks; do not mutate them.
type Block struct {
	Version     byte
	Network     NetworkID
	Time        int64 // issuing time, Unix milliseconds
	TTL         uint32
	Parents     []ID
	Tag         Tag
	PayloadType byte
	Payload     []byte
	Nonce       uint64

	// Raw is the complete wire encoding, nonce included.
	Raw []byte
	id  ID
}

// ID returns the block id, H(Raw).
func (b *Block) ID() ID { return b.id }

// Size is the wire size in bytes.
func (b *Block) Size() int { return len(b.Raw) }

// IssuedAt is the issuing time.
func (b *Block) IssuedAt() time.Time { return time.UnixMilli(b.Time) }

// ExpiresAt is issuing time + TTL, when the block is pruned. It saturates rather than wrapping for
// issuing times near the end of the int64 range.
func (b *Block) ExpiresAt() time.Time { return time.UnixMilli(b.ExpiresAtMs()) }

// ExpiresAtMs is issuing time + TTL·1000 in Unix milliseconds, saturating at math.MaxInt64.
func (b *Block) ExpiresAtMs() int64 { return addSat(b.Time, int64(b.TTL)*1000) }

// Expired reports whether the block's TTL has run out at now.
func (b *Block) Expired(now time.Time) bool { return !b.ExpiresAt().After(now) }

// Shard returns the block's shard for a network with shardBits shard bits.
func (b *Block) Shard(shardBits int) uint32 { return b.Tag.Shard(shardBits) }

// Shard is the integer formed by the tag's first shardBits bits (MSB-first).
func (t Tag) Shard(shardBits int) uint32 {
	if shardBits <= 0 {
		return 0
	}
	if shardBits > 32 {
		shardBits = 32
	}
	return binary.BigEndian.Uint32(t[:4]) >> (32 - shardBits)
}

// Sentinel errors; every decode or validation failure wraps exactly one of them.
var (
	ErrSize        = errors.New("block size out of range")
	ErrVersion     = errors.New("unknown block version")
	ErrNetwork     = errors.New("block is for another network")
	ErrPoW         = errors.New("insufficient proof of work")
	ErrMalformed   = errors.New("malformed block")
	ErrParents     = errors.New("invalid parents")
	ErrTTL         = errors.New("TTL out of range")
	ErrTime        = errors.New("issuing time outside the accepted window")
	ErrExpired     = errors.New("block expired")
	ErrPayloadType = errors.New("unknown payload type")
	ErrPayload     = errors.New("malformed payload")
	ErrParentAge   = errors.New("parent issuing time outside the allowed window")
)

// ValidationError says which rule a block broke. errors.Is works against the Err* sentinels.
type ValidationError struct {
	Err    error
	Detail string
}

func (e *ValidationError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(err error, format string, args ...any) error {
	return &ValidationError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// Header is everything of a block but its nonce: what a sender fills in before grinding the PoW.
type Header struct {
	Network     NetworkID
	Time        int64
	TTL         uint32
	Parents     []ID
	Tag         Tag
	PayloadType byte
	Payload     []byte
}

// Header returns the block's header: everything but the nonce. Header().Encode() followed by
// SetNonce(raw, b.Nonce) reproduces b.Raw exactly. The returned slices alias the block's.
func (b *Block) Header() Header {
	return Header{
		Network:     b.Network,
		Time:        b.Time,
		TTL:         b.TTL,
		Parents:     b.Parents,
		Tag:         b.Tag,
		PayloadType: b.PayloadType,
		Payload:     b.Payload,
	}
}

// EncodedSize is the size the block will have on the wire (after Encode drops duplicate parents).
func (h *Header) EncodedSize() int {
	return Overhead + IDSize*len(SortParents(h.Parents)) + len(h.Payload)
}

// Encode serialises the header with nonce 0 into a new buffer whose last NonceSize bytes are the nonce.
// Parents are sorted and deduplicated first. It fails on what Decode would reject structurally.
func (h *Header) Encode() ([]byte, error) {
	parents := SortParents(h.Parents)
	if len(parents) < MinParents || len(parents) > MaxParents {
		return nil, invalid(ErrParents, "%d parents, want %d..%d", len(parents), MinParents, MaxParents)
	}
	size := Overhead + IDSize*len(parents) + len(h.Payload)
	if size > MaxBlockSize {
		return nil, invalid(ErrSize, "%d bytes, max %d", size, MaxBlockSize)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, Version)
	buf = append(buf, h.Network[:]...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(h.Time))
	buf = binary.LittleEndian.AppendUint32(buf, h.TTL)
	buf = append(buf, byte(len(parents)))
	for _, p := range parents {
		buf = append(buf, p[:]...)
	}
	buf = append(buf, h.Tag[:]...)
	buf = append(buf, h.PayloadType)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(h.Payload)))
	buf = append(buf, h.Payload...)
	buf = binary.LittleEndian.AppendUint64(buf, 0)
	return buf, nil
}

// SortParents returns the ids sorted ascending with duplicates removed (a new slice).
func SortParents(ids []ID) []ID {
	out := make([]ID, len(ids))
	copy(out, ids)
	for i := 1; i < len(out); i++ { // insertion sort: n ≤ 8
		for j := i; j > 0 && bytes.Compare(out[j-1][:], out[j][:]) > 0; j-- {
			out[j-1], out[j] = out[j], out[j-1]
		}
	}
	n := 0
	for i := range out {
		if i == 0 || out[i] != out[n-1] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}

// SetNonce writes nonce into an encoded block (the last 8 bytes).
func SetNonce(raw []byte, nonce uint64) {
	binary.LittleEndian.PutUint64(raw[len(raw)-NonceSize:], nonce)
}

// Decode parses a block from raw and checks its structure (protocol.md §2, rule 4): bounds, version,
// parent count and order, no trailing bytes. It does not check PoW, network, time or payload type; use
// Params.Validate for a received block. raw is retained by the returned Block.
func Decode(raw []byte) (*Block, error) {
	if len(raw) < MinBlockSize || len(raw) > MaxBlockSize {
		return nil, invalid(ErrSize, "%d bytes, want %d..%d", len(raw), MinBlockSize, MaxBlockSize)
	}
	if raw[0] != Version {
		return nil, invalid(ErrVersion, "version %d", raw[0])
	}
	b := &Block{Version: raw[0], Raw: raw}
	copy(b.Network[:], raw[offNetworkID:offTime])
	b.Time = int64(binary.LittleEndian.Uint64(raw[offTime:]))
	b.TTL = binary.LittleEndian.Uint32(raw[offTTL:])
	n := int(raw[offParentCount])
	if n < MinParents || n > MaxParents {
		return nil, invalid(ErrParents, "parent count %d", n)
	}
	off := offParents
	if len(raw) < off+IDSize*n+afterParents+NonceSize {
		return nil, invalid(ErrMalformed, "truncated in parents")
	}
	b.Parents = make([]ID, n)
	for i := range n {
		copy(b.Parents[i][:], raw[off:off+IDSize])
		if i > 0 && bytes.Compare(b.Parents[i-1][:], b.Parents[i][:]) >= 0 {
			return nil, invalid(ErrParents, "parents not strictly ascending")
		}
		off += IDSize
	}
	copy(b.Tag[:], raw[off:off+TagSize])
	off += TagSize
	b.PayloadType = raw[off]
	off++
	l := binary.LittleEndian.Uint32(raw[off:])
	off += 4
	if uint64(off)+uint64(l)+NonceSize != uint64(len(raw)) {
		if uint64(off)+uint64(l)+NonceSize > uint64(len(raw)) {
			return nil, invalid(ErrMalformed, "payload length %d runs past the end", l)
		}
		return nil, invalid(ErrMalformed, "%d trailing bytes", uint64(len(raw))-uint64(off)-uint64(l)-NonceSize)
	}
	b.Payload = raw[off : off+int(l)]
	b.Nonce = binary.LittleEndian.Uint64(raw[len(raw)-NonceSize:])
	b.id = blake2b.Sum256(raw)
	return b, nil
}
