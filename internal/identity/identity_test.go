package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// The derived X25519 private key and the Montgomery map of the Ed25519 public key are two halves of
// one key pair (protocol.md §8.2).
func TestX25519DerivationConsistent(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 50
	}
	base := [32]byte{9}
	for i := range n {
		id, err := Generate(i % (MaxTagBits + 1))
		if err != nil {
			t.Fatal(err)
		}
		xpriv := id.X25519PrivateKey().Bytes()
		pub, err := ecdhX25519(xpriv, base[:])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pub, id.X25519PublicKey().Bytes()) {
			t.Fatalf("seed %x: X25519(priv, 9) = %x, Montgomery(pub) = %x", id.Seed(), pub, id.X25519PublicKey().Bytes())
		}
		if !bytes.Equal(pub, id.X25519PrivateKey().PublicKey().Bytes()) {
			t.Fatal("ecdh public key disagrees")
		}
		fromAddr, err := id.Address().X25519PublicKey()
		if err != nil || !fromAddr.Equal(id.X25519PublicKey()) {
			t.Fatalf("address X25519 key differs: %v", err)
		}
		// A Diffie-Hellman with a fresh peer agrees both ways.
		peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
		s1, err1 := peer.ECDH(fromAddr)
		s2, err2 := id.X25519PrivateKey().ECDH(peer.PublicKey())
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
			t.Fatalf("ECDH disagreement: %v %v", err1, err2)
		}
	}
}

// ecdhX25519 is RFC 7748 §5 X25519(k, u) via crypto/ecdh.
func ecdhX25519(k, u []byte) ([]byte, error) {
	priv, err := ecdh.X25519().NewPrivateKey(k)
	if err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(u)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(u, append([]byte{9}, make([]byte, 31)...)) {
		return priv.PublicKey().Bytes(), nil
	}
	return priv.ECDH(pub)
}

// Cross-implementation check against libsodium's crypto_sign_ed25519_{sk,pk}_to_curve25519 test
// (test/default/ed25519_convert.c).
func TestX25519LibsodiumVector(t *testing.T) {
	seed := mustHex(t, "421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee")
	id, err := FromSeed(seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(id.X25519PrivateKey().Bytes()), "8052030376d47112be7f73ed7a019293dd12ad910b654455798b4667d73de166"; got != want {
		t.Errorf("x25519 private = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(id.X25519PublicKey().Bytes()), "f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50"; got != want {
		t.Errorf("x25519 public = %s, want %s", got, want)
	}
}

func TestFromSeed(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, SeedSize)
	a, err := FromSeed(seed, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FromSeed(seed, 5)
	if !a.Address().Equal(b.Address()) || !bytes.Equal(a.Seed(), seed) {
		t.Fatal("FromSeed is not deterministic")
	}
	seed[0] = 99 // the identity kept its own copy
	if bytes.Equal(a.Seed(), seed) {
		t.Fatal("FromSeed aliases the caller's seed")
	}
	if !ed25519.Verify(a.PublicKey(), []byte("m"), a.Sign([]byte("m"))) {
		t.Fatal("signature does not verify")
	}
	for _, k := range []int{-1, 17, 100} {
		if _, err := FromSeed(seed, k); !errors.Is(err, ErrTagBits) {
			t.Errorf("tag bits %d: err = %v", k, err)
		}
		if _, err := Generate(k); !errors.Is(err, ErrTagBits) {
			t.Errorf("Generate(%d): err = %v", k, err)
		}
	}
	if _, err := FromSeed(seed[:31], 0); err == nil {
		t.Error("short seed accepted")
	}
	// Mutating returned keys must not affect the identity.
	pk := a.PublicKey()
	pk[0] ^= 1
	ad := a.Address()
	ad.Key[1] ^= 1
	if !a.Address().Equal(b.Address()) {
		t.Fatal("identity exposes its internal key slice")
	}
}

func TestIdentityPrintsNoSecrets(t *testing.T) {
	id, _ := Generate(8)
	seedHex := hex.EncodeToString(id.Seed())
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(f, id)
		if strings.Contains(out, seedHex) || strings.Contains(out, seedHex[:16]) {
			t.Errorf("%s prints the seed: %s", f, out)
		}
		if !strings.Contains(out, id.Address().String()) && f != "%x" {
			t.Errorf("%s = %q, want the address", f, out)
		}
	}
}

func TestTags(t *testing.T) {
	for k := 0; k <= MaxTagBits; k++ {
		id, err := Generate(k)
		if err != nil {
			t.Fatal(err)
		}
		addr := id.Address()
		tk := id.TagKey()
		if tk != TagKey(id.PublicKey()) || tk != addr.TagKey() {
			t.Fatal("tag keys disagree")
		}
		prefix := binary.BigEndian.Uint64(tk[:8])
		seen := map[uint64]bool{}
		for range 64 {
			tag := addr.MakeTag(nil)
			v := binary.BigEndian.Uint64(tag[:])
			if (v^prefix)&tagMask(k) != 0 {
				t.Fatalf("k=%d: tag %x does not carry the tag key prefix %x", k, tag, tk[:8])
			}
			if !id.MatchTag(tag) {
				t.Fatalf("k=%d: own tag %x does not match", k, tag)
			}
			seen[v&^tagMask(k)] = true
			// Flipping any of the first k bits breaks the match; later bits don't matter.
			for bit := range 64 {
				flipped := v ^ (1 << (63 - uint(bit)))
				var ft [8]byte
				binary.BigEndian.PutUint64(ft[:], flipped)
				if got, want := id.MatchTag(ft), bit >= k; got != want {
					t.Fatalf("k=%d bit %d: MatchTag = %v", k, bit, got)
				}
			}
		}
		if len(seen) < 60 {
			t.Fatalf("k=%d: random tag bits look constant (%d distinct of 64)", k, len(seen))
		}
	}
	// With k = 0 every tag matches.
	id, _ := Generate(0)
	if !id.MatchTag([8]byte{}) || !id.MatchTag([8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Fatal("k=0 must match everything")
	}
	// Deterministic reader: bits [k,64) are the reader's.
	id16, _ := Generate(16)
	tag := id16.Address().MakeTag(bytes.NewReader(bytes.Repeat([]byte{0xa5}, 8)))
	if tag[2] != 0xa5 || tag[7] != 0xa5 {
		t.Fatalf("random bits not from the reader: %x", tag)
	}
}

func TestMakeTagFailingReaderPanics(t *testing.T) {
	id, _ := Generate(4)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on a failing reader")
		}
	}()
	id.Address().MakeTag(bytes.NewReader([]byte{1, 2, 3}))
}

func BenchmarkMatchTag(b *testing.B) {
	id, _ := Generate(8)
	tag := id.Address().MakeTag(nil)
	n := 0
	for b.Loop() {
		if id.MatchTag(tag) {
			n++
		}
	}
	_ = n
}

func BenchmarkAddressValidate(b *testing.B) {
	id, _ := Generate(8)
	a := id.Address()
	for b.Loop() {
		if err := a.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// smallOrderY must be exactly the y-coordinates of the torsion subgroup E[8], and the fast checks of
// CheckSignerKey must agree with a full decode for every encoding near the special values.
func TestSmallOrderList(t *testing.T) {
	// An order-8 point: decode the list's candidates and keep one with [4]P ≠ O.
	var t8 *edwards25519.Point
	for _, y := range smallOrderY {
		p, err := new(edwards25519.Point).SetBytes(y[:])
		if err != nil {
			t.Fatalf("%x is not on the curve", y)
		}
		if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) != 1 {
			t.Fatalf("%x is not of small order", y)
		}
		four := new(edwards25519.Point).Add(p, p)
		four.Add(four, four)
		if four.Equal(edwards25519.NewIdentityPoint()) != 1 {
			t8 = p
		}
	}
	if t8 == nil {
		t.Fatal("no order-8 point in the list")
	}
	want := map[[32]byte]bool{}
	acc := edwards25519.NewIdentityPoint()
	for range 8 {
		var y [32]byte
		copy(y[:], acc.Bytes())
		y[31] &= 0x7f
		want[y] = true
		acc = new(edwards25519.Point).Add(acc, t8)
	}
	got := map[[32]byte]bool{}
	for _, y := range smallOrderY {
		got[y] = true
	}
	if len(got) != len(want) {
		t.Fatalf("list has %d distinct y, torsion subgroup %d", len(got), len(want))
	}
	for y := range want {
		if !got[y] {
			t.Fatalf("torsion y %x missing from the list", y)
		}
		for _, sign := range []byte{0, 0x80} {
			k := y
			k[31] |= sign
			if CheckSignerKey(k[:]) == nil {
				t.Fatalf("%x accepted", k)
			}
		}
	}
	// Non-canonical encodings y + p for y < 19, both signs: rejected by CheckSignerKey; SetBytes may
	// accept them, and the round trip through Bytes changes them.
	for y := range 19 {
		for _, sign := range []byte{0, 0x80} {
			k := bytes.Repeat([]byte{0xff}, 32)
			k[0] = byte(0xed + y)
			k[31] = 0x7f | sign
			if err := CheckSignerKey(k); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("y+p=%x accepted", k)
			}
		}
	}
	// The largest canonical y, p − 1 with sign, is small order; p − 2 is canonical and passes the
	// fast checks.
	k := bytes.Repeat([]byte{0xff}, 32)
	k[0], k[31] = 0xeb, 0x7f
	if err := CheckSignerKey(k); err != nil {
		t.Fatalf("p-2 rejected by the fast check: %v", err)
	}
	// Random real keys pass, and the fast check agrees with a full round-trip decode on random bytes.
	for range 2000 {
		var r [32]byte
		rand.Read(r[:])
		p, err := new(edwards25519.Point).SetBytes(r[:])
		full := err == nil && bytes.Equal(p.Bytes(), r[:]) &&
			new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0
		_, derr := decodePoint(r[:])
		if full != (derr == nil) {
			t.Fatalf("%x: full decode says %v, decodePoint %v", r, full, derr)
		}
	}
}
