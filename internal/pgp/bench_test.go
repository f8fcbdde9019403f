package pgp

import (
	"bytes"
	"testing"
)

// benchMsg is a 10 KiB text mail.
func benchMsg() []byte {
	return []byte("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: bench\r\nContent-Type: text/plain\r\n\r\n" +
		string(bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012\r\n"), 160)))
}

// BenchmarkGenerate: a new key (Ed25519 + Curve25519, self-signatures).
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		if _, err := Generate("alice@example.org", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptMIME: a 10 KiB mail, signed, encrypted to one recipient and the sender (PGP/MIME).
func BenchmarkEncryptMIME(b *testing.B) {
	alice, bob := mustKey(b, "alice@example.org"), mustKey(b, "bob@example.net")
	msg := benchMsg()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := EncryptMIME(msg, []*PublicKey{bob.Public()}, alice, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecryptMIME: that mail decrypted by the recipient, signature verified.
func BenchmarkDecryptMIME(b *testing.B) {
	alice, bob := mustKey(b, "alice@example.org"), mustKey(b, "bob@example.net")
	msg := benchMsg()
	enc, err := EncryptMIME(msg, []*PublicKey{bob.Public()}, alice, testNow)
	if err != nil {
		b.Fatal(err)
	}
	senders := []*PublicKey{alice.Public()}
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		d, err := bob.DecryptMIME(enc, senders, testNow)
		if err != nil || d.SignatureError != nil {
			b.Fatal(err)
		}
	}
}
