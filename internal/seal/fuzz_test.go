package seal

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Fixed identities, so the committed corpus (testdata/fuzz/FuzzOpen) holds envelopes sealed to fuzzRcpt.
func fuzzIDs(t testing.TB) (sender, rcpt *identity.Identity) {
	s, err := identity.FromSeed(bytes.Repeat([]byte{1}, 32), 8)
	if err != nil {
		t.Fatal(err)
	}
	r, err := identity.FromSeed(bytes.Repeat([]byte{2}, 32), 0)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// FuzzOpen feeds arbitrary payloads to Open, and arbitrary plaintexts to the parser behind the AEAD
// (which random payloads cannot reach). Neither may panic, and whatever opens must be well-formed.
func FuzzOpen(f *testing.F) {
	sender, rcpt := fuzzIDs(f)
	valid, err := Seal(sender, rcpt.Address(), testNet, KindChat, time.UnixMilli(1_700_000_000_000), []byte("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte{})
	f.Add(valid[:len(valid)-1], []byte{})
	f.Add([]byte{}, buildPT(sender, rcpt.Address(), []byte("fuzz"), 256))
	o, err := NewOpener(rcpt)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload, pt []byte) {
		check := func(m *Message, err error) {
			if err == nil {
				if m == nil || !m.Kind.Valid() || len(m.Content) > MaxContent || m.Sender.Validate() != nil {
					t.Fatalf("opened a bad message: %+v", m)
				}
				return
			}
			n := 0
			for _, e := range allErrs {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d Open errors", err, n)
			}
		}
		check(o.Open(testNet, [8]byte{}, payload))
		var enc [EncSize]byte
		m, err := o.parse(testNet, enc[:], pt)
		check(m, err)
		if err == nil && !bytes.Equal(m.Sender.Key, sender.PublicKey()) {
			// Only the fixed sender can sign; anything else that parses is a forgery.
			t.Fatalf("plaintext from %v verified", m.Sender)
		}
	})
}
