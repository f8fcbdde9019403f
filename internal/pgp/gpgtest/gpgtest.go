// Package gpgtest runs Debian's GnuPG (gpg 2.2) for interop tests: a private home per test (GNUPGHOME
// in a fresh directory, so the user's keyring is never read), batch mode, no passphrases. It skips the
// test when gpg is missing, and fails it under CI=true, where .ci/run installs the gnupg package. It is
// a test-support package (it imports testing); no production package imports it.
package gpgtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Home is one private GnuPG home.
type Home struct {
	t    testing.TB
	bin  string
	home string
}

// New returns a gpg in a fresh home, or skips the test when gpg is not installed (fails under CI). The
// home and the gpg-agent gpg starts for it are removed when the test ends.
func New(t testing.TB) *Home {
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
	t.Cleanup(func() {
		// Stop the agent gpg started for this home (only this home's), then remove the home.
		if c, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(c, "--kill", "gpg-agent")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			cmd.Run()
		}
		os.RemoveAll(home)
	})
	return &Home{t: t, bin: bin, home: home}
}

// Run runs gpg with stdin and returns its stdout; it fails the test on error.
func (g *Home) Run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, errOut, err := g.Try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// Try runs gpg (batch, loopback pinentry with an empty passphrase, every key trusted) with stdin, within
// a minute.
func (g *Home) Try(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
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

// GenKey makes an Ed25519/Curve25519 key for addr (gpg's "future-default") and returns it exported,
// ASCII-armored.
func (g *Home) GenKey(addr string) []byte {
	g.t.Helper()
	g.Run(nil, "--quick-gen-key", addr, "future-default", "default", "never")
	return g.Run(nil, "--armor", "--export", addr)
}

// ArmoredMessage returns the ASCII-armored OpenPGP message inside a PGP/MIME message.
func ArmoredMessage(t testing.TB, msg []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, []byte("-----BEGIN PGP MESSAGE-----"))
	j := bytes.Index(msg, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < i {
		t.Fatalf("no armored message in\n%s", msg)
	}
	return msg[i : j+len("-----END PGP MESSAGE-----")]
}

// PGPMIME wraps an armored OpenPGP message as PGP/MIME (RFC 3156 §4) under header (CRLF-terminated
// fields, without Content-Type).
func PGPMIME(header string, armored []byte) []byte {
	return []byte(header + "MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n" + string(armored) + "\r\n--b1--\r\n")
}
