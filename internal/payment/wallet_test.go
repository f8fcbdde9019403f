package payment

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

func init() { WalletKDF.Time, WalletKDF.MemoryKiB, WalletKDF.Threads = 1, 64, 1 }

func TestWalletFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, WalletFile)
	if _, err := CreateWallet(p, nil, false); !errors.Is(err, ErrWalletUnencrypted) {
		t.Fatalf("unencrypted without acknowledgement: %v", err)
	}
	k, err := CreateWallet(p, []byte("hunter2"), false)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if _, err := CreateWallet(p, []byte("x"), false); !errors.Is(err, ErrWalletAlreadyExists) {
		t.Fatalf("overwrite: %v", err)
	}
	if _, err := LoadWallet(p, []byte("wrong"), false); !errors.Is(err, ErrWalletPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := LoadWallet(p, nil, true); !errors.Is(err, ErrWalletNeedsPass) {
		t.Fatalf("no passphrase: %v", err)
	}
	k2, err := LoadWallet(p, []byte("hunter2"), false)
	if err != nil || crypto.PubkeyToAddress(k2.PublicKey) != crypto.PubkeyToAddress(k.PublicKey) {
		t.Fatalf("load: %v", err)
	}
	data, _ := os.ReadFile(p)
	if contains(data, []byte(hex.EncodeToString(crypto.FromECDSA(k)))) {
		t.Fatal("key in clear in an encrypted wallet")
	}
	u := filepath.Join(dir, "u.key")
	if _, err := CreateWallet(u, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWallet(u, nil, false); !errors.Is(err, ErrWalletUnencrypted) {
		t.Fatalf("unencrypted load without acknowledgement: %v", err)
	}
	if _, err := LoadWallet(u, nil, true); err != nil {
		t.Fatal(err)
	}
	os.Chmod(u, 0o644)
	if _, err := LoadWallet(u, nil, true); !errors.Is(err, ErrWalletInsecureFile) {
		t.Fatalf("0644: %v", err)
	}
}

func contains(h []byte, n []byte) bool {
	for i := 0; i+len(n) <= len(h); i++ {
		if string(h[i:i+len(n)]) == string(n) {
			return true
		}
	}
	return false
}
