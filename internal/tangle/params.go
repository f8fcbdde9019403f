package tangle

import (
	"encoding/binary"
	"math"
	"math/bits"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Params are a network's fixed parameters (protocol.md §1).
type Params struct {
	Name           string
	ID             NetworkID
	WorkPerByte    uint64 // B; 0 disables PoW (benchmark networks only)
	ExtraBytes     uint64 // E
	ShardBits      int    // s
	ClockSkew      time.Duration
	MaxParentAge   time.Duration
	TipEligible    time.Duration
	DefaultMailTTL uint32
	DefaultChatTTL uint32
}

func newParams(name string, workPerByte uint64) Params {
	return Params{
		Name:           name,
		ID:             NetworkIDOf(name),
		WorkPerByte:    workPerByte,
		ExtraBytes:     1000,
		ShardBits:      0,
		ClockSkew:      5 * time.Minute,
		MaxParentAge:   10 * time.Minute,
		TipEligible:    60 * time.Second,
		DefaultMailTTL: 4 * 24 * 3600,
		DefaultChatTTL: 3600,
	}
}

// The networks of protocol.md §1.
var (
	MainNet  = newParams("tanglemail", 100)
	DevNet   = newParams("tanglemail-dev", 100)
	BenchNet = newParams("tanglemail-bench", 0)
	// ShortNet is DevNet with 60 s default TTLs (the minimum), so that tests can keep a node off for
	// longer than a message's TTL in real time (storage nodes and light clients, protocol.md §1, §12).
	ShortNet = shortParams()
)

func shortParams() Params {
	p := newParams("tanglemail-test-short", 100)
	p.DefaultMailTTL, p.DefaultChatTTL = MinTTL, MinTTL
	return p
}

// NetworkByName returns the parameters of a known network.
func NetworkByName(name string) (Params, bool) {
	for _, p := range []Params{MainNet, DevNet, BenchNet, ShortNet} {
		if p.Name == name {
			return p, true
		}
	}
	return Params{}, false
}

// Work is W of protocol.md §3 for a block of size bytes (nonce included) and ttl seconds:
// floor(B · (size + E) · (65536 + TTL) / 65536), computed with a 128-bit intermediate. It saturates at
// 2^64−1 instead of overflowing, and is 0 (PoW disabled) when B = 0. A negative size counts as 0.
func (p *Params) Work(size int, ttl uint32) uint64 {
	if p.WorkPerByte == 0 {
		return 0
	}
	if size < 0 {
		size = 0
	}
	const sat = ^uint64(0)
	sz, carry := bits.Add64(uint64(size), p.ExtraBytes, 0)
	if carry != 0 {
		return sat
	}
	ahi, a := bits.Mul64(p.WorkPerByte, sz)
	if ahi != 0 { // B·(size+E) ≥ 2^64 and (65536+TTL)/65536 ≥ 1
		return sat
	}
	hi, lo := bits.Mul64(a, 65536+uint64(ttl))
	if hi >= 65536 { // quotient would not fit 64 bits
		return sat
	}
	q, _ := bits.Div64(hi, lo, 65536)
	return q
}

// Target is the PoW target for work w, floor((2^64−1)/w) (protocol.md §3): a nonce is valid when its
// score is ≤ target. w = 0 (PoW disabled) gives 2^64−1, which every score meets.
func Target(w uint64) uint64 {
	if w == 0 {
		return ^uint64(0)
	}
	return ^uint64(0) / w
}

// PoWDigest is d = H(block without its nonce) (protocol.md §3), the fixed part every nonce is hashed
// with. raw must be at least NonceSize bytes long.
func PoWDigest(raw []byte) [32]byte {
	return blake2b.Sum256(raw[:len(raw)-NonceSize])
}

// PoWScore is LE64(H(d ‖ LE64(nonce))[0:8]) (protocol.md §3); lower is better.
func PoWScore(digest *[32]byte, nonce uint64) uint64 {
	var buf [40]byte
	copy(buf[:32], digest[:])
	binary.LittleEndian.PutUint64(buf[32:], nonce)
	sum := blake2b.Sum256(buf[:])
	return binary.LittleEndian.Uint64(sum[:8])
}

// CheckPoW verifies the proof of work of an encoded block against the network's parameters
// (protocol.md §2.1 rule 3, §3): one hash of the block, one 40-byte hash.
// It reads only the TTL field and the length, so it can run before the block is decoded.
func (p *Params) CheckPoW(raw []byte) error {
	if len(raw) < MinBlockSize || len(raw) > MaxBlockSize {
		return invalid(ErrSize, "%d bytes", len(raw))
	}
	w := p.Work(len(raw), binary.LittleEndian.Uint32(raw[offTTL:]))
	if w == 0 {
		return nil
	}
	d := PoWDigest(raw)
	nonce := binary.LittleEndian.Uint64(raw[len(raw)-NonceSize:])
	if PoWScore(&d, nonce) > Target(w) {
		return invalid(ErrPoW, "work %d not met", w)
	}
	return nil
}

// Validate applies protocol.md §2.1 rules 1–6 to received bytes, in order, at time now, and returns
// the decoded block. Rules that involve parents are checked by CheckParent.
func (p *Params) Validate(raw []byte, now time.Time) (*Block, error) {
	if len(raw) < MinBlockSize || len(raw) > MaxBlockSize {
		return nil, invalid(ErrSize, "%d bytes, want %d..%d", len(raw), MinBlockSize, MaxBlockSize)
	}
	if raw[0] != Version {
		return nil, invalid(ErrVersion, "version %d", raw[0])
	}
	if NetworkID(raw[offNetworkID:offTime]) != p.ID {
		return nil, invalid(ErrNetwork, "network %x, want %s", raw[offNetworkID:offTime], p.ID)
	}
	if err := p.CheckPoW(raw); err != nil {
		return nil, err
	}
	b, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	if err := p.CheckFields(b, now); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckFields applies the field rules of protocol.md §2.1 rules 5–6 to a decoded block at time now.
func (p *Params) CheckFields(b *Block, now time.Time) error {
	if err := checkTTL(b.TTL); err != nil {
		return err
	}
	nowMs := now.UnixMilli()
	if b.Time > addSat(nowMs, p.ClockSkew.Milliseconds()) {
		return invalid(ErrTime, "issued at %d ms, more than %d ms after now (%d ms)", b.Time, p.ClockSkew.Milliseconds(), nowMs)
	}
	if b.Expired(now) {
		return invalid(ErrExpired, "expired at %s", b.ExpiresAt().UTC().Format(time.RFC3339))
	}
	return checkPayload(b.PayloadType, b.Payload)
}

// checkTTL is the TTL bound of protocol.md §2.1 rule 5.
func checkTTL(ttl uint32) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return invalid(ErrTTL, "TTL %d s, want %d..%d", ttl, MinTTL, MaxTTL)
	}
	return nil
}

// checkPayload is protocol.md §2.1 rule 6: a known payload type, well-formed at the outer level (§5, §6).
func checkPayload(typ byte, payload []byte) error {
	switch typ {
	case PayloadSealed:
		if len(payload) < MinSealedPayload {
			return invalid(ErrPayload, "sealed payload of %d bytes, want ≥ %d", len(payload), MinSealedPayload)
		}
	default:
		return invalid(ErrPayloadType, "type 0x%02x", typ)
	}
	return nil
}

// FreshEnough applies the gossip freshness window: a block pushed by gossip must have been issued within
// the clock skew of now, in either direction (protocol.md §2.1 rule 5). Blocks fetched by id or by
// catch-up skip this rule.
func (p *Params) FreshEnough(b *Block, now time.Time) error {
	nowMs, skew := now.UnixMilli(), p.ClockSkew.Milliseconds()
	if b.Time < addSat(nowMs, -skew) || b.Time > addSat(nowMs, skew) {
		return invalid(ErrTime, "issued at %d ms, outside now (%d ms) ± %d ms", b.Time, nowMs, skew)
	}
	return nil
}

// CheckParent applies the parent-age rule (protocol.md §2.1): a parent's issuing time lies within
// [child − MaxParentAge, child + ClockSkew], bounds included.
func (p *Params) CheckParent(child, parent *Block) error {
	if parent.Time < addSat(child.Time, -p.MaxParentAge.Milliseconds()) ||
		parent.Time > addSat(child.Time, p.ClockSkew.Milliseconds()) {
		return invalid(ErrParentAge, "parent %s issued at %d ms, child at %d ms", parent.ID().Short(), parent.Time, child.Time)
	}
	return nil
}

// addSat is a + b clamped to the int64 range, so time windows around extreme (attacker-chosen) issuing
// times cannot wrap around.
func addSat(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}
