package tangle

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

// The test vectors of docs/protocol.md §9.3 (network ids) and §9.4 (block). Each vector is a fenced code
// block of `key = value` lines. The tests parse the document and check the code against it; with
// -update-vectors they first rewrite these two subsections from the code. Other packages rewrite other
// §9 subsections: run updates one package at a time (go test -p 1 ...), the file is shared.

var updateVectors = flag.Bool("update-vectors", false, "rewrite docs/protocol.md §9.3 and §9.4 from the code")

const protocolPath = "../../docs/protocol.md"

const (
	headingNetworks = "### 9.3 Network ids"
	headingBlock    = "### 9.4 Block"
)

// vector is one fenced block of `key = value` lines.
type vector map[string]string

func (v vector) str(t *testing.T, k string) string {
	t.Helper()
	s, ok := v[k]
	if !ok {
		t.Fatalf("vector has no %q", k)
	}
	return s
}

func (v vector) hex(t *testing.T, k string) []byte {
	t.Helper()
	s := v.str(t, k)
	if s != strings.ToLower(s) {
		t.Fatalf("%s: hex must be lower case", k)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return b
}

// hexN is hex with a required length in bytes.
func (v vector) hexN(t *testing.T, k string, n int) []byte {
	t.Helper()
	b := v.hex(t, k)
	if len(b) != n {
		t.Fatalf("%s: %d bytes, want %d", k, len(b), n)
	}
	return b
}

func (v vector) uint(t *testing.T, k string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(v.str(t, k), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return n
}

// readVectors parses the code blocks of the subsection heading in the protocol document.
func readVectors(t *testing.T, heading string) []vector {
	t.Helper()
	vs, err := protocoldoc.Read(protocolPath, heading)
	if err != nil {
		t.Fatalf("%v (run with -update-vectors)", err)
	}
	out := make([]vector, len(vs))
	for i, v := range vs {
		out[i] = vector(v.Vals)
	}
	return out
}

// vectorNetworks are the networks of protocol.md §1.
var vectorNetworks = []Params{MainNet, DevNet, BenchNet}

func networkVectorsBody() string {
	var b strings.Builder
	b.WriteString("`nid` is `H(name)[0:8]` (§1), where `name` is the network's name in ASCII.\n")
	for _, p := range vectorNetworks {
		fmt.Fprintf(&b, "\n```\nname = %s\nnid = %s\n```\n", p.Name, p.ID)
	}
	return b.String()
}

// TestProtocolVectorsNetworks checks protocol.md §9.3.
func TestProtocolVectorsNetworks(t *testing.T) {
	if *updateVectors {
		if err := protocoldoc.ReplaceSection(protocolPath, headingNetworks, networkVectorsBody(), "### 9.2 Sealed envelope"); err != nil {
			t.Fatal(err)
		}
	}
	vs := readVectors(t, headingNetworks)
	if len(vs) != len(vectorNetworks) {
		t.Fatalf("%d network vectors, want %d", len(vs), len(vectorNetworks))
	}
	for _, v := range vs {
		name := v.str(t, "name")
		want := v.hex(t, "nid")
		if id := NetworkIDOf(name); !bytes.Equal(id[:], want) {
			t.Errorf("%s: NetworkIDOf = %s, vector %x", name, id, want)
		}
		p, ok := NetworkByName(name)
		if !ok || !bytes.Equal(p.ID[:], want) {
			t.Errorf("%s: NetworkByName id %s (known %v), vector %x", name, p.ID, ok, want)
		}
	}
}

// vectorHeader is the fixed block of §9.4: DevNet, 2 parents, 64 bytes of sealed payload.
func vectorHeader() Header {
	h := Header{
		Network:     DevNet.ID,
		Time:        t0, // 2026-01-01T00:00:00Z
		TTL:         DevNet.DefaultChatTTL,
		Parents:     make([]ID, 2),
		Tag:         Tag{0xa5, 0x5a, 0x0f, 0xf0, 0x12, 0x34, 0x56, 0x78},
		PayloadType: PayloadSealed,
		Payload:     make([]byte, 64),
	}
	for i := range IDSize {
		h.Parents[0][i] = byte(i)        // 00 01 … 1f
		h.Parents[1][i] = byte(0xe0 + i) // e0 e1 … ff
	}
	for i := range h.Payload {
		h.Payload[i] = byte(i) // 00 01 … 3f
	}
	return h
}

func blockVectorBody(t *testing.T) string {
	h := vectorHeader()
	raw := encodeT(t, h)
	nonce := smallestValidNonce(&DevNet, raw)
	SetNonce(raw, nonce)
	d := PoWDigest(raw)
	w := DevNet.Work(len(raw), h.TTL)
	var in [40]byte
	copy(in[:], d[:])
	binary.LittleEndian.PutUint64(in[32:], nonce)
	hash := blake2b.Sum256(in[:])
	var b strings.Builder
	b.WriteString("One block of the devnet with fixed fields (issuing time 2026-01-01T00:00:00Z, parents `00…1f` and\n")
	b.WriteString("`e0…ff`, 64 payload bytes `00…3f`). `pow_digest` is `d`, `work` is `W` and `target` the target of §3\n")
	b.WriteString("(decimal), `nonce` is the smallest valid nonce counting from 0 (decimal), `pow_hash` is\n")
	b.WriteString("`H(d ‖ LE64(nonce))` and `score` its first 8 bytes as LE64 (decimal); `block` is the whole encoding\n")
	b.WriteString("and `id` the block id (§2).\n\n")
	fmt.Fprintf(&b, "```\nnetwork = %s\nnid = %s\nversion = %d\ntime = %d\nttl = %d\nparent_0 = %s\nparent_1 = %s\n",
		DevNet.Name, DevNet.ID, Version, h.Time, h.TTL, h.Parents[0], h.Parents[1])
	fmt.Fprintf(&b, "tag = %x\npayload_type = %d\npayload = %x\nsize = %d\n", h.Tag[:], h.PayloadType, h.Payload, len(raw))
	fmt.Fprintf(&b, "pow_digest = %x\nwork = %d\ntarget = %d\nnonce = %d\npow_hash = %x\nscore = %d\n",
		d[:], w, Target(w), nonce, hash[:], binary.LittleEndian.Uint64(hash[:8]))
	fmt.Fprintf(&b, "block = %x\nid = %x\n```\n", raw, blake2b.Sum256(raw))
	return b.String()
}

// TestProtocolVectorsBlock checks protocol.md §9.4: encoding, id, PoW digest, W, target, the nonce's
// validity and that it is the smallest valid one.
func TestProtocolVectorsBlock(t *testing.T) {
	if *updateVectors {
		if err := protocoldoc.ReplaceSection(protocolPath, headingBlock, blockVectorBody(t), headingNetworks); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range readVectors(t, headingBlock) {
		p, ok := NetworkByName(v.str(t, "network"))
		if !ok || !bytes.Equal(p.ID[:], v.hex(t, "nid")) {
			t.Fatalf("vector %d: unknown network or wrong nid", i)
		}
		want := v.hex(t, "block")
		nonce := v.uint(t, "nonce")

		// Encoding from the fields.
		h := Header{
			Network:     p.ID,
			Time:        int64(v.uint(t, "time")),
			TTL:         uint32(v.uint(t, "ttl")),
			Tag:         Tag(v.hexN(t, "tag", TagSize)),
			PayloadType: byte(v.uint(t, "payload_type")),
			Payload:     v.hex(t, "payload"),
		}
		for j := 0; ; j++ {
			k := fmt.Sprintf("parent_%d", j)
			if _, ok := v[k]; !ok {
				break
			}
			h.Parents = append(h.Parents, ID(v.hexN(t, k, IDSize)))
		}
		raw := encodeT(t, h)
		SetNonce(raw, nonce)
		if !bytes.Equal(raw, want) {
			t.Fatalf("vector %d: encoding\n got %x\nwant %x", i, raw, want)
		}
		if uint64(len(raw)) != v.uint(t, "size") || v.uint(t, "version") != Version {
			t.Fatalf("vector %d: size %d or version differs", i, len(raw))
		}

		// Decoding and id.
		b, err := p.Validate(want, time.UnixMilli(h.Time+1000))
		if err != nil {
			t.Fatalf("vector %d: Validate: %v", i, err)
		}
		if b.Nonce != nonce || b.TTL != h.TTL || b.Time != h.Time || !bytes.Equal(b.Payload, h.Payload) || len(b.Parents) != len(h.Parents) {
			t.Fatalf("vector %d: decoded fields differ: %+v", i, b)
		}
		id := b.ID()
		if !bytes.Equal(id[:], v.hex(t, "id")) {
			t.Fatalf("vector %d: id %s, want %s", i, id, v.str(t, "id"))
		}

		// Proof of work.
		d := PoWDigest(want)
		if !bytes.Equal(d[:], v.hex(t, "pow_digest")) {
			t.Fatalf("vector %d: pow_digest %x", i, d)
		}
		w := p.Work(len(want), h.TTL)
		if w != v.uint(t, "work") || Target(w) != v.uint(t, "target") {
			t.Fatalf("vector %d: work %d, target %d", i, w, Target(w))
		}
		var in [40]byte
		copy(in[:], d[:])
		binary.LittleEndian.PutUint64(in[32:], nonce)
		hash := blake2b.Sum256(in[:])
		score := PoWScore(&d, nonce)
		if !bytes.Equal(hash[:], v.hex(t, "pow_hash")) || score != v.uint(t, "score") || score > Target(w) {
			t.Fatalf("vector %d: pow_hash %x, score %d, target %d", i, hash, score, Target(w))
		}
		if err := p.CheckPoW(want); err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		for n := range nonce { // the vector claims the smallest valid nonce
			if PoWScore(&d, n) <= Target(w) {
				t.Fatalf("vector %d: nonce %d < %d is valid too", i, n, nonce)
			}
		}
		r := encodeT(t, h)
		if got, err := p.Grind(context.Background(), r); err != nil || got != nonce {
			t.Fatalf("vector %d: Grind found %d (%v), want %d", i, got, err, nonce)
		}
	}
}
