package payment

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// WalletFile is the wallet key's file name in the data directory.
const WalletFile = "wallet.key"

// Wallet errors.
var (
	ErrWalletUnencrypted   = errors.New("payment: a wallet holds money: give the identity's passphrase, or acknowledge an unencrypted wallet (--insecure-unencrypted-wallet)")
	ErrWalletPassphrase    = errors.New("payment: wrong passphrase for the wallet (or the wallet file was altered)")
	ErrWalletNeedsPass     = errors.New("payment: the wallet is passphrase-protected: give the identity's passphrase")
	ErrWalletCorrupt       = errors.New("payment: corrupt wallet file")
	ErrWalletInsecureFile  = errors.New("payment: wallet file is accessible by group or others (chmod 600 it)")
	ErrWalletAlreadyExists = errors.New("payment: a wallet already exists; refusing to overwrite it")
)

const (
	walletFormat  = "tanglemail-wallet"
	walletVersion = 1
	walletAAD     = "tanglemail/v1/wallet"
)

// WalletKDF is argon2id's cost for the wallet (the identity keystore's: time 3, 64 MiB, 4 lanes).
// Tests lower it.
var WalletKDF = struct {
	Time, MemoryKiB uint32
	Threads         uint8
}{3, 64 * 1024, 4}

type walletJSON struct {
	Format    string `json:"format"`
	Version   int    `json:"version"`
	Address   string `json:"address"`
	Key       string `json:"key,omitempty"` // unencrypted (acknowledged)
	KDF       string `json:"kdf,omitempty"`
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
	Salt      string `json:"salt,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	SealedKey string `json:"sealed_key,omitempty"`
}

func walletAD(w *walletJSON, salt []byte) []byte {
	ad := []byte(walletAAD)
	ad = append(ad, byte(w.Version))
	ad = append(ad, strings.ToLower(w.Address)...)
	ad = binary.LittleEndian.AppendUint32(ad, w.Time)
	ad = binary.LittleEndian.AppendUint32(ad, w.MemoryKiB)
	ad = append(ad, w.Threads)
	return append(ad, salt...)
}

// CreateWallet makes a new wallet key and saves it at path (mode 0600), encrypted under passphrase;
// with an empty passphrase only if unencrypted acknowledges it. It refuses to overwrite.
func CreateWallet(path string, passphrase []byte, unencrypted bool) (*ecdsa.PrivateKey, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrWalletAlreadyExists, path)
	}
	k, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	return k, SaveWallet(path, k, passphrase, unencrypted)
}

// SaveWallet writes k to path (atomically, mode 0600).
func SaveWallet(path string, k *ecdsa.PrivateKey, passphrase []byte, unencrypted bool) error {
	if len(passphrase) == 0 && !unencrypted {
		return ErrWalletUnencrypted
	}
	w := walletJSON{Format: walletFormat, Version: walletVersion, Address: crypto.PubkeyToAddress(k.PublicKey).Hex()}
	raw := crypto.FromECDSA(k)
	defer clear(raw)
	if len(passphrase) == 0 {
		w.Key = hex.EncodeToString(raw)
	} else {
		salt := make([]byte, 16)
		rand.Read(salt)
		w.KDF, w.Time, w.MemoryKiB, w.Threads = "argon2id", WalletKDF.Time, WalletKDF.MemoryKiB, WalletKDF.Threads
		key := argon2.IDKey(passphrase, salt, w.Time, w.MemoryKiB, w.Threads, chacha20poly1305.KeySize)
		aead, err := chacha20poly1305.NewX(key)
		clear(key)
		if err != nil {
			return err
		}
		nonce := make([]byte, chacha20poly1305.NonceSizeX)
		rand.Read(nonce)
		w.Salt, w.Nonce = hex.EncodeToString(salt), hex.EncodeToString(nonce)
		w.SealedKey = hex.EncodeToString(aead.Seal(nil, nonce, raw, walletAD(&w, salt)))
	}
	out, err := json.MarshalIndent(&w, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(out, '\n'), 0o600); err != nil {
		if errors.Is(err, atomicfile.ErrMode) {
			return fmt.Errorf("%w: %v", ErrWalletInsecureFile, err)
		}
		return err
	}
	return nil
}

// LoadWallet reads the wallet key at path. An unencrypted wallet loads only if unencrypted
// acknowledges it.
func LoadWallet(path string, passphrase []byte, unencrypted bool) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v", ErrWalletInsecureFile, path, st.Mode().Perm())
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, 16<<10)); err != nil {
		return nil, err
	}
	var w walletJSON
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil || w.Format != walletFormat || w.Version != walletVersion || !common.IsHexAddress(w.Address) {
		return nil, fmt.Errorf("%w: %s", ErrWalletCorrupt, path)
	}
	var raw []byte
	if w.Key != "" {
		if !unencrypted {
			return nil, ErrWalletUnencrypted
		}
		raw, err = hex.DecodeString(w.Key)
	} else {
		if len(passphrase) == 0 {
			return nil, ErrWalletNeedsPass
		}
		if w.KDF != "argon2id" || w.Time < 1 || w.Time > 64 || w.Threads < 1 || w.Threads > 64 || w.MemoryKiB < 8 || w.MemoryKiB > 4<<20 {
			return nil, fmt.Errorf("%w: kdf parameters", ErrWalletCorrupt)
		}
		salt, err1 := hex.DecodeString(w.Salt)
		nonce, err2 := hex.DecodeString(w.Nonce)
		sealed, err3 := hex.DecodeString(w.SealedKey)
		if err1 != nil || err2 != nil || err3 != nil || len(salt) < 8 || len(salt) > 64 || len(nonce) != chacha20poly1305.NonceSizeX {
			return nil, fmt.Errorf("%w: %s", ErrWalletCorrupt, path)
		}
		key := argon2.IDKey(passphrase, salt, w.Time, w.MemoryKiB, w.Threads, chacha20poly1305.KeySize)
		aead, _ := chacha20poly1305.NewX(key)
		clear(key)
		raw, err = aead.Open(nil, nonce, sealed, walletAD(&w, salt))
		if err != nil {
			return nil, ErrWalletPassphrase
		}
	}
	defer clear(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: key", ErrWalletCorrupt)
	}
	k, err := crypto.ToECDSA(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: key", ErrWalletCorrupt)
	}
	if !strings.EqualFold(crypto.PubkeyToAddress(k.PublicKey).Hex(), w.Address) {
		return nil, fmt.Errorf("%w: key does not match its address", ErrWalletCorrupt)
	}
	return k, nil
}

// AddressOf returns the EVM address of a wallet key.
func AddressOf(k *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(k.PublicKey) }
