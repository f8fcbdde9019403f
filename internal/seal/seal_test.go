package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"golang.org/x/crypto/blake2b"
)

// testNet is the network id of tanglemail-dev: BLAKE2b-256(name)[0:8] (protocol.md §1).
var testNet = networkID("tanglemail-dev")

func networkID(name string) [8]byte {
	h := blake2b.Sum256([]byte(name))
	var n [8]byte
	copy(n[:], h[:8])
	return n
}

func mustID(t testing.TB, k int) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustOpener(t testing.TB, id *identity.Identity) *Opener {
	t.Helper()
	o, err := NewOpener(id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

var allErrs = []error{ErrTagMismatch, ErrNotForUs, ErrMalformed, ErrBadSignature}

// checkOneErr asserts err wraps want and none of the other Open errors.
func checkOneErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
	for _, e := range allErrs {
		if e != want && errors.Is(err, e) {
			t.Fatalf("%s: err %v also matches %v", what, err, e)
		}
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	sender, rcpt := mustID(t, 5), mustID(t, 12)
	o := mustOpener(t, rcpt)
	sent := time.UnixMilli(1_760_000_000_123)
	for _, kind := range []Kind{KindMail, KindChat, KindReceipt, KindChunk} {
		for _, n := range []int{0, 1, 145, 146, 1000, MaxContent} {
			content := bytes.Repeat([]byte{byte(kind)}, n)
			payload, err := Seal(sender, rcpt.Address(), testNet, kind, sent, content)
			if err != nil {
				t.Fatal(err)
			}
			tag := rcpt.Address().MakeTag(nil)
			m, err := o.Open(testNet, tag, payload)
			if err != nil {
				t.Fatalf("%v/%d: %v", kind, n, err)
			}
			if m.Kind != kind || !bytes.Equal(m.Content, content) || !m.Sent.Equal(sent) ||
				!m.Sender.Equal(sender.Address()) {
				t.Fatalf("%v/%d: opened %+v", kind, n, m)
			}
			if !bytes.Equal(m.ReplayKey[:], payload[:EncSize]) {
				t.Fatal("replay key is not enc")
			}
			if m.Sender.String() != sender.Address().String() {
				t.Fatal("sender address differs")
			}
		}
	}
}

func TestSealArguments(t *testing.T) {
	sender, rcpt := mustID(t, 0), mustID(t, 0)
	to := rcpt.Address()
	if _, err := Seal(sender, to, testNet, KindMail, time.Now(), make([]byte, MaxContent+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	for _, k := range []Kind{0, 5, 255} {
		if _, err := Seal(sender, to, testNet, k, time.Now(), nil); !errors.Is(err, ErrInvalidKind) {
			t.Errorf("kind %d: %v", k, err)
		}
	}
	if _, err := Seal(nil, to, testNet, KindMail, time.Now(), nil); err == nil {
		t.Error("nil sender accepted")
	}
	if _, err := Seal(sender, identity.Address{}, testNet, KindMail, time.Now(), nil); err == nil {
		t.Error("zero address accepted")
	}
	small := identity.Address{TagBits: 0, Key: append([]byte{1}, make([]byte, 31)...)}
	if _, err := Seal(sender, small, testNet, KindMail, time.Now(), nil); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("small-order recipient: %v", err)
	}
	if _, err := Seal(sender, to, testNet, KindMail, time.UnixMilli(-1), nil); err == nil {
		t.Error("negative time accepted")
	}
	if _, err := NewOpener(nil); err == nil {
		t.Error("NewOpener(nil) succeeded")
	}
}

func TestWrongRecipient(t *testing.T) {
	sender, rcpt, other := mustID(t, 0), mustID(t, 0), mustID(t, 0)
	payload, err := Seal(sender, rcpt.Address(), testNet, KindChat, time.Now(), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = mustOpener(t, other).Open(testNet, [8]byte{}, payload)
	checkOneErr(t, "other identity", err, ErrNotForUs)
	// Right recipient, wrong network: the HPKE info differs.
	_, err = mustOpener(t, rcpt).Open(networkID("tanglemail"), [8]byte{}, payload)
	checkOneErr(t, "other network", err, ErrNotForUs)
}

func TestTagMismatch(t *testing.T) {
	sender, rcpt := mustID(t, 0), mustID(t, 16)
	payload, _ := Seal(sender, rcpt.Address(), testNet, KindMail, time.Now(), []byte("x"))
	tag := rcpt.Address().MakeTag(nil)
	tag[0] ^= 0x80
	_, err := mustOpener(t, rcpt).Open(testNet, tag, payload)
	checkOneErr(t, "flipped tag bit", err, ErrTagMismatch)
}

func TestEveryByteFlipFails(t *testing.T) {
	sender, rcpt := mustID(t, 0), mustID(t, 0)
	o := mustOpener(t, rcpt)
	payload, err := Seal(sender, rcpt.Address(), testNet, KindMail, time.Now(), []byte("flip me"))
	if err != nil {
		t.Fatal(err)
	}
	mod := append([]byte(nil), payload...)
	for i := range mod {
		for _, x := range []byte{0x01, 0x80} {
			mod[i] ^= x
			m, err := o.Open(testNet, [8]byte{}, mod)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: opened %+v", i, x, m)
			}
			// An AEAD-protected payload: every flip is "not for us", indistinguishable from someone else's.
			checkOneErr(t, "flip", err, ErrNotForUs)
			mod[i] ^= x
		}
	}
	if _, err := o.Open(testNet, [8]byte{}, mod); err != nil {
		t.Fatal("unmodified payload no longer opens")
	}
}

func TestTruncations(t *testing.T) {
	sender, rcpt := mustID(t, 0), mustID(t, 0)
	o := mustOpener(t, rcpt)
	payload, _ := Seal(sender, rcpt.Address(), testNet, KindMail, time.Now(), make([]byte, 300))
	for n := 0; n < len(payload); n++ {
		if _, err := o.Open(testNet, [8]byte{}, payload[:n]); err == nil {
			t.Fatalf("truncated to %d opened", n)
		}
	}
	for _, extra := range [][]byte{{0}, make([]byte, 16), make([]byte, 512)} {
		_, err := o.Open(testNet, [8]byte{}, append(append([]byte(nil), payload...), extra...))
		if err == nil {
			t.Fatalf("%d trailing bytes opened", len(extra))
		}
	}
	_, err := o.Open(testNet, [8]byte{}, nil)
	checkOneErr(t, "nil", err, ErrMalformed)
}

// A recipient who re-seals the opened plaintext to a third party, signature and all, cannot make it
// look as if the sender wrote to the third party: the signature binds the recipient's key.
func TestResealByRecipientFails(t *testing.T) {
	sender, bob, carol := mustID(t, 0), mustID(t, 0), mustID(t, 0)
	payload, _ := Seal(sender, bob.Address(), testNet, KindMail, time.Now(), []byte("for bob only"))
	// Bob decrypts with plain HPKE to get the raw plaintext, as a malicious client would.
	bobKey, _ := hpke.NewDHKEMPrivateKey(bob.X25519PrivateKey())
	in := info(testNet)
	pt, err := hpke.Open(bobKey, suiteKDF, suiteAEAD, in[:], payload)
	if err != nil {
		t.Fatal(err)
	}
	carolX, _ := carol.Address().X25519PublicKey()
	carolPK, _ := hpke.NewDHKEMPublicKey(carolX)
	forged, err := hpke.Seal(carolPK, suiteKDF, suiteAEAD, in[:], pt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mustOpener(t, carol).Open(testNet, [8]byte{}, forged)
	checkOneErr(t, "re-sealed to carol", err, ErrBadSignature)
}

// sealRaw HPKE-seals an arbitrary plaintext to rcpt, for testing the parser behind the AEAD.
func sealRaw(t *testing.T, rcpt *identity.Identity, pt []byte) []byte {
	t.Helper()
	pk, err := hpke.NewDHKEMPublicKey(rcpt.X25519PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	in := info(testNet)
	out, err := hpke.Seal(pk, suiteKDF, suiteAEAD, in[:], pt)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// buildPT makes a correctly signed plaintext, then lets mutate change it; resign re-signs after.
func buildPT(sender *identity.Identity, rcpt identity.Address, content []byte, ptLen int) []byte {
	pt := make([]byte, ptLen)
	pt[0] = Version
	pt[1] = byte(KindMail)
	pt[2] = sender.Address().VersionByte()
	copy(pt[3:35], sender.PublicKey())
	binary.LittleEndian.PutUint64(pt[35:43], 1_700_000_000_000)
	binary.LittleEndian.PutUint32(pt[43:47], uint32(len(content)))
	copy(pt[47:], content)
	resign(sender, rcpt, pt, len(content))
	return pt
}

func resign(sender *identity.Identity, rcpt identity.Address, pt []byte, c int) {
	sig := sender.Sign(sigMessage(testNet, rcpt.Key, pt[:47+c]))
	copy(pt[47+c:], sig)
}

func TestMalformedPlaintexts(t *testing.T) {
	sender, rcpt := mustID(t, 3), mustID(t, 0)
	o := mustOpener(t, rcpt)
	to := rcpt.Address()
	content := []byte("hello")
	open := func(pt []byte) error {
		_, err := o.Open(testNet, [8]byte{}, sealRaw(t, rcpt, pt))
		return err
	}
	// Baseline: a hand-built plaintext opens.
	if err := open(buildPT(sender, to, content, 256)); err != nil {
		t.Fatalf("hand-built plaintext: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(pt []byte) []byte
		resign bool
		want   error
	}{
		{"version 0", func(pt []byte) []byte { pt[0] = 0; return pt }, true, ErrMalformed},
		{"version 2", func(pt []byte) []byte { pt[0] = 2; return pt }, true, ErrMalformed},
		{"kind 0", func(pt []byte) []byte { pt[1] = 0; return pt }, true, ErrMalformed},
		{"kind 5", func(pt []byte) []byte { pt[1] = 5; return pt }, true, ErrMalformed},
		{"sender format 2", func(pt []byte) []byte { pt[2] = 2<<5 | 3; return pt }, true, ErrMalformed},
		{"sender tag bits 17", func(pt []byte) []byte { pt[2] = 1<<5 | 17; return pt }, true, ErrMalformed},
		{"content length past end", func(pt []byte) []byte { binary.LittleEndian.PutUint32(pt[43:], 200); return pt }, false, ErrMalformed},
		{"content length huge", func(pt []byte) []byte { binary.LittleEndian.PutUint32(pt[43:], 0xffffffff); return pt }, false, ErrMalformed},
		{"sent time > int64", func(pt []byte) []byte { binary.LittleEndian.PutUint64(pt[35:], 1<<63); return pt }, true, ErrMalformed},
		{"non-zero padding", func(pt []byte) []byte { pt[255] = 1; return pt }, false, ErrMalformed},
		{"non-zero padding first byte", func(pt []byte) []byte { pt[47+5+64] = 1; return pt }, false, ErrMalformed},
		{"bigger bucket than needed", func(pt []byte) []byte { return append(pt, make([]byte, 256)...) }, false, ErrMalformed},
		{"bad signature", func(pt []byte) []byte { pt[47+5] ^= 1; return pt }, false, ErrBadSignature},
		{"signature by content change", func(pt []byte) []byte { pt[47] ^= 1; return pt }, false, ErrBadSignature},
		{"sender key swapped", func(pt []byte) []byte { copy(pt[3:35], rcpt.PublicKey()); return pt }, false, ErrBadSignature},
		{"sender key small order", func(pt []byte) []byte { copy(pt[3:35], append([]byte{1}, make([]byte, 31)...)); return pt }, false, ErrBadSignature},
	}
	for _, c := range cases {
		pt := c.mutate(buildPT(sender, to, content, 256))
		if c.resign {
			resign(sender, to, pt, len(content))
		}
		checkOneErr(t, c.name, open(pt), c.want)
	}
	// Non-bucket plaintext lengths are rejected before any cryptography.
	for _, n := range []int{0, 111, 255, 257, 300, 32255, 32257, 40000} {
		pt := make([]byte, n)
		_, err := o.Open(testNet, [8]byte{}, sealRaw(t, rcpt, pt))
		checkOneErr(t, "plaintext length", err, ErrMalformed)
	}
}

func TestPaddingBuckets(t *testing.T) {
	sender, rcpt := mustID(t, 0), mustID(t, 0)
	cases := []struct{ content, pt int }{
		{0, 256}, {145, 256}, {146, 512}, {401, 512}, {402, 1024}, {913, 1024}, {914, 2048},
		{1024, 2048}, {1937, 2048}, {1938, 4096}, {3985, 4096}, {3986, 8192}, {8081, 8192},
		{8082, 16384}, {16273, 16384}, {16274, 32256}, {32145, 32256},
	}
	for _, c := range cases {
		n, err := PlaintextLen(c.content)
		if err != nil || n != c.pt {
			t.Fatalf("PlaintextLen(%d) = %d, %v; want %d", c.content, n, err, c.pt)
		}
		payload, err := Seal(sender, rcpt.Address(), testNet, KindMail, time.Now(), make([]byte, c.content))
		if err != nil {
			t.Fatal(err)
		}
		if len(payload) != EncSize+c.pt+AEADOverhead {
			t.Fatalf("content %d: payload %d bytes, want %d", c.content, len(payload), EncSize+c.pt+AEADOverhead)
		}
		if pl, _ := PayloadLen(c.content); pl != len(payload) {
			t.Fatalf("PayloadLen(%d) = %d", c.content, pl)
		}
		m, err := mustOpener(t, rcpt).Open(testNet, [8]byte{}, payload)
		if err != nil || len(m.Content) != c.content {
			t.Fatalf("content %d: %v", c.content, err)
		}
	}
	for _, n := range []int{MaxContent + 1, 1 << 20, -1} {
		if _, err := PlaintextLen(n); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("PlaintextLen(%d): %v", n, err)
		}
	}
	if MaxPayload != 32304 || MinPayload != 304 || MaxContent != 32145 {
		t.Fatal("size constants changed")
	}
}

func TestReplayKeyIsEnc(t *testing.T) {
	sender, rcpt := mustID(t, 0), mustID(t, 0)
	o := mustOpener(t, rcpt)
	a, _ := Seal(sender, rcpt.Address(), testNet, KindMail, time.Now(), []byte("same"))
	b, _ := Seal(sender, rcpt.Address(), testNet, KindMail, time.Now(), []byte("same"))
	ma, err1 := o.Open(testNet, [8]byte{}, a)
	mb, err2 := o.Open(testNet, [8]byte{}, b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !bytes.Equal(ma.ReplayKey[:], a[:32]) || !bytes.Equal(mb.ReplayKey[:], b[:32]) || ma.ReplayKey == mb.ReplayKey {
		t.Fatal("replay keys must be the (fresh) enc of each envelope")
	}
	// enc is an X25519 public key on the curve: a valid ecdh input.
	if _, err := ecdh.X25519().NewPublicKey(ma.ReplayKey[:]); err != nil {
		t.Fatal(err)
	}
	// The same payload opened twice gives the same replay key (the caller de-duplicates).
	mc, _ := o.Open(testNet, [8]byte{}, a)
	if mc.ReplayKey != ma.ReplayKey {
		t.Fatal("replay key not stable")
	}
}

func TestOpenerConcurrent(t *testing.T) {
	sender, rcpt := mustID(t, 4), mustID(t, 4)
	o := mustOpener(t, rcpt)
	payload, _ := Seal(sender, rcpt.Address(), testNet, KindChat, time.Now(), []byte("concurrent"))
	tag := rcpt.Address().MakeTag(nil)
	done := make(chan error, 4)
	for range 4 {
		go func() {
			for range 10 {
				if _, err := o.Open(testNet, tag, payload); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
