package pgp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

func init() { KeyKDF = identity.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} }

var testNow = time.Now()

func mustKey(t testing.TB, addr string) *Key {
	t.Helper()
	k, err := Generate(addr, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const plainMsg = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hello\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\n" +
	"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n\r\nThe secret is 42.\r\nÜmlaut.\r\n"

func TestGenerateV4Curve25519(t *testing.T) {
	k := mustKey(t, "alice@example.org")
	if k.e.PrimaryKey.Version != 4 {
		t.Fatalf("version %d", k.e.PrimaryKey.Version)
	}
	if len(k.Fingerprint()) != 40 {
		t.Fatalf("fingerprint %q", k.Fingerprint())
	}
	if got := k.Public().Addresses(); len(got) != 1 || got[0] != "alice@example.org" {
		t.Fatalf("addresses %v", got)
	}
	for _, bad := range []string{"", "Alice <alice@example.org>", "not an address"} {
		if _, err := Generate(bad, testNow); err == nil {
			t.Errorf("Generate(%q) succeeded", bad)
		}
	}
	// The public key parses back, binary and armored, and is not a secret key.
	for _, form := range [][]byte{k.Public().Bytes(), []byte(k.Public().Armored())} {
		p, err := ParsePublicKey(form, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if p.Fingerprint() != k.Fingerprint() || !p.HasAddress("ALICE@example.org") {
			t.Fatalf("parsed %s %v", p.Fingerprint(), p.Addresses())
		}
	}
}

func TestParsePublicKeyRefuses(t *testing.T) {
	k := mustKey(t, "alice@example.org")
	var sec bytes.Buffer
	if err := k.e.SerializePrivateWithoutSigning(&sec, nil); err != nil {
		t.Fatal(err)
	}
	two := append(k.Public().Bytes(), mustKey(t, "b@example.org").Public().Bytes()...)
	for name, in := range map[string][]byte{
		"empty": nil, "garbage": []byte("hello"), "secret": sec.Bytes(), "two": two,
		"huge":          make([]byte, MaxKeySize+1),
		"armored other": []byte("-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n"),
	} {
		if _, err := ParsePublicKey(in, testNow); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestMIMERoundTrip(t *testing.T) {
	alice, bob, carol := mustKey(t, "alice@example.org"), mustKey(t, "bob@example.net"), mustKey(t, "carol@example.com")
	enc, err := EncryptMIME([]byte(plainMsg), []*PublicKey{bob.Public()}, alice, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte("secret is 42")) || bytes.Contains(enc, []byte("8bit")) {
		t.Fatalf("plaintext or its Content-* fields outside:\n%s", enc)
	}
	if bytes.Contains(enc, []byte("hello")) {
		t.Fatalf("the subject is outside:\n%s", enc)
	}
	for _, h := range []string{"From: alice@example.org\r\n", "To: bob@example.net\r\n", "Subject: [...]\r\n", "Message-ID: <1@example.org>\r\n"} {
		if !bytes.Contains(enc, []byte(h)) {
			t.Errorf("outer header lacks %q", h)
		}
	}
	if !IsEncryptedMIME(enc) || IsEncryptedMIME([]byte(plainMsg)) {
		t.Fatal("IsEncryptedMIME")
	}
	for _, reader := range []*Key{bob, alice} { // the recipient, and the sender's own copy
		d, err := reader.DecryptMIME(enc, []*PublicKey{alice.Public()}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(d.Message, []byte("\r\n\r\nThe secret is 42.\r\nÜmlaut.\r\n")) ||
			!bytes.Contains(d.Message, []byte("Content-Transfer-Encoding: 8bit\r\n")) ||
			!bytes.Contains(d.Message, []byte("Subject: hello\r\n")) || bytes.Contains(d.Message, []byte("[...]")) ||
			bytes.Count(d.Message, []byte("From: alice@example.org\r\n")) != 1 || bytes.Contains(d.Message, []byte("multipart/encrypted")) {
			t.Fatalf("decrypted:\n%s", d.Message)
		}
		if !d.Signed || !d.SignerKnown || d.SignatureError != nil || d.SignerFingerprint != alice.Fingerprint() {
			t.Fatalf("signature: %+v", d)
		}
	}
	if _, err := carol.DecryptMIME(enc, nil, testNow); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("carol: %v", err)
	}
	if _, err := bob.DecryptMIME([]byte(plainMsg), nil, testNow); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("plain: %v", err)
	}
	// An altered ciphertext fails (armor checksum or SEIPD's integrity check).
	i := bytes.Index(enc, []byte("-----BEGIN PGP MESSAGE-----"))
	alt := bytes.Clone(enc)
	j := bytes.Index(alt[i:], []byte("\r\n\r\n")) + i + 4 + 100
	alt[j] ^= 0x01
	if alt[j] == '\r' || alt[j] == '\n' {
		alt[j] = 'A'
	}
	if _, err := bob.DecryptMIME(alt, nil, testNow); err == nil {
		t.Fatal("altered message decrypted")
	}
	// Unsigned, and a message without Content-Type gets text/plain.
	enc2, err := EncryptMIME([]byte("Subject: x\r\n\r\nbody\r\n"), []*PublicKey{bob.Public()}, nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	d, err := bob.DecryptMIME(enc2, nil, testNow)
	if err != nil || d.Signed || !bytes.Contains(d.Message, []byte("Content-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\r\n\r\nbody\r\n")) {
		t.Fatalf("%v %+v %s", err, d, d.Message)
	}
	if _, err := EncryptMIME([]byte(plainMsg), nil, alice, testNow); !errors.Is(err, ErrNoRecipients) {
		t.Fatal(err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	pass := []byte("correct horse")
	timeNow = func() time.Time { return testNow.Add(-time.Minute) }
	k, err := CreateKey(path, "alice@example.org", pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateKey(path, "alice@example.org", pass); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("overwrite: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte("secret_key")) {
		t.Fatal("sealed file holds a clear secret key")
	}
	l, err := LoadKey(path, pass)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fingerprint() != k.Fingerprint() {
		t.Fatal("fingerprint changed")
	}
	// The loaded key decrypts what was encrypted to the generated one.
	enc, err := EncryptMIME([]byte(plainMsg), []*PublicKey{k.Public()}, nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.DecryptMIME(enc, nil, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := LoadKey(path, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Fatalf("no passphrase: %v", err)
	}
	// The fingerprint in clear is bound to the sealed key.
	alt := bytes.Replace(data, []byte(k.Fingerprint()[:4]), []byte("0000"), 1)
	if err := os.WriteFile(path, alt, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path, pass); err == nil {
		t.Fatal("altered file loaded")
	}
	if runtime.GOOS != "windows" {
		os.Chmod(path, 0o644)
		if _, err := LoadKey(path, pass); !errors.Is(err, identity.ErrInsecurePermissions) {
			t.Fatalf("0644: %v", err)
		}
	}
	// Without a passphrase the key is stored in clear, like an unencrypted identity.
	p2 := filepath.Join(dir, "clear.key")
	if err := SaveKey(p2, k, nil); err != nil {
		t.Fatal(err)
	}
	if l, err := LoadKey(p2, nil); err != nil || l.Fingerprint() != k.Fingerprint() {
		t.Fatal(err)
	}
	os.WriteFile(p2, []byte(`{"format":"tanglemail-openpgp","version":1,"secret_key":"AAAA"}`), 0o600)
	if _, err := LoadKey(p2, nil); !errors.Is(err, ErrKeyCorrupt) {
		t.Fatalf("corrupt: %v", err)
	}
	if !strings.Contains(k.Public().Armored(), "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Fatal("armor")
	}
}
