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
	Format  string `json:"format"`
	Version int    `json:"version"`
	Address string `json:"address"`
	Key     string `json:"key,omitempty"` // unencrypted (acknowledged)
	identity.SealedFields
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
		if err := w.Seal(passphrase, raw, identity.KDFParams(WalletKDF), func(salt []byte) []byte { return walletAD(&w, salt) }); err != nil {
			return err
		}
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
		raw, err = w.Open(passphrase, func(salt []byte) []byte { return walletAD(&w, salt) })
		switch {
		case errors.Is(err, identity.ErrWrongPassphrase):
			return nil, ErrWalletPassphrase
		case errors.Is(err, identity.ErrCorrupt):
			return nil, fmt.Errorf("%w: %s", ErrWalletCorrupt, path)
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
