// Package pgp owns tanglemail's use of OpenPGP (RFC 9580): the user's OpenPGP key, its file in the
// data directory, the export of its public part, PGP/MIME encryption and decryption of Internet mail
// (RFC 3156) and the Autocrypt header (Autocrypt Level 1). It wraps github.com/ProtonMail/go-crypto;
// no type of that library crosses this package's API. It sits beside seal, below everything that
// handles mail.
//
// # Keys
//
// Generate makes a v4 key: an Ed25519 primary key (EdDSA, "legacy" OID form, RFC 9580 §5.5.5.5) that
// certifies and signs, with a Curve25519 ECDH subkey (RFC 9580 §5.5.5.6) that encrypts, and one user ID,
// the user's Internet address. v4 and these algorithm ids are what GnuPG 2.2 (Debian 12) reads; it does
// not read v6 keys, the RFC 9580 X25519/Ed25519 algorithm ids (25–27) or SEIPDv2, so none of those is
// generated or used: messages are SEIPDv1 (RFC 9580 §5.13.1) with AES-256 where the recipients' keys allow.
//
// The key file (SaveKey, LoadKey) is JSON like the identity keystore's: the secret key packets sealed
// with XChaCha20-Poly1305 under argon2id of the identity's passphrase (identity.SealWithPassphrase),
// the public key and fingerprint in clear and bound as associated data; mode 0600, written with
// atomicfile. An empty passphrase stores the key in clear, as the identity keystore does.
//
// # Bounds
//
// Every parser of network input is bounded: a public key (binary or armored) at most MaxKeySize bytes,
// an Autocrypt header at most MaxAutocryptHeader bytes, a PGP/MIME message at most MaxMessageSize bytes,
// and decompressed OpenPGP data at most MaxMessageSize bytes. Bad input gives an error, never a panic
// (the fuzz tests check it).
//
// # Locking
//
// A Key or PublicKey is immutable after it is made and safe for concurrent use.
package pgp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Bounds on input (see the package notes).
const (
	MaxKeySize     = 64 << 10
	MaxMessageSize = 32 << 20
)

// Errors.
var (
	ErrBadKey    = errors.New("pgp: not a usable OpenPGP public key")
	ErrNoEncrypt = errors.New("pgp: the key has no valid encryption subkey")
	ErrTooLarge  = errors.New("pgp: input too large")
)

// config is the one configuration this package gives the library: v4 keys, EdDSA/ECDH on Curve25519,
// AES-256, SHA-256, no AEAD (SEIPDv1: GnuPG 2.2 reads nothing newer), no compression, bounded
// decompression.
func config(now time.Time) *packet.Config {
	limit := int64(MaxMessageSize)
	return &packet.Config{
		Algorithm:                  packet.PubKeyAlgoEdDSA,
		Curve:                      packet.Curve25519,
		DefaultHash:                crypto.SHA256,
		DefaultCipher:              packet.CipherAES256,
		DefaultCompressionAlgo:     packet.CompressionNone,
		MaxDecompressedMessageSize: &limit,
		Time:                       func() time.Time { return now },
	}
}

// Key is the user's OpenPGP secret key.
type Key struct {
	e *openpgp.Entity
}

// PublicKey is an OpenPGP certificate (transferable public key): ours, or a correspondent's.
type PublicKey struct {
	e *openpgp.Entity
}

// Generate makes a new key for the Internet address addr (see the package notes), created at now.
func Generate(addr string, now time.Time) (*Key, error) {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr {
		return nil, fmt.Errorf("pgp: %q is not a bare e-mail address", addr)
	}
	e, err := openpgp.NewEntity("", "", addr, config(now))
	if err != nil {
		return nil, fmt.Errorf("pgp: generate: %w", err)
	}
	return &Key{e: e}, nil
}

// Public returns the public part of k.
func (k *Key) Public() *PublicKey { return &PublicKey{e: k.e} }

// Fingerprint returns k's fingerprint, upper-case hex.
func (k *Key) Fingerprint() string { return k.Public().Fingerprint() }

// Fingerprint returns the certificate's primary key fingerprint, upper-case hex.
func (p *PublicKey) Fingerprint() string { return fmt.Sprintf("%X", p.e.PrimaryKey.Fingerprint) }

// Addresses returns the e-mail addresses of the certificate's user IDs, lower-cased.
func (p *PublicKey) Addresses() []string {
	var out []string
	for _, id := range p.e.Identities {
		if id.UserId != nil && id.UserId.Email != "" {
			out = append(out, strings.ToLower(id.UserId.Email))
		}
	}
	return out
}

// HasAddress reports whether one of the certificate's user IDs is addr (case-insensitively).
func (p *PublicKey) HasAddress(addr string) bool {
	for _, a := range p.Addresses() {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}

// Bytes returns the certificate in binary form (RFC 9580 §10.1): the form of Autocrypt's keydata and of
// a Web Key Directory's answer.
func (p *PublicKey) Bytes() []byte {
	var b bytes.Buffer
	if err := p.e.Serialize(&b); err != nil {
		// Serialize fails only on a write error; a bytes.Buffer does not fail.
		return nil
	}
	return b.Bytes()
}

// Armored returns the certificate ASCII-armored (RFC 9580 §6), as `gpg --import` reads it.
func (p *PublicKey) Armored() string {
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP PUBLIC KEY BLOCK", nil)
	if err != nil {
		return ""
	}
	w.Write(p.Bytes())
	w.Close()
	b.WriteByte('\n')
	return b.String()
}

// ParsePublicKey reads one certificate, binary or ASCII-armored, of at most MaxKeySize bytes. It must
// be a v4 certificate with a valid encryption key at now. A secret key is refused (a correspondent never
// sends one).
func ParsePublicKey(data []byte, now time.Time) (*PublicKey, error) {
	el, err := parseKeys(data)
	if err != nil {
		return nil, err
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("%w: %d certificates, want 1", ErrBadKey, len(el))
	}
	return usable(el[0], now)
}

// ParsePublicKeys reads certificates, binary or ASCII-armored, of at most MaxKeySize bytes in all (a Web
// Key Directory may answer several), and returns those ParsePublicKey would accept; none is an error.
func ParsePublicKeys(data []byte, now time.Time) ([]*PublicKey, error) {
	el, err := parseKeys(data)
	if err != nil {
		return nil, err
	}
	var out []*PublicKey
	var lastErr error
	for _, e := range el {
		p, err := usable(e, now)
		if err != nil {
			lastErr = err
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = fmt.Errorf("%w: no certificate", ErrBadKey)
		}
		return nil, lastErr
	}
	return out, nil
}

func parseKeys(data []byte) (openpgp.EntityList, error) {
	if len(data) > MaxKeySize {
		return nil, fmt.Errorf("%w: key of %d bytes (limit %d)", ErrTooLarge, len(data), MaxKeySize)
	}
	var r io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		blk, err := armor.Decode(r)
		if err != nil {
			return nil, fmt.Errorf("%w: armor: %v", ErrBadKey, err)
		}
		if blk.Type != "PGP PUBLIC KEY BLOCK" {
			return nil, fmt.Errorf("%w: armored %q", ErrBadKey, blk.Type)
		}
		r = io.LimitReader(blk.Body, MaxKeySize)
	}
	el, err := readKeyRing(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return el, nil
}

func usable(e *openpgp.Entity, now time.Time) (*PublicKey, error) {
	if e.PrivateKey != nil {
		return nil, fmt.Errorf("%w: a secret key", ErrBadKey)
	}
	if e.PrimaryKey.Version != 4 {
		return nil, fmt.Errorf("%w: v%d key (only v4 is used)", ErrBadKey, e.PrimaryKey.Version)
	}
	if _, ok := e.EncryptionKey(now); !ok {
		return nil, ErrNoEncrypt
	}
	return &PublicKey{e: e}, nil
}

// readKeyRing calls the library's parser and turns a panic in it (a library bug on hostile input) into
// an error.
func readKeyRing(r io.Reader) (el openpgp.EntityList, err error) {
	defer func() {
		if v := recover(); v != nil {
			el, err = nil, fmt.Errorf("parser failure: %v", v)
		}
	}()
	return openpgp.ReadKeyRing(r)
}
