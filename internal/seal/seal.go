// Package seal owns the sealed envelope, the only payload of a version-1 block: the HPKE encryption of a
// signed, padded plaintext to one recipient, and the trial-opening of received payloads. It implements
// docs/protocol.md §6.
//
// Implementation notes:
//   - HPKE (RFC 9180) is Go's crypto/hpke in base mode (§5.1.1) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
//     and ChaCha20-Poly1305, single-shot (§6.1) with info = "tanglemail/v1/envelope" ‖ NID and empty aad.
//     Nothing here re-implements HPKE. The payload is enc (32 bytes) ‖ ct.
//   - The plaintext is version ‖ kind ‖ sender address version byte ‖ sender Ed25519 key ‖ LE64 sent ms ‖
//     LE32 content length ‖ content ‖ signature ‖ zero padding, padded to the smallest bucket (256 … 32256).
//     The Ed25519 signature (RFC 8032 §5.1.6, pure Ed25519) covers "tanglemail/v1/sig" ‖ NID ‖ recipient
//     Ed25519 key ‖ every plaintext field before it, so a recipient cannot re-seal a message to a third
//     party in the sender's name, nor move it to another network.
//   - Opening follows protocol.md §6 in order: tag check (no cryptography), a length check (the payload
//     length reveals the bucket, so a non-bucket length is malformed for every recipient and is rejected
//     before any cryptography), HPKE open (failure is ErrNotForUs: sealed to someone else and tampered are
//     indistinguishable by design), strict parse (ErrMalformed), signature with the opener's own key as
//     the recipient key (ErrBadSignature). The replay key is enc; filing an envelope at most once is the
//     caller's job.
//   - Parsing is strict: the plaintext length must be the smallest bucket that fits the content (§6
//     "is the smallest bucket"), padding must be zero, the sender's version byte must be a valid address
//     version, and the sender key must be a canonical Ed25519 point not of small order, as in an address.
//   - An Opener precomputes everything per identity (the HPKE private key, the tag matcher, the recipient
//     key) and holds no mutable state, so it is safe for concurrent use. Trial-opening a block sealed to
//     someone else costs one X25519, the HPKE key schedule and one failed AEAD; see the benchmarks.
//   - Open never panics on any input (FuzzOpen). Errors carry no key material and no content.
package seal

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Kind is the envelope kind (protocol.md §6). Relays cannot see it.
type Kind byte

// Envelope kinds.
const (
	KindMail    Kind = 1
	KindChat    Kind = 2
	KindReceipt Kind = 3
	KindChunk   Kind = 4
)

// Valid reports whether k is a version-1 kind.
func (k Kind) Valid() bool { return k >= KindMail && k <= KindChunk }

func (k Kind) String() string {
	switch k {
	case KindMail:
		return "mail"
	case KindChat:
		return "chat"
	case KindReceipt:
		return "receipt"
	case KindChunk:
		return "chunk"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Sizes (protocol.md §6).
const (
	Version      = 1
	EncSize      = 32 // HPKE enc, the X25519 ephemeral public key (RFC 9180 §7.1, Nenc)
	AEADOverhead = 16 // ChaCha20-Poly1305 tag (RFC 9180 §7.3, Nt)
	SignatureLen = ed25519.SignatureSize
	headerLen    = 1 + 1 + 1 + identity.PublicKeySize + 8 + 4 // 47
	// PlaintextOverhead is the plaintext bytes besides the content: header and signature.
	PlaintextOverhead = headerLen + SignatureLen // 111
	// MaxPlaintext is the largest padding bucket.
	MaxPlaintext = 32256
	// MaxContent is the largest content one envelope holds: 32256 − 111.
	MaxContent = MaxPlaintext - PlaintextOverhead // 32145
	// MinPayload and MaxPayload bound a well-formed payload: enc ‖ ct of the smallest/largest bucket.
	MinPayload = EncSize + 256 + AEADOverhead
	MaxPayload = EncSize + MaxPlaintext + AEADOverhead
)

// buckets are the plaintext lengths an envelope may have (protocol.md §6, padding).
var buckets = [...]int{256, 512, 1024, 2048, 4096, 8192, 16384, 32256}

const (
	infoPrefix = "tanglemail/v1/envelope" // 22 bytes; info = infoPrefix ‖ NID
	sigPrefix  = "tanglemail/v1/sig"
	infoLen    = len(infoPrefix) + 8
	sigHeadLen = len(sigPrefix) + 8 + identity.PublicKeySize
)

// Errors. Seal returns ErrTooLarge and ErrInvalidKind; Open wraps exactly one of ErrTagMismatch,
// ErrNotForUs, ErrMalformed and ErrBadSignature.
var (
	ErrTooLarge     = fmt.Errorf("seal: content larger than %d bytes does not fit one envelope", MaxContent)
	ErrInvalidKind  = errors.New("seal: invalid envelope kind")
	ErrTagMismatch  = errors.New("seal: route tag does not match the identity")
	ErrNotForUs     = errors.New("seal: envelope is not for this identity")
	ErrMalformed    = errors.New("seal: malformed envelope")
	ErrBadSignature = errors.New("seal: bad sender signature")
)

// ErrMalformedContent is wrapped by the errors of a kind's content parser when an envelope opened and
// verified but its content is invalid (chat.ErrMalformed wraps it). The inbox, which hands contents to
// those parsers through interfaces, tells a malformed content from a failure by it.
var ErrMalformedContent = errors.New("malformed content")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// The HPKE ciphersuite of protocol.md §6: KEM 0x0020, KDF 0x0001, AEAD 0x0003.
var (
	suiteKDF  = hpke.HKDFSHA256()
	suiteAEAD = hpke.ChaCha20Poly1305()
)

// PlaintextLen is the padded plaintext length for contentLen bytes of content: the smallest bucket
// ≥ 111 + contentLen. It returns ErrTooLarge above MaxContent.
func PlaintextLen(contentLen int) (int, error) {
	if contentLen < 0 || contentLen > MaxContent {
		return 0, ErrTooLarge
	}
	need := PlaintextOverhead + contentLen
	for _, b := range buckets {
		if b >= need {
			return b, nil
		}
	}
	return 0, ErrTooLarge // unreachable
}

// PayloadLen is the sealed payload length for contentLen bytes of content.
func PayloadLen(contentLen int) (int, error) {
	n, err := PlaintextLen(contentLen)
	if err != nil {
		return 0, err
	}
	return EncSize + n + AEADOverhead, nil
}

func isBucket(n int) bool {
	for _, b := range buckets {
		if n == b {
			return true
		}
	}
	return false
}

func info(network [8]byte) [infoLen]byte {
	var in [infoLen]byte
	copy(in[:], infoPrefix)
	copy(in[len(infoPrefix):], network[:])
	return in
}

// sigMessage is "tanglemail/v1/sig" ‖ NID ‖ recipient key ‖ signed (= pt[0 : 47+C]).
func sigMessage(network [8]byte, recipient []byte, signed []byte) []byte {
	m := make([]byte, 0, sigHeadLen+len(signed))
	m = append(m, sigPrefix...)
	m = append(m, network[:]...)
	m = append(m, recipient...)
	return append(m, signed...)
}

// Seal encrypts content of the given kind from `from` to `to` on network NID (protocol.md §6) and
// returns the payload enc ‖ ct. Randomness (the HPKE ephemeral key) comes from crypto/rand.
func Seal(from *identity.Identity, to identity.Address, network [8]byte, kind Kind, sent time.Time, content []byte) ([]byte, error) {
	if from == nil {
		return nil, errors.New("seal: nil sender identity")
	}
	if !kind.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrInvalidKind, byte(kind))
	}
	ptLen, err := PlaintextLen(len(content))
	if err != nil {
		return nil, err
	}
	ms := sent.UnixMilli()
	if ms < 0 {
		return nil, errors.New("seal: sent time before 1970")
	}
	if err := to.Validate(); err != nil {
		return nil, fmt.Errorf("seal: recipient: %w", err)
	}
	xpub, err := to.X25519PublicKey()
	if err != nil {
		return nil, fmt.Errorf("seal: recipient: %w", err)
	}
	pk, err := hpke.NewDHKEMPublicKey(xpub)
	if err != nil {
		return nil, err
	}

	pt := make([]byte, ptLen) // zero padding included
	pt[0] = Version
	pt[1] = byte(kind)
	pt[2] = from.Address().VersionByte()
	copy(pt[3:35], from.PublicKey())
	binary.LittleEndian.PutUint64(pt[35:43], uint64(ms))
	binary.LittleEndian.PutUint32(pt[43:47], uint32(len(content)))
	copy(pt[headerLen:], content)
	signedLen := headerLen + len(content)
	sig := from.Sign(sigMessage(network, to.Key, pt[:signedLen]))
	copy(pt[signedLen:], sig)

	in := info(network)
	payload, err := hpke.Seal(pk, suiteKDF, suiteAEAD, in[:], pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("seal: hpke: %w", err)
	}
	return payload, nil
}

// Message is an opened envelope.
type Message struct {
	Kind   Kind
	Sender identity.Address
	Sent   time.Time // Unix milliseconds precision
	// Content is the message layer's payload; it is owned by the Message.
	Content []byte
	// ReplayKey is the envelope's enc (protocol.md §6, opening step 5): file a given key at most once.
	ReplayKey [32]byte
}

// Opener trial-opens payloads for one identity. Build it once per identity with NewOpener; it is safe
// for concurrent use.
type Opener struct {
	id   *identity.Identity
	priv hpke.PrivateKey
	pub  []byte // the identity's Ed25519 key: the recipient key in the signature (§6)
}

// NewOpener prepares trial-opening for id.
func NewOpener(id *identity.Identity) (*Opener, error) {
	if id == nil {
		return nil, errors.New("seal: nil identity")
	}
	priv, err := hpke.NewDHKEMPrivateKey(newFastX25519(id))
	if err != nil {
		return nil, err
	}
	return &Opener{id: id, priv: priv, pub: id.PublicKey()}, nil
}

// Identity is the identity the opener opens for.
func (o *Opener) Identity() *identity.Identity { return o.id }

// Open trial-opens a block's payload carried with route tag `tag` on network NID (protocol.md §6,
// "Opening" steps 1–4). It returns ErrTagMismatch when the tag is not ours, ErrMalformed for a payload
// no recipient could accept (wrong length, or bad structure after decryption), ErrNotForUs when HPKE
// fails, and ErrBadSignature when the sender's signature does not verify for this recipient.
func (o *Opener) Open(network [8]byte, tag [8]byte, payload []byte) (*Message, error) {
	if !o.id.MatchTag(tag) {
		return nil, ErrTagMismatch
	}
	ptLen := len(payload) - EncSize - AEADOverhead
	if !isBucket(ptLen) {
		return nil, malformed("payload length %d is not enc + bucket + tag", len(payload))
	}
	in := info(network)
	pt, err := hpke.Open(o.priv, suiteKDF, suiteAEAD, in[:], payload)
	if err != nil {
		return nil, ErrNotForUs
	}
	m, err := o.parse(network, payload[:EncSize], pt)
	if err != nil {
		clear(pt)
		return nil, err
	}
	return m, nil
}

func (o *Opener) parse(network [8]byte, enc, pt []byte) (*Message, error) {
	if len(pt) < PlaintextOverhead {
		return nil, malformed("plaintext too short")
	}
	if pt[0] != Version {
		return nil, malformed("envelope version %d", pt[0])
	}
	kind := Kind(pt[1])
	if !kind.Valid() {
		return nil, malformed("kind %d", pt[1])
	}
	tagBits, err := identity.ParseVersionByte(pt[2])
	if err != nil {
		return nil, malformed("sender address version byte %#02x", pt[2])
	}
	sent := binary.LittleEndian.Uint64(pt[35:43])
	if sent > math.MaxInt64 {
		return nil, malformed("sent time out of range")
	}
	c := uint64(binary.LittleEndian.Uint32(pt[43:47]))
	if c > MaxContent {
		return nil, malformed("content length %d", c)
	}
	want, _ := PlaintextLen(int(c))
	if len(pt) != want {
		return nil, malformed("plaintext of %d bytes for %d bytes of content, want the %d-byte bucket", len(pt), c, want)
	}
	signedLen := headerLen + int(c)
	var nz byte
	for _, b := range pt[signedLen+SignatureLen:] {
		nz |= b
	}
	if nz != 0 {
		return nil, malformed("non-zero padding")
	}
	senderKey := ed25519.PublicKey(pt[3:35])
	// A small-order or non-canonically encoded sender key is not an address anyone holds (signatures
	// under a small-order key can be made by anyone), so it authenticates nobody. Together with a
	// successful Verify (which decodes the point) this is Address.Validate, without a second decode.
	if identity.CheckSignerKey(senderKey) != nil {
		return nil, ErrBadSignature
	}
	sig := pt[signedLen : signedLen+SignatureLen]
	if !ed25519.Verify(senderKey, sigMessage(network, o.pub, pt[:signedLen]), sig) {
		return nil, ErrBadSignature
	}
	sender := identity.Address{TagBits: tagBits, Key: append(ed25519.PublicKey(nil), senderKey...)}
	m := &Message{
		Kind:    kind,
		Sender:  sender,
		Sent:    time.UnixMilli(int64(sent)),
		Content: pt[headerLen:signedLen:signedLen],
	}
	copy(m.ReplayKey[:], enc)
	return m, nil
}
