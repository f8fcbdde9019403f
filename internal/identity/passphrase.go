package identity

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KDFParams are argon2id cost parameters (RFC 9106) for sealing a secret under a passphrase. The
// identity keystore, the payment wallet (package payment) and the OpenPGP key (package pgp) share them,
// SealWithPassphrase, OpenWithPassphrase, SealedFields and ReadPrivateFile: one home for
// passphrase-encrypted key files.
type KDFParams struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// Valid reports whether p is within the bounds a loader accepts, so that a hostile file cannot make it
// allocate or compute without limit.
func (p KDFParams) Valid() bool {
	return p.Time >= 1 && p.Time <= maxArgonTime && p.Threads >= 1 && p.Threads <= maxArgonThreads &&
		p.MemoryKiB >= minArgonMemory && p.MemoryKiB <= maxArgonMemory
}

// SealWithPassphrase encrypts secret with XChaCha20-Poly1305 under a key derived from passphrase with
// argon2id(p) and a fresh 16-byte salt. ad returns the associated data for that salt (it binds the file's
// public fields). The derived key is cleared.
func SealWithPassphrase(passphrase, secret []byte, p KDFParams, ad func(salt []byte) []byte) (salt, nonce, sealed []byte, err error) {
	salt = make([]byte, saltSize)
	rand.Read(salt)
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.NewX(key)
	clear(key)
	if err != nil {
		return nil, nil, nil, err
	}
	nonce = make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	return salt, nonce, aead.Seal(nil, nonce, secret, ad(salt)), nil
}

// OpenWithPassphrase decrypts what SealWithPassphrase sealed. A wrong passphrase (or altered associated
// data) gives ErrWrongPassphrase. The caller checks p (Valid) and the lengths of salt and nonce first.
func OpenWithPassphrase(passphrase, salt, nonce, sealed, ad []byte, p KDFParams) ([]byte, error) {
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.NewX(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	secret, err := aead.Open(nil, nonce, sealed, ad)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return secret, nil
}

// ReadPrivateFile reads a key file of at most maxSize bytes. A file that group or others may access
// gives an error wrapping ErrInsecurePermissions (not checked on Windows); one that is not a regular file
// or is larger than maxSize, an error wrapping ErrCorrupt.
func ReadPrivateFile(path string, maxSize int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v", ErrInsecurePermissions, path, st.Mode().Perm())
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, int64(maxSize)+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxSize {
		clear(buf.Bytes())
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxSize)
	}
	return buf.Bytes(), nil
}
