package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Address encoding constants (protocol.md §8.1).
const (
	HRP         = "tm"
	MailDomain  = "tangle"
	AddressLen  = 62 // characters of String()
	addressData = 1 + PublicKeySize
)

// Parse errors (protocol.md §8.1: each rejection has its own error). Every error returned by
// ParseAddress wraps exactly one of them; test with errors.Is.
var (
	ErrPrefix         = errors.New("identity: address does not start with tm1")
	ErrCharacter      = errors.New("identity: invalid character or mixed case in address")
	ErrChecksum       = errors.New("identity: bad address checksum")
	ErrDataLength     = errors.New("identity: address data is not 33 bytes")
	ErrAddressVersion = errors.New("identity: unknown address format")
	ErrTagBits        = errors.New("identity: tag bits out of range 0..16")
	ErrInvalidKey     = errors.New("identity: address key is not a valid Ed25519 public key")
	ErrDomain         = errors.New("identity: mail domain is not @tangle")
)

// Address is what a sender needs to seal to an identity: its Ed25519 public key and its tag bits k
// (protocol.md §4, §8.1). The zero Address is invalid.
type Address struct {
	TagBits int
	Key     ed25519.PublicKey
}

// VersionByte is (1 << 5) | k (protocol.md §8.1).
func (a Address) VersionByte() byte { return AddressFormat<<5 | byte(a.TagBits&31) }

// ParseVersionByte returns the tag bits of an address version byte, or ErrAddressVersion / ErrTagBits.
func ParseVersionByte(v byte) (tagBits int, err error) {
	if v>>5 != AddressFormat {
		return 0, fmt.Errorf("%w: format %d", ErrAddressVersion, v>>5)
	}
	k := int(v & 31)
	if k > MaxTagBits {
		return 0, fmt.Errorf("%w: %d", ErrTagBits, k)
	}
	return k, nil
}

// Validate checks what ParseAddress checks: tag bits in range, and a key that is a canonically encoded
// Ed25519 point not of small order.
func (a Address) Validate() error {
	if err := checkTagBits(a.TagBits); err != nil {
		return err
	}
	_, err := decodePoint(a.Key)
	return err
}

// String is the bech32m address, 62 lower-case characters starting with "tm1" (protocol.md §8.1). An
// address whose fields are out of range prints as "<invalid address>".
func (a Address) String() string {
	if a.TagBits < 0 || a.TagBits > MaxTagBits || len(a.Key) != PublicKeySize {
		return "<invalid address>"
	}
	var data [addressData]byte
	data[0] = a.VersionByte()
	copy(data[1:], a.Key)
	return bech32mEncode(HRP, to5(data[:]))
}

// Mail is the address as written in mail headers, "<address>@tangle" (protocol.md §8.1).
func (a Address) Mail() string { return a.String() + "@" + MailDomain }

// BinarySize is the size of an address's binary form (Binary).
const BinarySize = addressData

// Binary is the address's binary form: its version byte and its key, the data of the bech32m string
// (protocol.md §8.1), as chat group members are written (protocol.md §10.3) and the store keeps an
// outbox recipient.
func (a Address) Binary() []byte {
	return append([]byte{a.VersionByte()}, a.Key...)
}

// ParseBinaryAddress parses Binary's form, checking what ParseAddress checks once the string is
// decoded: its length, version, tag bits and key.
func ParseBinaryAddress(b []byte) (Address, error) {
	if len(b) != BinarySize {
		return Address{}, fmt.Errorf("%w: got %d bytes", ErrDataLength, len(b))
	}
	k, err := ParseVersionByte(b[0])
	if err != nil {
		return Address{}, err
	}
	a := Address{TagBits: k, Key: ed25519.PublicKey(bytes.Clone(b[1:]))}
	if err := a.Validate(); err != nil {
		return Address{}, err
	}
	return a, nil
}

// Equal reports whether a and b are the same address.
func (a Address) Equal(b Address) bool {
	return a.TagBits == b.TagBits && string(a.Key) == string(b.Key)
}

func (a Address) clone() Address {
	return Address{TagBits: a.TagBits, Key: append(ed25519.PublicKey(nil), a.Key...)}
}

// ParseAddress parses an address, "tm1…" or "tm1…@tangle" (the domain in any case; the address in all
// lower or all upper case). It never panics; each rejection wraps one of the Err* sentinels, checked in
// this order: ErrDomain, ErrDataLength (longer than 90 characters), ErrCharacter, ErrPrefix, ErrChecksum,
// ErrCharacter (bad data character), ErrDataLength, ErrAddressVersion, ErrTagBits, ErrInvalidKey.
func ParseAddress(s string) (Address, error) {
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		if !asciiEqualFold(s[at+1:], MailDomain) {
			return Address{}, fmt.Errorf("%w", ErrDomain)
		}
		s = s[:at]
	}
	_, data5, err := bech32mDecode(s, HRP)
	if err != nil {
		return Address{}, err
	}
	data, err := from5(data5)
	if err != nil {
		return Address{}, err
	}
	if len(data) != addressData {
		return Address{}, fmt.Errorf("%w: got %d bytes", ErrDataLength, len(data))
	}
	k, err := ParseVersionByte(data[0])
	if err != nil {
		return Address{}, err
	}
	if _, err := decodePoint(data[1:]); err != nil {
		return Address{}, err
	}
	return Address{TagBits: k, Key: ed25519.PublicKey(data[1:])}, nil
}

// asciiEqualFold compares a with b, which must be ASCII, case-insensitively. Unlike strings.EqualFold
// alone it does not match Unicode look-alikes ("K", the Kelvin sign, for "k"): those are longer in
// UTF-8, and then a and b differ in length or rune count.
func asciiEqualFold(a, b string) bool { return len(a) == len(b) && strings.EqualFold(a, b) }

// X25519PublicKey is the address owner's X25519 public key (protocol.md §8.2): the Montgomery
// u-coordinate of the Ed25519 point (RFC 7748 §4.1).
func (a Address) X25519PublicKey() (*ecdh.PublicKey, error) { return montgomeryFromEdwards(a.Key) }

// TagKey is the owner's route-tag key (protocol.md §4).
func (a Address) TagKey() [32]byte { return TagKey(a.Key) }

// MakeTag writes a route tag for a block to this address (protocol.md §4): bits [0, k) are those of the
// tag key, bits [k, 64) come from r (crypto/rand when r is nil). Reading r must not fail: a tag with
// predictable bits would link a recipient's blocks, so a failing reader panics rather than degrade (as
// crypto/rand itself does).
func (a Address) MakeTag(r io.Reader) [8]byte {
	if r == nil {
		r = rand.Reader
	}
	var rnd [8]byte
	if _, err := io.ReadFull(r, rnd[:]); err != nil {
		panic("identity: reading randomness for a route tag: " + err.Error())
	}
	k := a.TagBits
	if k > MaxTagBits {
		k = MaxTagBits
	}
	key := a.TagKey()
	m := tagMask(k)
	t := binary.BigEndian.Uint64(key[:8])&m | binary.BigEndian.Uint64(rnd[:])&^m
	var tag [8]byte
	binary.BigEndian.PutUint64(tag[:], t)
	return tag
}
