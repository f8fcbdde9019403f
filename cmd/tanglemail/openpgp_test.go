package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/pgp"
)

func TestOpenPGPCommand(t *testing.T) {
	pgp.KeyKDF = identity.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	dir := t.TempDir()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("correct horse\n"), 0o600)

	if code, _, errOut := runCLI(t, nil, "openpgp", "--data-dir", dir, "--passphrase-file", pass); code == 0 || !strings.Contains(errOut, "--internet-address") {
		t.Fatalf("no key and no address: %d %q", code, errOut)
	}
	code, out, errOut := runCLI(t, nil, "openpgp", "--data-dir", dir, "--passphrase-file", pass, "--internet-address", "Joe.Doe@example.org")
	if code != 0 || !strings.Contains(out, "created a new OpenPGP key") ||
		!strings.Contains(out, "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe") {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	if st, err := os.Stat(filepath.Join(dir, pgp.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st)
	}
	code, out, _ = runCLI(t, nil, "openpgp", "--data-dir", dir, "--passphrase-file", pass, "--json")
	j2 := map[string]string{}
	if code != 0 || json.Unmarshal([]byte(out), &j2) != nil || j2["address"] != "joe.doe@example.org" || len(j2["fingerprint"]) != 40 {
		t.Fatalf("%d %q", code, out)
	}
	code, out, _ = runCLI(t, nil, "openpgp", "--data-dir", dir, "--passphrase-file", pass, "--export")
	if k, err := pgp.ParsePublicKey([]byte(out), time.Now()); code != 0 || err != nil || k.Fingerprint() != j2["fingerprint"] {
		t.Fatalf("export: %d %v %q", code, err, out)
	}
	if code, _, errOut := runCLI(t, nil, "openpgp", "--data-dir", dir, "--passphrase-file", pass, "--internet-address", "other@example.org"); code == 0 || !strings.Contains(errOut, "not other@example.org") {
		t.Fatalf("other address: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "openpgp", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "passphrase") {
		t.Fatalf("no passphrase: %d %q", code, errOut)
	}
}
