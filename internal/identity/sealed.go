package identity

import (
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// SealedFields are the JSON fields of a secret sealed under a passphrase in a key file other than the
// identity's (the payment wallet, the OpenPGP key): argon2id's name and cost, and the salt, nonce and
// sealed secret in hex. A file embeds them beside its own public fields, which its associated data binds.
type SealedFields struct {
	KDF       string `json:"kdf,omitempty"`
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
	Salt      string `json:"salt,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	SealedKey string `json:"sealed_key,omitempty"`
}

// Seal sets s to secret sealed under passphrase with argon2id(p) (SealWithPassphrase). The KDF fields are
// set before ad is called, so ad may bind them.
func (s *SealedFields) Seal(passphrase, secret []byte, p KDFParams, ad func(salt []byte) []byte) error {
	s.KDF, s.Time, s.MemoryKiB, s.Threads = kdfName, p.Time, p.MemoryKiB, p.Threads
	salt, nonce, sealed, err := SealWithPassphrase(passphrase, secret, p, ad)
	if err != nil {
		return err
	}
	s.Salt, s.Nonce, s.SealedKey = hex.EncodeToString(salt), hex.EncodeToString(nonce), hex.EncodeToString(sealed)
	return nil
}

// Open returns the secret s seals. Fields out of bounds or malformed give an error wrapping ErrCorrupt
// (before any key derivation: a hostile file cannot make it compute without limit); a wrong passphrase
// (or altered associated data) gives ErrWrongPassphrase.
func (s *SealedFields) Open(passphrase []byte, ad func(salt []byte) []byte) ([]byte, error) {
	p := KDFParams{Time: s.Time, MemoryKiB: s.MemoryKiB, Threads: s.Threads}
	salt, err1 := hex.DecodeString(s.Salt)
	nonce, err2 := hex.DecodeString(s.Nonce)
	sealed, err3 := hex.DecodeString(s.SealedKey)
	if s.KDF != kdfName || !p.Valid() || err1 != nil || err2 != nil || err3 != nil ||
		len(salt) < 8 || len(salt) > 64 || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: sealed secret's parameters", ErrCorrupt)
	}
	return OpenWithPassphrase(passphrase, salt, nonce, sealed, ad(salt), p)
}
