package pgp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gpgHome is a private GnuPG home (GNUPGHOME in a fresh directory; the user's keyring is never read).
type gpgHome struct {
	t    *testing.T
	bin  string
	home string
}

// needGPG returns a gpg in a fresh home, or skips the test when Debian's gnupg is not installed
// (fails under CI=true, where .ci/run installs it).
func needGPG(t *testing.T) *gpgHome {
	t.Helper()
	bin, err := exec.LookPath("gpg")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("gpg is not installed, and CI must run this test: add the Debian package gnupg to PKGS in .ci/run")
		}
		t.Skip("gpg is not installed (apt-get install --no-install-recommends gnupg)")
	}
	// A short path: gpg-agent's socket path must fit in sockaddr_un.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	g := &gpgHome{t: t, bin: bin, home: home}
	t.Cleanup(func() {
		// Stop the agent gpg started for this home (only this home's), then remove it.
		if c, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(c, "--kill", "gpg-agent")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			cmd.Run()
		}
		os.RemoveAll(home)
	})
	return g
}

// run runs gpg in batch mode with stdin, and returns stdout; it fails the test on error.
func (g *gpgHome) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, errOut, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (g *gpgHome) try(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always"}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C")
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// armoredMessage returns the armored OpenPGP message inside a PGP/MIME message.
func armoredMessage(t *testing.T, msg []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, []byte("-----BEGIN PGP MESSAGE-----"))
	j := bytes.Index(msg, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < i {
		t.Fatalf("no armored message in\n%s", msg)
	}
	return msg[i : j+len("-----END PGP MESSAGE-----\r\n")]
}

// TestGPGDecryptsOurs: GnuPG (Debian 12's 2.2) imports a key it generated and ours, decrypts the
// PGP/MIME message we encrypted to it and verifies our signature.
func TestGPGDecryptsOurs(t *testing.T) {
	g := needGPG(t)
	g.run(nil, "--quick-gen-key", "bob@example.net", "future-default", "default", "never")
	bob, err := ParsePublicKey(g.run(nil, "--armor", "--export", "bob@example.net"), time.Now())
	if err != nil {
		t.Fatalf("gpg's key: %v", err)
	}
	alice := mustKey(t, "alice@example.org")
	g.run([]byte(alice.Public().Armored()), "--import")

	enc, err := EncryptMIME([]byte(plainMsg), []*PublicKey{bob}, alice, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := g.try(armoredMessage(t, enc), "--status-fd", "2", "--decrypt")
	if err != nil {
		t.Fatalf("gpg --decrypt: %v\n%s", err, errOut)
	}
	want := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe secret is 42.\r\nÜmlaut.\r\n"
	if string(out) != want {
		t.Fatalf("gpg decrypted %q, want %q", out, want)
	}
	if !bytes.Contains(errOut, []byte("[GNUPG:] GOODSIG")) || !bytes.Contains(errOut, []byte("[GNUPG:] DECRYPTION_OKAY")) {
		t.Fatalf("gpg status:\n%s", errOut)
	}
	// The key gpg reads from our Autocrypt/WKD form is our key: gpg lists it as ed25519 + cv25519.
	list := g.run(nil, "--with-colons", "--list-keys", "alice@example.org")
	if !bytes.Contains(list, []byte(alice.Fingerprint())) || !bytes.Contains(list, []byte("ed25519")) || !bytes.Contains(list, []byte("cv25519")) {
		t.Fatalf("gpg lists:\n%s", list)
	}
}

// TestWeDecryptGPG: GnuPG encrypts (and signs) a MIME entity to our exported key; wrapped as PGP/MIME,
// we decrypt it and verify gpg's signature.
func TestWeDecryptGPG(t *testing.T) {
	g := needGPG(t)
	g.run(nil, "--quick-gen-key", "bob@example.net", "future-default", "default", "never")
	bob, err := ParsePublicKey(g.run(nil, "--armor", "--export", "bob@example.net"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice := mustKey(t, "alice@example.org")
	dir := t.TempDir()
	pub := filepath.Join(dir, "alice.asc")
	os.WriteFile(pub, []byte(alice.Public().Armored()), 0o600)
	g.run(nil, "--import", pub)

	entity := "Content-Type: text/plain; charset=utf-8\r\n\r\nFrom gpg, 42.\r\n"
	armored := g.run([]byte(entity), "--armor", "--sign", "--local-user", "bob@example.net", "--encrypt", "--recipient", "alice@example.org")
	msg := "From: bob@example.net\r\nTo: alice@example.org\r\nSubject: from gpg\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n" + string(armored) + "\r\n--b1--\r\n"
	d, err := alice.DecryptMIME([]byte(msg), []*PublicKey{bob}, time.Now())
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
