package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// The fast exchanger must agree with crypto/ecdh on every key pair, and reject low-order points as
// crypto/ecdh does.
func TestFastX25519MatchesStdlib(t *testing.T) {
	for i := range 200 {
		id, err := identity.Generate(i % 17)
		if err != nil {
			t.Fatal(err)
		}
		fast := newFastX25519(id)
		if !fast.PublicKey().Equal(id.X25519PublicKey()) {
			t.Fatal("public key differs")
		}
		eph, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		want, err := id.X25519PrivateKey().ECDH(eph.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		got, err := fast.ECDH(eph.PublicKey())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("shared secret differs: %x vs %x (%v)", got, want, err)
		}
	}
	id, _ := identity.Generate(8)
	fast := newFastX25519(id)
	// u = 0 and u = 1 are low-order points: the shared secret would be all zeros.
	for _, u := range [][]byte{make([]byte, 32), append([]byte{1}, make([]byte, 31)...)} {
		pub, err := ecdh.X25519().NewPublicKey(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fast.ECDH(pub); !errors.Is(err, errLowOrder) {
			t.Fatalf("low-order point %x accepted: %v", u, err)
		}
		if _, err := id.X25519PrivateKey().ECDH(pub); err == nil {
			t.Fatal("stdlib accepted a low-order point; the test's premise is wrong")
		}
	}
}
