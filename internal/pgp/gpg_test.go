package pgp_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/pgp/gpgtest"
)

const gpgPlain = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hello\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe secret is 42.\r\nÜmlaut.\r\n"

func genKey(t *testing.T, addr string) *pgp.Key {
	t.Helper()
	k, err := pgp.Generate(addr, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestGPGDecryptsOurs: GnuPG (Debian 12's 2.2) imports a key it generated and ours, decrypts the
// PGP/MIME message we encrypted to it and verifies our signature.
func TestGPGDecryptsOurs(t *testing.T) {
	g := gpgtest.New(t)
	bob, err := pgp.ParsePublicKey(g.GenKey("bob@example.net"), time.Now())
	if err != nil {
		t.Fatalf("gpg's key: %v", err)
	}
	alice := genKey(t, "alice@example.org")
	g.Run([]byte(alice.Public().Armored()), "--import")

	enc, err := pgp.EncryptMIME([]byte(gpgPlain), []*pgp.PublicKey{bob}, alice, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := g.Try(gpgtest.ArmoredMessage(t, enc), "--status-fd", "2", "--decrypt")
	if err != nil {
		t.Fatalf("gpg --decrypt: %v\n%s", err, errOut)
	}
	// The entity with its protected headers (RFC 9788): the Subject is only inside.
	want := "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hello\r\n" +
		"Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe secret is 42.\r\nÜmlaut.\r\n"
	if string(out) != want {
		t.Fatalf("gpg decrypted %q, want %q", out, want)
	}
	if !bytes.Contains(errOut, []byte("[GNUPG:] GOODSIG")) || !bytes.Contains(errOut, []byte("[GNUPG:] DECRYPTION_OKAY")) {
		t.Fatalf("gpg status:\n%s", errOut)
	}
	// gpg lists our key as ed25519 + cv25519.
	list := g.Run(nil, "--with-colons", "--list-keys", "alice@example.org")
	if !bytes.Contains(list, []byte(alice.Fingerprint())) || !bytes.Contains(list, []byte("ed25519")) || !bytes.Contains(list, []byte("cv25519")) {
		t.Fatalf("gpg lists:\n%s", list)
	}
}

// TestWeDecryptGPG: GnuPG encrypts (and signs) a MIME entity to our exported key; wrapped as PGP/MIME,
// we decrypt it and verify gpg's signature.
func TestWeDecryptGPG(t *testing.T) {
	g := gpgtest.New(t)
	bob, err := pgp.ParsePublicKey(g.GenKey("bob@example.net"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice := genKey(t, "alice@example.org")
	pub := filepath.Join(t.TempDir(), "alice.asc")
	os.WriteFile(pub, []byte(alice.Public().Armored()), 0o600)
	g.Run(nil, "--import", pub)

	entity := "Content-Type: text/plain; charset=utf-8\r\n\r\nFrom gpg, 42.\r\n"
	armored := g.Run([]byte(entity), "--armor", "--sign", "--local-user", "bob@example.net", "--encrypt", "--recipient", "alice@example.org")
	msg := gpgtest.PGPMIME("From: bob@example.net\r\nTo: alice@example.org\r\nSubject: from gpg\r\n", armored)
	d, err := alice.DecryptMIME(msg, []*pgp.PublicKey{bob}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(d.Message, []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nFrom gpg, 42.\r\n")) ||
		!bytes.Contains(d.Message, []byte("Subject: from gpg\r\n")) {
		t.Fatalf("decrypted:\n%s", d.Message)
	}
	if !d.Signed || !d.SignerKnown || d.SignatureError != nil || d.SignerFingerprint != bob.Fingerprint() {
		t.Fatalf("signature: %+v", d)
	}
}
