// Package identity owns a tanglemail identity: its Ed25519 key pair, the X25519 key pair derived from it,
// its bech32m address, its route tag, and the keystore file that holds it. It implements
// docs/protocol.md §4 (route tags) and §8 (identities and addresses).
//
// Implementation notes:
//   - An Identity is immutable after construction and safe for concurrent use. Everything an opener needs
//     on the hot path (the X25519 private key, the tag key and the tag mask) is computed once, in FromSeed.
//   - X25519 keys follow protocol.md §8.2, the map libsodium calls crypto_sign_ed25519_{sk,pk}_to_curve25519:
//     the private scalar is SHA-512(seed)[0:32] clamped (RFC 8032 §5.1.5, RFC 7748 §5), the public key is
//     the Montgomery u-coordinate (1+y)/(1−y) of the Ed25519 point (RFC 7748 §4.1). Both halves agree:
//     X25519(private, 9) equals the mapped public key (tested).
//   - Addresses are bech32m (BIP-350) with the human-readable part "tm" over 33 bytes: a version byte
//     (1<<5 | tag bits) and the Ed25519 public key. The codec is implemented here (bech32m.go). ParseAddress
//     never panics; each rejection wraps exactly one Err* sentinel. Beyond protocol.md §8.1 it also rejects
//     non-canonical point encodings and points of small order, so that an address is one-to-one with a key
//     that can receive mail.
//   - MatchTag costs the same for every tag (a masked 64-bit compare); it is the first, cryptography-free
//     step of trial-opening (protocol.md §6, opening step 1).
//   - Secrets never appear in errors, in String/GoString output, or in logs. Identity.String prints the
//     address only. Seed returns a copy.
//   - The keystore file format is documented in keystore.go and below.
//
// # Keystore file format (version 1)
//
// A keystore file is a small JSON object, written with mode 0600 by an atomic replace (temporary file in
// the same directory, fsync, rename, fsync of the directory). Load refuses a file that group or others
// can access. Unencrypted (empty passphrase):
//
//	{"format":"tanglemail-identity","version":1,"tag_bits":8,
//	 "public_key":"<64 hex>","seed":"<64 hex>"}
//
// Encrypted (non-empty passphrase):
//
//	{"format":"tanglemail-identity","version":1,"tag_bits":8,"public_key":"<64 hex>",
//	 "kdf":{"name":"argon2id","time":3,"memory_kib":65536,"threads":4,"salt":"<32 hex>"},
//	 "cipher":"xchacha20-poly1305","nonce":"<48 hex>","sealed_seed":"<96 hex>"}
//
// The key is argon2id(passphrase, salt, time, memory_kib, threads, 32 bytes) (RFC 9106); sealed_seed is
// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, RFC 8439) of the 32-byte Ed25519 seed under that key and
// nonce, with associated data "tanglemail/v1/keystore" ‖ version ‖ tag_bits ‖ public_key ‖ LE32(time) ‖
// LE32(memory_kib) ‖ threads ‖ salt, so the public fields cannot be altered without detection. A failed
// decryption is reported as ErrWrongPassphrase (a wrong passphrase and a tampered file are
// indistinguishable by design); the decrypted seed must reproduce public_key.
package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"fmt"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/blake2b"
)

// Sizes and limits (protocol.md §8).
const (
	SeedSize      = ed25519.SeedSize      // 32
	PublicKeySize = ed25519.PublicKeySize // 32
	MaxTagBits    = 16
	// AddressFormat is the address format number in the top three bits of the version byte.
	AddressFormat = 1
)

// Identity is an Ed25519 key pair with its derived X25519 key pair and route-tag parameters. Build one
// with Generate, FromSeed or Load. It is immutable and safe for concurrent use.
type Identity struct {
	priv  ed25519.PrivateKey // seed ‖ public key (RFC 8032 §5.1.5)
	addr  Address
	xpriv *ecdh.PrivateKey
	xpub  *ecdh.PublicKey
	tag   tagMatcher
}

// Generate creates a new identity from crypto/rand with tagBits route-tag bits (0..16, protocol.md §4).
func Generate(tagBits int) (*Identity, error) {
	if err := checkTagBits(tagBits); err != nil {
		return nil, err
	}
	var seed [SeedSize]byte
	rand.Read(seed[:]) // never fails (crypto/rand, Go ≥ 1.24)
	id, err := FromSeed(seed[:], tagBits)
	clear(seed[:])
	return id, err
}

// FromSeed rebuilds the identity whose Ed25519 seed (RFC 8032 private key) is seed. The seed is copied.
func FromSeed(seed []byte, tagBits int) (*Identity, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("identity: seed must be %d bytes, got %d", SeedSize, len(seed))
	}
	if err := checkTagBits(tagBits); err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	addr := Address{TagBits: tagBits, Key: pub}

	// protocol.md §8.2: X25519 private = clamp(SHA-512(seed)[0:32]) (RFC 8032 §5.1.5 steps 1–2,
	// RFC 7748 §5 decodeScalar25519).
	h := sha512.Sum512(seed)
	clampScalar(h[:32])
	xpriv, err := ecdh.X25519().NewPrivateKey(h[:32])
	clear(h[:])
	if err != nil {
		return nil, fmt.Errorf("identity: X25519 private key: %w", err)
	}
	xpub, err := addr.X25519PublicKey()
	if err != nil {
		// Impossible for a key made by NewKeyFromSeed: it is a prime-order point.
		return nil, fmt.Errorf("identity: X25519 public key: %w", err)
	}
	return &Identity{
		priv:  priv,
		addr:  addr,
		xpriv: xpriv,
		xpub:  xpub,
		tag:   newTagMatcher(TagKey(pub), tagBits),
	}, nil
}

func checkTagBits(k int) error {
	if k < 0 || k > MaxTagBits {
		return fmt.Errorf("%w: %d (allowed 0..%d)", ErrTagBits, k, MaxTagBits)
	}
	return nil
}

// clampScalar applies RFC 7748 §5 clamping to a 32-byte little-endian scalar.
func clampScalar(k []byte) {
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
}

// Address is the identity's address.
func (id *Identity) Address() Address { return id.addr.clone() }

// PublicKey is the Ed25519 public key (a copy).
func (id *Identity) PublicKey() ed25519.PublicKey { return id.addr.clone().Key }

// TagBits is k, the number of route-tag bits the identity's senders reveal (protocol.md §4).
func (id *Identity) TagBits() int { return id.addr.TagBits }

// Seed returns a copy of the Ed25519 seed: the secret from which everything else is derived. Handle with
// care; never log it.
func (id *Identity) Seed() []byte { return append([]byte(nil), id.priv.Seed()...) }

// Sign signs msg with the identity's Ed25519 key (RFC 8032 §5.1.6, pure Ed25519).
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// X25519PrivateKey is the derived X25519 private key (protocol.md §8.2). Do not export or log it.
func (id *Identity) X25519PrivateKey() *ecdh.PrivateKey { return id.xpriv }

// X25519PublicKey is the derived X25519 public key, the Montgomery form of the Ed25519 public key
// (protocol.md §8.2). It equals X25519PrivateKey().PublicKey().
func (id *Identity) X25519PublicKey() *ecdh.PublicKey { return id.xpub }

// TagKey is H("tanglemail/v1/tag" ‖ public key) (protocol.md §4).
func (id *Identity) TagKey() [32]byte { return id.tag.key }

// MatchTag reports whether the first k bits of tag equal the first k bits of the identity's tag key
// (protocol.md §4). Its cost does not depend on tag. With k = 0 every tag matches.
func (id *Identity) MatchTag(tag [8]byte) bool { return id.tag.match(tag) }

// String is the identity's address; it never prints key material.
func (id *Identity) String() string {
	if id == nil {
		return "<nil identity>"
	}
	return id.addr.String()
}

// GoString keeps %#v from printing key material.
func (id *Identity) GoString() string {
	if id == nil {
		return "(*identity.Identity)(nil)"
	}
	return "identity.Identity{" + id.addr.String() + "}"
}

// tagPrefix is the domain-separation prefix of the tag key (protocol.md §4).
const tagPrefix = "tanglemail/v1/tag"

// TagKey is the route-tag key of an Ed25519 public key: BLAKE2b-256("tanglemail/v1/tag" ‖ pub)
// (protocol.md §4).
func TagKey(pub ed25519.PublicKey) [32]byte {
	h, _ := blake2b.New256(nil)
	h.Write([]byte(tagPrefix))
	h.Write(pub)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// tagMatcher holds the precomputed route-tag check: bits [0, k) of the tag, MSB-first, as a mask and
// the wanted value of the masked bits.
type tagMatcher struct {
	key  [32]byte
	mask uint64
	want uint64
}

func tagMask(k int) uint64 {
	if k <= 0 {
		return 0
	}
	return ^uint64(0) << (64 - uint(k))
}

func newTagMatcher(key [32]byte, k int) tagMatcher {
	m := tagMask(k)
	return tagMatcher{key: key, mask: m, want: binary.BigEndian.Uint64(key[:8]) & m}
}

func (m *tagMatcher) match(tag [8]byte) bool {
	return (binary.BigEndian.Uint64(tag[:])^m.want)&m.mask == 0
}

// montgomeryFromEdwards maps a valid, canonical Ed25519 public key to its X25519 public key
// u = (1 + y) / (1 − y) (RFC 7748 §4.1; protocol.md §8.2).
func montgomeryFromEdwards(pub []byte) (*ecdh.PublicKey, error) {
	p, err := decodePoint(pub)
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPublicKey(p.BytesMontgomery())
}

// decodePoint decodes an Ed25519 public key (RFC 8032 §5.1.3) and rejects what cannot be a real
// identity's key: a wrong length, an encoding that is not a curve point, a non-canonical encoding, and
// a point of small order (whose X25519 image makes every Diffie-Hellman output all-zero).
func decodePoint(pub []byte) (*edwards25519.Point, error) {
	if err := CheckSignerKey(pub); err != nil {
		return nil, err
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: not a point on edwards25519", ErrInvalidKey)
	}
	return p, nil
}

// CheckSignerKey is the part of Address.Validate's key check that needs no point decoding: it rejects
// a wrong length, a non-canonical encoding (y ≥ p, RFC 8032 §5.1.3) and the encodings of the eight
// points of small order (either sign of x, which also covers the non-canonical "x = 0, sign bit set").
// It does not check that pub is on the curve; a key that has just verified an Ed25519 signature is
// known to be, and CheckSignerKey completes Validate for it at the cost of a few comparisons.
func CheckSignerKey(pub []byte) error {
	if len(pub) != PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes, want %d", ErrInvalidKey, len(pub), PublicKeySize)
	}
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f // the sign of x
	// y ≥ p = 2^255 − 19 ⇔ y[31] = 0x7f, y[1..30] = 0xff, y[0] ≥ 0xed.
	high := y[31] == 0x7f && y[0] >= 0xed
	for _, b := range y[1:31] {
		high = high && b == 0xff
	}
	if high {
		return fmt.Errorf("%w: non-canonical point encoding", ErrInvalidKey)
	}
	for i := range smallOrderY {
		if y == smallOrderY[i] {
			return fmt.Errorf("%w: point of small order", ErrInvalidKey)
		}
	}
	return nil
}

// smallOrderY are the canonical y-coordinates of the eight points of order dividing 8 (the same list
// libsodium rejects): y = 0 (order 4), 1 (order 1), p − 1 (order 2), and the two of order 8. A test
// derives the torsion subgroup and checks this list against it.
var smallOrderY = [5][32]byte{
	{},
	{0x01},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
}
