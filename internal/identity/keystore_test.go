package identity

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fastArgon lowers the argon2id cost for the duration of a test.
func fastArgon(t *testing.T) {
	old := argonParams
	argonParams = kdfParams{Time: 1, MemoryKiB: 64, Threads: 1}
	t.Cleanup(func() { argonParams = old })
}

func TestKeystoreRoundTrip(t *testing.T) {
	fastArgon(t)
	dir := t.TempDir()
	id, _ := Generate(9)
	for _, pass := range [][]byte{nil, []byte("correct horse battery staple")} {
		path := filepath.Join(dir, "id.json")
		if err := Save(path, id, pass); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", st.Mode().Perm())
		}
		got, err := Load(path, pass)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !got.Address().Equal(id.Address()) || !bytes.Equal(got.Seed(), id.Seed()) || got.TagBits() != 9 {
			t.Fatal("loaded identity differs")
		}
		raw, _ := os.ReadFile(path)
		seedHex := hex.EncodeToString(id.Seed())
		if len(pass) > 0 && bytes.Contains(raw, []byte(seedHex)) {
			t.Fatal("encrypted file contains the seed in clear")
		}
		if len(pass) == 0 && !bytes.Contains(raw, []byte(seedHex)) {
			t.Fatal("unencrypted file lacks the seed")
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m["version"] != float64(1) {
			t.Fatalf("not a version-1 JSON file: %v %v", err, m["version"])
		}
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(ents))
	}
}

func TestKeystoreDefaultParams(t *testing.T) {
	if argonParams != (kdfParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}) {
		t.Fatalf("default argon2id params changed: %+v", argonParams)
	}
}

func TestKeystorePassphraseErrors(t *testing.T) {
	fastArgon(t)
	path := filepath.Join(t.TempDir(), "id.json")
	id, _ := Generate(2)
	if err := Save(path, id, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("empty passphrase: %v", err)
	}
	if _, err := Load(path, []byte("")); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("empty passphrase: %v", err)
	}
	for _, wrong := range []string{"Secret", "secret ", "x"} {
		got, err := Load(path, []byte(wrong))
		if !errors.Is(err, ErrWrongPassphrase) || got != nil {
			t.Errorf("passphrase %q: %v, %v", wrong, got, err)
		}
		if err != nil && strings.Contains(err.Error(), wrong) {
			t.Error("error quotes the passphrase")
		}
	}
	// The file's public fields are authenticated: changing them looks like a wrong passphrase.
	raw, _ := os.ReadFile(path)
	var kf keyFile
	json.Unmarshal(raw, &kf)
	for name, mutate := range map[string]func(k *keyFile){
		"tag bits": func(k *keyFile) { k.TagBits = 3 },
		"time":     func(k *keyFile) { k.KDF.Time++ },
		"salt":     func(k *keyFile) { k.KDF.Salt = strings.Repeat("00", 16) },
		"sealed":   func(k *keyFile) { k.SealedSeed = "ff" + k.SealedSeed[2:] },
		"nonce":    func(k *keyFile) { k.Nonce = "00" + k.Nonce[2:] },
	} {
		c := kf
		kdf := *kf.KDF
		c.KDF = &kdf
		mutate(&c)
		b, _ := json.Marshal(&c)
		p := filepath.Join(t.TempDir(), "m.json")
		os.WriteFile(p, b, 0o600)
		if _, err := Load(p, []byte("secret")); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s altered: %v", name, err)
		}
	}
}

func TestKeystoreUnencryptedIgnoresPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id.json")
	id, _ := Generate(0)
	Save(path, id, nil)
	got, err := Load(path, []byte("whatever"))
	if err != nil || !got.Address().Equal(id.Address()) {
		t.Fatal(err)
	}
}

func TestKeystoreCorrupt(t *testing.T) {
	fastArgon(t)
	id, _ := FromSeed(bytes.Repeat([]byte{3}, 32), 4)
	plain, _ := marshalKeyFile(id, nil, argonParams)
	enc, _ := marshalKeyFile(id, []byte("pw"), argonParams)
	other, _ := Generate(4)
	otherPub := hex.EncodeToString(other.PublicKey())

	edit := func(src []byte, f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(src, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := map[string]string{
		"empty":          "",
		"not json":       "hello",
		"truncated":      string(plain[:len(plain)/2]),
		"array":          "[]",
		"trailing":       string(plain) + "{}",
		"unknown field":  edit(plain, func(m map[string]any) { m["extra"] = 1 }),
		"wrong format":   edit(plain, func(m map[string]any) { m["format"] = "ssh" }),
		"version 2":      edit(plain, func(m map[string]any) { m["version"] = 2 }),
		"version string": edit(plain, func(m map[string]any) { m["version"] = "1" }),
		"tag bits 17":    edit(plain, func(m map[string]any) { m["tag_bits"] = 17 }),
		"short seed":     edit(plain, func(m map[string]any) { m["seed"] = "0303" }),
		"bad hex seed":   edit(plain, func(m map[string]any) { m["seed"] = strings.Repeat("zz", 32) }),
		"no seed":        edit(plain, func(m map[string]any) { delete(m, "seed") }),
		"short pub":      edit(plain, func(m map[string]any) { m["public_key"] = "00" }),
		"pub mismatch":   edit(plain, func(m map[string]any) { m["public_key"] = otherPub }),
		"seed and sealed": edit(enc, func(m map[string]any) {
			m["seed"] = strings.Repeat("03", 32)
		}),
		"kdf name":     edit(enc, func(m map[string]any) { m["kdf"].(map[string]any)["name"] = "scrypt" }),
		"no kdf":       edit(enc, func(m map[string]any) { delete(m, "kdf") }),
		"cipher":       edit(enc, func(m map[string]any) { m["cipher"] = "aes" }),
		"huge memory":  edit(enc, func(m map[string]any) { m["kdf"].(map[string]any)["memory_kib"] = 1 << 30 }),
		"zero time":    edit(enc, func(m map[string]any) { m["kdf"].(map[string]any)["time"] = 0 }),
		"zero threads": edit(enc, func(m map[string]any) { m["kdf"].(map[string]any)["threads"] = 0 }),
		"short salt":   edit(enc, func(m map[string]any) { m["kdf"].(map[string]any)["salt"] = "00" }),
		"short nonce":  edit(enc, func(m map[string]any) { m["nonce"] = "00" }),
		"short sealed": edit(enc, func(m map[string]any) { m["sealed_seed"] = "00" }),
	}
	dir := t.TempDir()
	for name, content := range cases {
		p := filepath.Join(dir, "k.json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Load(p, []byte("pw"))
		if !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("%s: got %v, err %v; want ErrCorrupt", name, got, err)
			continue
		}
		if strings.Contains(err.Error(), strings.Repeat("03", 32)) {
			t.Errorf("%s: error leaks the seed: %v", name, err)
		}
	}
	// Too large.
	p := filepath.Join(dir, "big.json")
	os.WriteFile(p, bytes.Repeat([]byte(" "), 70<<10), 0o600)
	if _, err := Load(p, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("oversized file: %v", err)
	}
	// A directory.
	if _, err := Load(dir, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("directory: %v", err)
	}
	// Missing file: the os error, not ErrCorrupt.
	if _, err := Load(filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestKeystorePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "id.json")
	id, _ := Generate(1)
	// An existing world-readable file is replaced by a 0600 one.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, id, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after Save over a 0644 file: %v", st.Mode().Perm())
	}
	// Load refuses a file group or others can read.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o666} {
		os.Chmod(path, mode)
		if _, err := Load(path, nil); !errors.Is(err, ErrInsecurePermissions) {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := Load(path, nil); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	// Save into a missing directory fails cleanly.
	if err := Save(filepath.Join(dir, "nope", "id.json"), id, nil); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

func TestKeystoreRealArgonParams(t *testing.T) {
	if testing.Short() {
		t.Skip("argon2id with 64 MiB")
	}
	path := filepath.Join(t.TempDir(), "id.json")
	id, _ := Generate(8)
	if err := Save(path, id, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var kf keyFile
	if err := json.Unmarshal(raw, &kf); err != nil {
		t.Fatal(err)
	}
	if kf.KDF.Time != 3 || kf.KDF.MemoryKiB != 65536 || kf.KDF.Threads != 4 || len(kf.KDF.Salt) != 32 {
		t.Fatalf("stored params %+v", kf.KDF)
	}
	got, err := Load(path, []byte("pw"))
	if err != nil || !got.Address().Equal(id.Address()) {
		t.Fatal(err)
	}
}
