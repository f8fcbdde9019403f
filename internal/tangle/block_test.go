package tangle

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	maxPayload := MaxBlockSize - Overhead - IDSize*MaxParents
	tests := []struct {
		name     string
		parents  int
		payload  int
		wantSize int
	}{
		{"minimum block, empty payload", 1, 0, MinBlockSize},
		{"genesis child", 1, MinSealedPayload, 43 + 32 + 48},
		{"chat", 4, 300, 43 + 128 + 300},
		{"mail 4 KiB", 4, 4096, 43 + 128 + 4096},
		{"max parents, max size", MaxParents, maxPayload, MaxBlockSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := testHeader(&DevNet, tc.parents, tc.payload)
			if got := h.EncodedSize(); got != tc.wantSize {
				t.Fatalf("EncodedSize %d, want %d", got, tc.wantSize)
			}
			raw := encodeT(t, h)
			if len(raw) != tc.wantSize {
				t.Fatalf("encoded %d bytes, want %d", len(raw), tc.wantSize)
			}
			SetNonce(raw, 0x0102030405060708)
			if got := raw[len(raw)-8:]; !bytes.Equal(got, []byte{8, 7, 6, 5, 4, 3, 2, 1}) {
				t.Fatalf("nonce bytes %x, want little-endian", got)
			}
			b, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if b.Version != Version || b.Network != h.Network || b.Time != h.Time || b.TTL != h.TTL ||
				b.Tag != h.Tag || b.PayloadType != h.PayloadType || !bytes.Equal(b.Payload, h.Payload) ||
				!slices.Equal(b.Parents, h.Parents) || b.Nonce != 0x0102030405060708 {
				t.Fatalf("decoded %+v, want header %+v", b, h)
			}
			if b.ID() != blake2b.Sum256(raw) || b.Size() != len(raw) || &b.Raw[0] != &raw[0] {
				t.Fatal("id, size or Raw do not match the input bytes")
			}
			again := encodeT(t, b.Header())
			SetNonce(again, b.Nonce)
			if !bytes.Equal(again, raw) {
				t.Fatal("Header().Encode() + SetNonce differs from the decoded bytes")
			}
		})
	}
}

func TestEncodeSortsAndDeduplicatesParents(t *testing.T) {
	a, b, c := testParent(1), testParent(2), testParent(3)
	h := testHeader(&DevNet, 1, 64)
	h.Parents = []ID{c, a, b, a, c}
	if got, want := h.EncodedSize(), 43+3*32+64; got != want {
		t.Fatalf("EncodedSize %d, want %d", got, want)
	}
	blk, err := Decode(encodeT(t, h))
	if err != nil {
		t.Fatal(err)
	}
	want := []ID{a, b, c}
	slices.SortFunc(want, func(x, y ID) int { return bytes.Compare(x[:], y[:]) })
	if !slices.Equal(blk.Parents, want) {
		t.Fatalf("parents %v, want %v", blk.Parents, want)
	}
	if h.Parents[0] != c {
		t.Fatal("Encode modified the caller's parent slice")
	}
}

func TestEncodeRejects(t *testing.T) {
	nine := testHeader(&DevNet, 9, 64)
	dupNine := testHeader(&DevNet, 8, 64)
	dupNine.Parents = append(dupNine.Parents, dupNine.Parents[3]) // 9 ids, 8 distinct: fine
	tooBig := testHeader(&DevNet, 1, MaxBlockSize-Overhead-IDSize+1)
	tests := []struct {
		name string
		h    Header
		want error
	}{
		{"no parents", testHeader(&DevNet, 0, 64), ErrParents},
		{"nine parents", nine, ErrParents},
		{"nine ids, eight distinct", dupNine, nil},
		{"one byte too large", tooBig, ErrSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.h.Encode()
			wantErr(t, err, tc.want)
		})
	}
}

// TestDecodeRejects covers protocol.md §2 and §2.1 rules 1, 2 (version) and 4.
func TestDecodeRejects(t *testing.T) {
	valid := func() []byte { return encodeT(t, testHeader(&DevNet, 2, 64)) }
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"nil", nil, ErrSize},
		{"one byte below minimum", make([]byte, MinBlockSize-1), ErrSize},
		{"one byte above maximum", append(encodeT(t, testHeader(&DevNet, 8, MaxBlockSize-Overhead-8*IDSize)), 0), ErrSize},
		{"version 0", func() []byte { r := valid(); r[0] = 0; return r }(), ErrVersion},
		{"version 2", func() []byte { r := valid(); r[0] = 2; return r }(), ErrVersion},
		{"parent count 0", func() []byte { r := valid(); r[offParentCount] = 0; return r }(), ErrParents},
		{"parent count 9", func() []byte {
			r := encodeT(t, testHeader(&DevNet, 8, 100))
			r[offParentCount] = 9
			return r
		}(), ErrParents},
		{"parent count 255", func() []byte { r := valid(); r[offParentCount] = 255; return r }(), ErrParents},
		{"parents unsorted", func() []byte {
			r := valid()
			p0 := slices.Clone(r[offParents : offParents+IDSize])
			copy(r[offParents:], r[offParents+IDSize:offParents+2*IDSize])
			copy(r[offParents+IDSize:], p0)
			return r
		}(), ErrParents},
		{"parents duplicate", func() []byte {
			r := valid()
			copy(r[offParents+IDSize:], r[offParents:offParents+IDSize])
			return r
		}(), ErrParents},
		{"truncated in parents", func() []byte {
			r := encodeT(t, testHeader(&DevNet, 1, 100))
			r[offParentCount] = 8 // 43 + 8·32 > 43 + 32 + 100
			return r
		}(), ErrMalformed},
		{"truncated by one byte", func() []byte { r := valid(); return r[:len(r)-1] }(), ErrMalformed},
		{"truncated to the minimum size", func() []byte { r := valid(); return r[:MinBlockSize] }(), ErrMalformed},
		{"one trailing byte", append(valid(), 0), ErrMalformed},
		{"payload length one too small", func() []byte { r := valid(); return putU32(r, offLength(2), 63) }(), ErrMalformed},
		{"payload length one too large", func() []byte { r := valid(); return putU32(r, offLength(2), 65) }(), ErrMalformed},
		{"payload length 2^32-1", func() []byte { r := valid(); return putU32(r, offLength(2), math.MaxUint32) }(), ErrMalformed},
		{"payload length 2^31", func() []byte { r := valid(); return putU32(r, offLength(2), 1<<31) }(), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Decode(tc.raw)
			wantErr(t, err, tc.want)
			if b != nil {
				t.Fatal("a block was returned with the error")
			}
		})
	}
}

// TestDecodeLeavesFieldRules checks the split between Decode (structure) and Validate (everything):
// Decode accepts blocks that only break rules 2 (network), 3, 5 and 6.
func TestDecodeLeavesFieldRules(t *testing.T) {
	h := testHeader(&DevNet, 3, 10)
	h.Network = NetworkIDOf("elsewhere")
	h.TTL = 0
	h.Time = math.MaxInt64
	h.PayloadType = 0x7f
	if _, err := Decode(encodeT(t, h)); err != nil {
		t.Fatalf("Decode: %v", err)
	}
}

func TestNetworkIDs(t *testing.T) {
	for _, p := range []Params{MainNet, DevNet, BenchNet, ShortNet} {
		sum := blake2b.Sum256([]byte(p.Name))
		if !bytes.Equal(p.ID[:], sum[:8]) {
			t.Errorf("%s: id %s, want H(name)[0:8] = %x", p.Name, p.ID, sum[:8])
		}
		got, ok := NetworkByName(p.Name)
		if !ok || got.ID != p.ID {
			t.Errorf("NetworkByName(%q) = %v, %v", p.Name, got.ID, ok)
		}
	}
	if MainNet.ID == DevNet.ID || DevNet.ID == BenchNet.ID || MainNet.ID == BenchNet.ID {
		t.Fatal("network ids collide")
	}
	if _, ok := NetworkByName("tanglemail-nope"); ok {
		t.Fatal("unknown network found")
	}
}

// TestParamsMatchProtocol pins the values of protocol.md §1.
func TestParamsMatchProtocol(t *testing.T) {
	tests := []struct {
		p    Params
		name string
		b    uint64
	}{
		{MainNet, "tanglemail", 100},
		{DevNet, "tanglemail-dev", 100},
		{BenchNet, "tanglemail-bench", 0},
	}
	for _, tc := range tests {
		p := tc.p
		if p.Name != tc.name || p.WorkPerByte != tc.b || p.ExtraBytes != 1000 || p.ShardBits != 0 ||
			p.ClockSkew != 300_000*time.Millisecond || p.MaxParentAge != 600_000*time.Millisecond ||
			p.TipEligible != 60_000*time.Millisecond || p.DefaultMailTTL != 345_600 || p.DefaultChatTTL != 3_600 {
			t.Errorf("%s: %+v does not match protocol.md §1", tc.name, p)
		}
	}
	if s := ShortNet; s.Name != "tanglemail-test-short" || s.WorkPerByte != 100 || s.ExtraBytes != 1000 ||
		s.ShardBits != 0 || s.ClockSkew != DevNet.ClockSkew || s.MaxParentAge != DevNet.MaxParentAge ||
		s.TipEligible != DevNet.TipEligible || s.DefaultMailTTL != 60 || s.DefaultChatTTL != 60 ||
		s.ID == DevNet.ID || s.ID == MainNet.ID {
		t.Errorf("ShortNet: %+v does not match protocol.md §1", s)
	}
	if MaxBlockSize != 32768 || MinTTL != 60 || MaxTTL != 2_419_200 || MinBlockSize != 43+32 ||
		MinParents != 1 || MaxParents != 8 || MinSealedPayload != 48 {
		t.Fatal("wire constants do not match protocol.md §2")
	}
}

func TestTagShard(t *testing.T) {
	tag := Tag{0xa5, 0x5a, 0x0f, 0xf0, 0x12, 0x34, 0x56, 0x78}
	tests := []struct {
		bits int
		want uint32
	}{
		{-1, 0},
		{0, 0},
		{1, 1},
		{2, 2},
		{4, 0xa},
		{8, 0xa5},
		{12, 0xa55},
		{16, 0xa55a},
		{32, 0xa55a0ff0},
		{40, 0xa55a0ff0}, // clamped to 32
	}
	for _, tc := range tests {
		if got := tag.Shard(tc.bits); got != tc.want {
			t.Errorf("Shard(%d) = %#x, want %#x", tc.bits, got, tc.want)
		}
	}
	b := &Block{Tag: Tag{0x80}}
	if b.Shard(1) != 1 || b.Shard(0) != 0 || (&Block{Tag: Tag{0x7f, 0xff}}).Shard(1) != 0 {
		t.Fatal("Block.Shard does not use the tag's leading bits")
	}
}

func TestSortParents(t *testing.T) {
	var lo, mid, hi ID
	mid[0], hi[0] = 1, 2
	tests := []struct {
		in, want []ID
	}{
		{nil, []ID{}},
		{[]ID{hi, lo, mid}, []ID{lo, mid, hi}},
		{[]ID{mid, mid, lo, mid, lo}, []ID{lo, mid}},
	}
	for _, tc := range tests {
		if got := SortParents(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SortParents(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestBlockTimes(t *testing.T) {
	b := &Block{Time: t0, TTL: 60}
	if !b.IssuedAt().Equal(time.UnixMilli(t0)) || !b.ExpiresAt().Equal(time.UnixMilli(t0+60_000)) {
		t.Fatal("IssuedAt/ExpiresAt")
	}
	if b.Expired(time.UnixMilli(t0+59_999)) || !b.Expired(time.UnixMilli(t0+60_000)) {
		t.Fatal("a block expires exactly at issuing time + TTL (protocol.md §2.1 rule 5)")
	}
	far := &Block{Time: math.MaxInt64 - 10, TTL: MaxTTL}
	if far.ExpiresAtMs() != math.MaxInt64 || far.Expired(now0) {
		t.Fatal("ExpiresAtMs wrapped around instead of saturating")
	}
	if id := (ID{0xab, 0xcd, 0xef, 0x01, 0x23}); id.Short() != "abcdef01" || len(id.String()) != 64 {
		t.Fatal("ID formatting")
	}
}

// TestAddSat: the time windows saturate instead of wrapping at the int64 limits.
func TestAddSat(t *testing.T) {
	tests := []struct{ a, b, want int64 }{
		{1, 2, 3},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MaxInt64 - 1, 1, math.MaxInt64},
		{math.MinInt64, -1, math.MinInt64},
		{math.MinInt64, math.MaxInt64, -1},
		{-5, -5, -10},
	}
	for _, tc := range tests {
		if got := addSat(tc.a, tc.b); got != tc.want {
			t.Errorf("addSat(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSetNonceWritesLastEightBytes(t *testing.T) {
	raw := encodeT(t, testHeader(&DevNet, 1, 48))
	before := slices.Clone(raw)
	SetNonce(raw, math.MaxUint64)
	if !bytes.Equal(raw[:len(raw)-8], before[:len(raw)-8]) ||
		binary.LittleEndian.Uint64(raw[len(raw)-8:]) != math.MaxUint64 {
		t.Fatal("SetNonce touched more than the nonce")
	}
}
