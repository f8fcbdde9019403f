package tangle

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Seed corpora live in testdata/fuzz/FuzzDecode and testdata/fuzz/FuzzValidate (valid blocks,
// truncations, max parents, each rejection). Fuzz for real with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 60s ./internal/tangle

var sentinels = []error{
	ErrSize, ErrVersion, ErrNetwork, ErrPoW, ErrMalformed, ErrParents, ErrTTL, ErrTime, ErrExpired,
	ErrPayloadType, ErrPayload, ErrParentAge,
}

// checkRejection asserts that err is a *ValidationError wrapping exactly one sentinel.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v wraps %d sentinels, want 1", err, n)
	}
}

// checkDecoded asserts the codec invariants of a successfully decoded block: it is exactly the bytes
// its header re-encodes to plus its nonce (protocol.md §2), and its id is H(raw).
func checkDecoded(t *testing.T, raw []byte, b *Block) {
	t.Helper()
	if b == nil {
		t.Fatal("nil block without error")
	}
	if len(b.Parents) < MinParents || len(b.Parents) > MaxParents {
		t.Fatalf("%d parents accepted", len(b.Parents))
	}
	for i := 1; i < len(b.Parents); i++ {
		if bytes.Compare(b.Parents[i-1][:], b.Parents[i][:]) >= 0 {
			t.Fatal("parents not strictly ascending")
		}
	}
	h := b.Header()
	if h.EncodedSize() != len(raw) || b.Size() != len(raw) {
		t.Fatalf("EncodedSize %d, Size %d, input %d bytes", h.EncodedSize(), b.Size(), len(raw))
	}
	again, err := h.Encode()
	if err != nil {
		t.Fatalf("re-encoding a decoded block: %v", err)
	}
	SetNonce(again, b.Nonce)
	if !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, raw)
	}
	if b.ID() != blake2b.Sum256(raw) {
		t.Fatal("id is not H(raw)")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeT(f, testHeader(&DevNet, 1, 48)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := Decode(raw)
		if err != nil {
			checkRejection(t, err)
			if b != nil {
				t.Fatal("block returned with an error")
			}
			return
		}
		checkDecoded(t, raw, b)
	})
}

// fuzzNets are the networks FuzzValidate picks from: no PoW (so the later rules are reached), a cheap
// PoW (seeds carry ground nonces) and the real devnet.
var fuzzNets = []*Params{&BenchNet, &lowWork, &DevNet}

func FuzzValidate(f *testing.F) {
	f.Add(encodeT(f, testHeader(&BenchNet, 1, 48)), now0.UnixMilli(), byte(0))
	f.Fuzz(func(t *testing.T, raw []byte, nowMs int64, net byte) {
		p := fuzzNets[int(net)%len(fuzzNets)]
		now := time.UnixMilli(nowMs)
		b, err := p.Validate(raw, now)
		db, derr := Decode(raw)
		if err != nil {
			checkRejection(t, err)
			if b != nil {
				t.Fatal("block returned with an error")
			}
			// Once size, version, network and PoW pass, Validate fails exactly where Decode does.
			if derr != nil && len(raw) >= MinBlockSize && len(raw) <= MaxBlockSize && raw[0] == Version &&
				NetworkID(raw[offNetworkID:offTime]) == p.ID && p.CheckPoW(raw) == nil {
				for _, s := range sentinels {
					if errors.Is(derr, s) != errors.Is(err, s) {
						t.Fatalf("Validate: %v, Decode: %v", err, derr)
					}
				}
			}
			if derr == nil {
				_ = p.FreshEnough(db, now)
				_ = p.CheckParent(db, db)
				_ = db.Expired(now)
			}
			return
		}
		checkDecoded(t, raw, b)
		if derr != nil || db.ID() != b.ID() {
			t.Fatalf("Validate accepted what Decode rejects: %v", derr)
		}
		if b.Network != p.ID || p.CheckPoW(raw) != nil {
			t.Fatal("accepted a block of another network or without work")
		}
		if b.TTL < MinTTL || b.TTL > MaxTTL || b.PayloadType != PayloadSealed || len(b.Payload) < MinSealedPayload {
			t.Fatalf("accepted TTL %d, type %d, payload %d bytes", b.TTL, b.PayloadType, len(b.Payload))
		}
		if b.Time > addSat(now.UnixMilli(), p.ClockSkew.Milliseconds()) || b.ExpiresAtMs() <= now.UnixMilli() {
			t.Fatalf("accepted issuing time %d at now %d", b.Time, nowMs)
		}
		if err := p.CheckFields(b, now); err != nil {
			t.Fatalf("CheckFields after Validate: %v", err)
		}
		_ = p.FreshEnough(b, now)
	})
}
