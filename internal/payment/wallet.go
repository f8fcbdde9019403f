package payment

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/identity"
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
		w.KDF, w.Time, w.MemoryKiB, w.Threads = "argon2id", WalletKDF.Time, WalletKDF.MemoryKiB, WalletKDF.Threads
		salt, nonce, sealed, err := identity.SealWithPassphrase(passphrase, raw, identity.KDFParams(WalletKDF),
			func(salt []byte) []byte { return walletAD(&w, salt) })
		if err != nil {
			return err
		}
		w.Salt, w.Nonce, w.SealedKey = hex.EncodeToString(salt), hex.EncodeToString(nonce), hex.EncodeToString(sealed)
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
	data, err := readWalletFile(path)
	if err != nil {
		return nil, err
	}
	var w walletJSON
	dec := json.NewDecoder(bytes.NewReader(data))
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
		kdf := identity.KDFParams{Time: w.Time, MemoryKiB: w.MemoryKiB, Threads: w.Threads}
		if w.KDF != "argon2id" || !kdf.Valid() {
			return nil, fmt.Errorf("%w: kdf parameters", ErrWalletCorrupt)
		}
		salt, err1 := hex.DecodeString(w.Salt)
		nonce, err2 := hex.DecodeString(w.Nonce)
		sealed, err3 := hex.DecodeString(w.SealedKey)
		if err1 != nil || err2 != nil || err3 != nil || len(salt) < 8 || len(salt) > 64 || len(nonce) != chacha20poly1305.NonceSizeX {
			return nil, fmt.Errorf("%w: %s", ErrWalletCorrupt, path)
		}
		raw, err = identity.OpenWithPassphrase(passphrase, salt, nonce, sealed, walletAD(&w, salt), kdf)
		if errors.Is(err, identity.ErrWrongPassphrase) {
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

// WalletAddress reads the address of the wallet at path without its passphrase (watch-only use: the
// balance shown in the node's status). The address is not authenticated by the key until LoadWallet
// opens it; it is the data directory's own file.
func WalletAddress(path string) (common.Address, error) {
	data, err := readWalletFile(path)
	if err != nil {
		return common.Address{}, err
	}
	var w walletJSON
	if err := json.Unmarshal(data, &w); err != nil || w.Format != walletFormat || !common.IsHexAddress(w.Address) {
		return common.Address{}, fmt.Errorf("%w: %s", ErrWalletCorrupt, path)
	}
	return common.HexToAddress(w.Address), nil
}

// readWalletFile reads the wallet file at path (mode 0600, at most 16 KiB).
func readWalletFile(path string) ([]byte, error) {
	data, err := identity.ReadPrivateFile(path, 16<<10)
	switch {
	case errors.Is(err, identity.ErrInsecurePermissions):
		return nil, fmt.Errorf("%w: %v", ErrWalletInsecureFile, err)
	case errors.Is(err, identity.ErrCorrupt):
		return nil, fmt.Errorf("%w: %s", ErrWalletCorrupt, path)
	}
	return data, err
}

// AddressOf returns the EVM address of a wallet key.
func AddressOf(k *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(k.PublicKey) }
