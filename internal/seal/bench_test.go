package seal

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Benchmarks of protocol.md §6. Run with -cpu 1 for per-core figures:
//
//	go test -run '^$' -bench . -cpu 1 ./internal/seal
//
// BenchmarkX25519 and BenchmarkEd25519Verify are the physics floor: a trial-open of a block sealed to
// someone else costs at least one X25519; opening a block sealed to us at least one X25519 and one
// Ed25519 verification.

func benchIdentities(b *testing.B) (sender, us, them *identity.Identity) {
	var err error
	if sender, err = identity.Generate(8); err != nil {
		b.Fatal(err)
	}
	if us, err = identity.Generate(8); err != nil {
		b.Fatal(err)
	}
	if them, err = identity.Generate(8); err != nil {
		b.Fatal(err)
	}
	return
}

func reportBlocks(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// openSetup seals 1 KiB of content from a fresh sender to `to` and returns the payload, an opener for us
// and a route tag that matches our tag bits.
func openSetup(b *testing.B, sealToUs bool) (payload []byte, o *Opener, tag [8]byte) {
	sender, us, them := benchIdentities(b)
	to := them
	if sealToUs {
		to = us
	}
	content := make([]byte, 1024)
	rand.Read(content)
	payload, err := Seal(sender, to.Address(), testNet, KindMail, time.Now(), content)
	if err != nil {
		b.Fatal(err)
	}
	if o, err = NewOpener(us); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	return payload, o, us.Address().MakeTag(nil)
}

// BenchmarkTrialOpen: 1 KiB of content sealed to another identity, carried with a tag that matches our
// tag bits, so the tag check passes and HPKE fails (the common case of trial-opening).
func BenchmarkTrialOpen(b *testing.B) {
	payload, o, tag := openSetup(b, false)
	for b.Loop() {
		if _, err := o.Open(testNet, tag, payload); !errors.Is(err, ErrNotForUs) {
			b.Fatal(err)
		}
	}
	reportBlocks(b)
}

// BenchmarkOpen: 1 KiB of content sealed to us: HPKE open, parse, signature with recipient binding.
func BenchmarkOpen(b *testing.B) {
	payload, o, tag := openSetup(b, true)
	for b.Loop() {
		if _, err := o.Open(testNet, tag, payload); err != nil {
			b.Fatal(err)
		}
	}
	reportBlocks(b)
}

// BenchmarkSeal: 1 KiB of content.
func BenchmarkSeal(b *testing.B) {
	sender, _, them := benchIdentities(b)
	to := them.Address()
	content := make([]byte, 1024)
	rand.Read(content)
	now := time.Now()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(sender, to, testNet, KindMail, now, content); err != nil {
			b.Fatal(err)
		}
	}
	reportBlocks(b)
}

// BenchmarkTagMismatch: the cost of rejecting a block whose tag is not ours (no cryptography).
func BenchmarkTagMismatch(b *testing.B) {
	_, us, _ := benchIdentities(b)
	o, _ := NewOpener(us)
	tk := us.TagKey()
	tag := [8]byte{^tk[0]}
	payload := make([]byte, EncSize+2048+AEADOverhead)
	for b.Loop() {
		if _, err := o.Open(testNet, tag, payload); !errors.Is(err, ErrTagMismatch) {
			b.Fatal(err)
		}
	}
	reportBlocks(b)
}

// BenchmarkX25519: one X25519 scalar multiplication with a fixed private key and a fresh peer public key
// (RFC 7748 §5), the floor of a trial-open.
func BenchmarkX25519(b *testing.B) {
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pub := peer.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := priv.ECDH(pub); err != nil {
			b.Fatal(err)
		}
	}
	reportBlocks(b)
}

// BenchmarkEd25519Verify: one Ed25519 verification (RFC 8032 §5.1.7) of a 1.1 KiB message.
func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 1024+sigHeadLen+headerLen)
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify failed")
		}
	}
	reportBlocks(b)
}
