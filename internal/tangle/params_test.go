package tangle

import (
	"encoding/binary"
	"math"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// refWork is protocol.md §3's W in arbitrary precision, saturated at 2^64−1.
func refWork(b, e uint64, size int, ttl uint32) uint64 {
	if b == 0 {
		return 0
	}
	w := new(big.Int).SetUint64(b)
	w.Mul(w, new(big.Int).Add(big.NewInt(int64(max(size, 0))), new(big.Int).SetUint64(e)))
	w.Mul(w, big.NewInt(65536+int64(ttl)))
	w.Rsh(w, 16)
	if !w.IsUint64() {
		return math.MaxUint64
	}
	return w.Uint64()
}

func TestWork(t *testing.T) {
	withB := func(b uint64) Params { p := MainNet; p.WorkPerByte = b; return p }
	withE := func(e uint64) Params { p := MainNet; p.ExtraBytes = e; return p }
	tests := []struct {
		name string
		p    Params
		size int
		ttl  uint32
		want uint64
	}{
		// The benchmark blocks and the reference rows of protocol.md §3.
		{"chat bench block (471 B, 1 h)", MainNet, 471, 3600, 155_180},
		{"mail bench block (4267 B, 4 d)", MainNet, 4267, 345_600, 3_304_219},
		{"§3 chat row (650 B, 1 h)", MainNet, 650, 3600, 174_063},
		{"§3 mail row (4.5 KiB, 4 d)", MainNet, 4608, 345_600, 3_518_143},
		{"§3 max row (32768 B, 28 d)", MainNet, 32768, MaxTTL, 128_028_206},
		{"size 0, TTL 0: B·E", MainNet, 0, 0, 100_000},
		{"negative size counts as 0", MainNet, -5, 0, 100_000},
		{"devnet equals mainnet", DevNet, 4267, 345_600, 3_304_219},
		{"B = 0 disables PoW", BenchNet, 32768, MaxTTL, 0},
		{"B = 0, TTL max", withB(0), 32768, math.MaxUint32, 0},
		{"B = 1", withB(1), 1000, 65536, 4000},
		{"TTL 2^32-1", MainNet, 32768, math.MaxUint32, refWork(100, 1000, 32768, math.MaxUint32)},
		{"large B, still fits", withB(1 << 20), 32768, MaxTTL, refWork(1<<20, 1000, 32768, MaxTTL)},
		{"B·(size+E) overflows 64 bits", withB(1 << 60), 32, 0, math.MaxUint64},
		{"quotient overflows 64 bits", withB(1 << 40), 32768, math.MaxUint32, math.MaxUint64},
		{"B = 2^64-1", withB(math.MaxUint64), 75, 60, math.MaxUint64},
		{"size + E overflows", withE(math.MaxUint64), 32768, 60, math.MaxUint64},
		{"just below saturation", withB(1 << 48), 65535 - 1000, 0, 65535 << 48},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Work(tc.size, tc.ttl)
			if got != tc.want {
				t.Fatalf("Work(%d, %d) = %d, want %d", tc.size, tc.ttl, got, tc.want)
			}
			if ref := refWork(tc.p.WorkPerByte, tc.p.ExtraBytes, tc.size, tc.ttl); got != ref {
				t.Fatalf("Work(%d, %d) = %d, reference %d", tc.size, tc.ttl, got, ref)
			}
		})
	}
}

// TestWorkMatchesReference sweeps sizes, TTLs and work factors against the big-integer formula.
func TestWorkMatchesReference(t *testing.T) {
	for _, b := range []uint64{0, 1, 3, 100, 12345, 1 << 32, 1<<47 + 1, 1 << 48, 1<<49 - 1, 1 << 63, math.MaxUint64} {
		for _, size := range []int{0, 1, 75, 471, 4267, 32767, 32768, 1 << 30} {
			for _, ttl := range []uint32{0, 59, 60, 3600, 345_600, MaxTTL, MaxTTL + 1, math.MaxUint32} {
				p := MainNet
				p.WorkPerByte = b
				if got, want := p.Work(size, ttl), refWork(b, p.ExtraBytes, size, ttl); got != want {
					t.Errorf("B=%d size=%d ttl=%d: Work %d, want %d", b, size, ttl, got, want)
				}
			}
		}
	}
}

func TestTarget(t *testing.T) {
	tests := []struct{ w, want uint64 }{
		{0, math.MaxUint64}, // PoW disabled: every score passes
		{1, math.MaxUint64},
		{2, math.MaxUint64 / 2},
		{3, 0x5555555555555555},
		{155_180, math.MaxUint64 / 155_180},
		{math.MaxUint64 - 1, 1},
		{math.MaxUint64, 1},
	}
	for _, tc := range tests {
		if got := Target(tc.w); got != tc.want {
			t.Errorf("Target(%d) = %#x, want %#x", tc.w, got, tc.want)
		}
	}
	// floor((2^64−1)/W): target·W ≤ 2^64−1 < (target+1)·W.
	max := new(big.Int).SetUint64(math.MaxUint64)
	for _, w := range []uint64{1, 7, 100_000, 3_304_219, 1 << 40, math.MaxUint64 / 3} {
		tg := Target(w)
		lo := new(big.Int).Mul(new(big.Int).SetUint64(tg), new(big.Int).SetUint64(w))
		hi := new(big.Int).Add(new(big.Int).SetUint64(tg), big.NewInt(1))
		hi.Mul(hi, new(big.Int).SetUint64(w))
		if lo.Cmp(max) > 0 || hi.Cmp(max) <= 0 {
			t.Errorf("Target(%d) = %d is not floor((2^64-1)/W)", w, tg)
		}
	}
}

func TestPoWDigestAndScore(t *testing.T) {
	raw := encodeT(t, testHeader(&DevNet, 2, 64))
	SetNonce(raw, 42)
	d := PoWDigest(raw)
	if d != blake2b.Sum256(raw[:len(raw)-8]) {
		t.Fatal("d is not H(block without its nonce)")
	}
	var in [40]byte
	copy(in[:], d[:])
	in[32] = 42
	sum := blake2b.Sum256(in[:])
	if got := PoWScore(&d, 42); got != binary.LittleEndian.Uint64(sum[:8]) {
		t.Fatalf("PoWScore %#x, want LE64(H(d ‖ LE64(42))[0:8])", got)
	}
}

func TestCheckPoW(t *testing.T) {
	raw := encodeT(t, testHeader(&lowWork, 2, 64))
	n := smallestValidNonce(&lowWork, raw)
	SetNonce(raw, n)
	if err := lowWork.CheckPoW(raw); err != nil {
		t.Fatalf("smallest valid nonce %d: %v", n, err)
	}
	d, target := PoWDigest(raw), Target(lowWork.Work(len(raw), lowWork.DefaultChatTTL))
	bad := uint64(0)
	for PoWScore(&d, bad) <= target {
		bad++
	}
	SetNonce(raw, bad)
	wantErr(t, lowWork.CheckPoW(raw), ErrPoW)
	if err := BenchNet.CheckPoW(raw); err != nil {
		t.Fatalf("B = 0 must accept any nonce: %v", err)
	}
	wantErr(t, lowWork.CheckPoW(raw[:MinBlockSize-1]), ErrSize)
	wantErr(t, lowWork.CheckPoW(make([]byte, MaxBlockSize+1)), ErrSize)

	// The PoW covers every byte but the nonce, and W depends on the TTL field.
	SetNonce(raw, n)
	for _, off := range []int{0, offTTL, offParents, len(raw) - 9} {
		raw[off] ^= 1
		if lowWork.CheckPoW(raw) == nil {
			t.Errorf("flipping byte %d kept the PoW valid (possible but unlikely for fixed data)", off)
		}
		raw[off] ^= 1
	}
}

// validateCase is a received block and the sentinel Validate must return (nil: accepted).
type validateCase struct {
	name string
	p    *Params
	raw  []byte
	now  time.Time
	want error
}

// TestValidateRejects covers every rule of protocol.md §2.1 with its sentinel, and the accepting side
// of each bound. BenchNet (B = 0) keeps the PoW out of the way except in the PoW cases.
func TestValidateRejects(t *testing.T) {
	bench := &BenchNet
	h := func(mod func(*Header)) []byte {
		hh := testHeader(bench, 2, 64)
		if mod != nil {
			mod(&hh)
		}
		return encodeT(t, hh)
	}
	mut := func(mod func([]byte) []byte) []byte { return mod(h(nil)) }
	nowMs := now0.UnixMilli()
	lowRaw := encodeT(t, testHeader(&lowWork, 2, 64))
	lowValid := append([]byte(nil), lowRaw...)
	SetNonce(lowValid, smallestValidNonce(&lowWork, lowValid))

	tests := []validateCase{
		{"valid", bench, h(nil), now0, nil},
		{"valid with PoW", &lowWork, lowValid, now0, nil},
		// Rule 1: size.
		{"empty", bench, nil, now0, ErrSize},
		{"below minimum", bench, make([]byte, MinBlockSize-1), now0, ErrSize},
		{"above maximum", bench, make([]byte, MaxBlockSize+1), now0, ErrSize},
		{"at maximum", bench, h(func(x *Header) { x.Payload = make([]byte, MaxBlockSize-Overhead-2*IDSize) }), now0, nil},
		// Rule 2: version, network.
		{"version 2", bench, mut(func(r []byte) []byte { r[0] = 2; return r }), now0, ErrVersion},
		{"other network", bench, h(func(x *Header) { x.Network = MainNet.ID }), now0, ErrNetwork},
		// Rule 3: PoW.
		{"nonce not ground", &lowWork, lowRaw, now0, ErrPoW}, // nonce 0 is not valid for this block
		{"PoW of another TTL", &lowWork, putU32(append([]byte(nil), lowValid...), offTTL, 3601), now0, ErrPoW},
		// Rule 4: structure.
		{"parent count 0", bench, mut(func(r []byte) []byte { r[offParentCount] = 0; return r }), now0, ErrParents},
		{"parent count 8", bench, h(func(x *Header) { x.Parents = testHeader(bench, 8, 0).Parents }), now0, nil},
		{"parent count 9 (byte)", bench, func() []byte {
			r := encodeT(t, testHeader(bench, 8, 64))
			r[offParentCount] = 9
			return r
		}(), now0, ErrParents},
		{"parents unsorted", bench, mut(func(r []byte) []byte {
			r[offParents], r[offParents+IDSize] = 0xff, 0x00
			return r
		}), now0, ErrParents},
		{"parents duplicate", bench, mut(func(r []byte) []byte {
			copy(r[offParents+IDSize:offParents+2*IDSize], r[offParents:])
			return r
		}), now0, ErrParents},
		{"truncated", bench, mut(func(r []byte) []byte { return r[:len(r)-3] }), now0, ErrMalformed},
		{"trailing bytes", bench, mut(func(r []byte) []byte { return append(r, 0, 0) }), now0, ErrMalformed},
		{"payload length overflow", bench, mut(func(r []byte) []byte { return putU32(r, offLength(2), math.MaxUint32) }), now0, ErrMalformed},
		// Rule 5: TTL, time.
		{"TTL 59", bench, h(func(x *Header) { x.TTL = MinTTL - 1 }), now0, ErrTTL},
		{"TTL 60", bench, h(func(x *Header) { x.TTL = MinTTL }), now0, nil},
		{"TTL max", bench, h(func(x *Header) { x.TTL = MaxTTL }), now0, nil},
		{"TTL max+1", bench, h(func(x *Header) { x.TTL = MaxTTL + 1 }), now0, ErrTTL},
		{"TTL 0", bench, h(func(x *Header) { x.TTL = 0 }), now0, ErrTTL},
		{"issued 300 s ahead", bench, h(func(x *Header) { x.Time = nowMs + 300_000 }), now0, nil},
		{"issued 300.001 s ahead", bench, h(func(x *Header) { x.Time = nowMs + 300_001 }), now0, ErrTime},
		{"issued at the end of time", bench, h(func(x *Header) { x.Time = math.MaxInt64 }), now0, ErrTime},
		{"expired exactly now", bench, h(func(x *Header) { x.Time, x.TTL = nowMs-60_000, 60 }), now0, ErrExpired},
		{"expires in 1 ms", bench, h(func(x *Header) { x.Time, x.TTL = nowMs-59_999, 60 }), now0, nil},
		{"old but alive (fetched by id)", bench, h(func(x *Header) { x.Time, x.TTL = nowMs-27*86_400_000, MaxTTL }), now0, nil},
		{"negative issuing time", bench, h(func(x *Header) { x.Time = math.MinInt64 }), now0, ErrExpired},
		// Rule 6: payload.
		{"payload type 0", bench, h(func(x *Header) { x.PayloadType = 0 }), now0, ErrPayloadType},
		{"payload type 2", bench, h(func(x *Header) { x.PayloadType = 2 }), now0, ErrPayloadType},
		{"payload type 0xff", bench, h(func(x *Header) { x.PayloadType = 0xff }), now0, ErrPayloadType},
		{"sealed payload 47 bytes", bench, h(func(x *Header) { x.Payload = x.Payload[:47] }), now0, ErrPayload},
		{"sealed payload 48 bytes", bench, h(func(x *Header) { x.Payload = x.Payload[:48] }), now0, nil},
		{"sealed payload empty", bench, h(func(x *Header) { x.Payload = nil }), now0, ErrPayload},
	}
	runValidate(t, tests)
}

// TestValidateOrder: the first failing rule of protocol.md §2.1 wins; in particular the PoW is checked
// before the block is parsed, so a malformed block without work is a PoW failure.
func TestValidateOrder(t *testing.T) {
	raw := func(mod func(*Header), rmod func([]byte)) []byte {
		hh := testHeader(&lowWork, 2, 64)
		if mod != nil {
			mod(&hh)
		}
		r := encodeT(t, hh)
		if rmod != nil {
			rmod(r)
		}
		return r
	}
	ground := func(r []byte) []byte { SetNonce(r, smallestValidNonce(&lowWork, r)); return r }
	unsorted := func(r []byte) { r[offParents], r[offParents+IDSize] = 0xff, 0 }
	tests := []validateCase{
		{"version before network", &lowWork, raw(func(h *Header) { h.Network = MainNet.ID }, func(r []byte) { r[0] = 9 }), now0, ErrVersion},
		{"network before PoW", &lowWork, raw(func(h *Header) { h.Network = MainNet.ID }, nil), now0, ErrNetwork},
		{"PoW before structure", &lowWork, raw(nil, unsorted), now0, ErrPoW},
		{"PoW before TTL", &lowWork, raw(func(h *Header) { h.TTL = 1 }, nil), now0, ErrPoW},
		{"PoW before payload type", &lowWork, raw(func(h *Header) { h.PayloadType = 9 }, nil), now0, ErrPoW},
		{"structure after PoW", &lowWork, ground(raw(nil, unsorted)), now0, ErrParents},
		{"TTL before time", &lowWork, ground(raw(func(h *Header) { h.TTL = 1; h.Time = math.MaxInt64 }, nil)), now0, ErrTTL},
		{"future before payload", &lowWork, ground(raw(func(h *Header) { h.Time = math.MaxInt64; h.PayloadType = 9 }, nil)), now0, ErrTime},
		{"expiry before payload", &lowWork, ground(raw(func(h *Header) { h.Time = 0; h.Payload = nil }, nil)), now0, ErrExpired},
	}
	runValidate(t, tests)
}

func runValidate(t *testing.T, tests []validateCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.Validate(tc.raw, tc.now)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if b != nil {
					t.Fatal("a block was returned with the error")
				}
				return
			}
			if b == nil || b.ID() != blake2b.Sum256(tc.raw) {
				t.Fatal("accepted block missing or with the wrong id")
			}
		})
	}
}

func TestFreshEnough(t *testing.T) {
	nowMs := now0.UnixMilli()
	tests := []struct {
		name string
		time int64
		want error
	}{
		{"now", nowMs, nil},
		{"300 s ago", nowMs - 300_000, nil},
		{"300.001 s ago", nowMs - 300_001, ErrTime},
		{"300 s ahead", nowMs + 300_000, nil},
		{"300.001 s ahead", nowMs + 300_001, ErrTime},
		{"a day ago", nowMs - 86_400_000, ErrTime},
		{"2^63 ms ago (would wrap)", nowMs + math.MinInt64, ErrTime},
		{"min int64", math.MinInt64, ErrTime},
		{"max int64", math.MaxInt64, ErrTime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, DevNet.FreshEnough(&Block{Time: tc.time}, now0), tc.want)
		})
	}
}

func TestCheckParent(t *testing.T) {
	tests := []struct {
		name          string
		child, parent int64
		want          error
	}{
		{"same time", t0, t0, nil},
		{"600 s older", t0, t0 - 600_000, nil},
		{"600.001 s older", t0, t0 - 600_001, ErrParentAge},
		{"300 s newer", t0, t0 + 300_000, nil},
		{"300.001 s newer", t0, t0 + 300_001, ErrParentAge},
		{"parent at min int64 (would wrap)", 0, math.MinInt64, ErrParentAge},
		{"child max, parent min", math.MaxInt64, math.MinInt64, ErrParentAge},
		{"child min, parent max", math.MinInt64, math.MaxInt64, ErrParentAge},
		{"both at max int64", math.MaxInt64, math.MaxInt64, nil},
		{"both at min int64", math.MinInt64, math.MinInt64, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, DevNet.CheckParent(&Block{Time: tc.child}, &Block{Time: tc.parent}), tc.want)
		})
	}
}
