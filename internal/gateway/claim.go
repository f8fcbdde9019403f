package gateway

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Claim request wire format (protocol.md §15.1). All integers little-endian.
//
//	version   1 byte   ClaimVersion (1)
//	op        1 byte   OpClaim (1) or OpRevoke (2)
//	time      8 bytes  issuing time, Unix milliseconds (signed)
//	nonce     16 bytes random
//	gateway   33 bytes the gateway's address, binary form (version byte ‖ Ed25519 key)
//	claimant  33 bytes the claimant's address, binary form
//	local     1 byte n ‖ n bytes: the local part, lower case, 1..64 bytes of [a-z0-9._-]
//	domain    1 byte n ‖ n bytes: the domain, lower case ASCII, 1..253 bytes
//	signature 64 bytes Ed25519 (RFC 8032) by the claimant over ClaimContext ‖ every byte before it
//
// Nothing may follow the signature.
const (
	ClaimVersion = 1
	OpClaim      = 1
	OpRevoke     = 2

	// ClaimContext is prefixed to the signed bytes, so that no other tanglemail signature can be
	// replayed as a claim.
	ClaimContext = "tanglemail/v1/gateway-claim"

	// ClaimSkew is how far a request's time may be from the gateway's clock.
	ClaimSkew = 5 * time.Minute

	claimFixed = 1 + 1 + 8 + 16 + identity.BinarySize*2
	// MaxClaimSize bounds an encoded request.
	MaxClaimSize = claimFixed + 1 + 64 + 1 + 253 + ed25519.SignatureSize
)

// Claim decoding errors; every error DecodeClaim returns wraps ErrClaimMalformed.
var (
	ErrClaimMalformed = errors.New("gateway: malformed claim request")
	ErrClaimSignature = errors.New("gateway: claim request signature does not verify")
)

// ClaimRequest asks a gateway to deliver name@domain to the claimant (OpClaim) or to stop (OpRevoke).
type ClaimRequest struct {
	Op       byte
	Time     time.Time // kept to the millisecond
	Nonce    [16]byte
	Gateway  identity.Address
	Claimant identity.Address
	Local    string
	Domain   string
	Sig      []byte
}

// Addr is the claimed address, local@domain.
func (c *ClaimRequest) Addr() string { return c.Local + "@" + c.Domain }

// signed is the request's bytes before the signature.
func (c *ClaimRequest) signed() []byte {
	b := make([]byte, 0, MaxClaimSize)
	b = append(b, ClaimVersion, c.Op)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
	b = append(b, c.Nonce[:]...)
	b = append(b, c.Gateway.Binary()...)
	b = append(b, c.Claimant.Binary()...)
	b = append(b, byte(len(c.Local)))
	b = append(b, c.Local...)
	b = append(b, byte(len(c.Domain)))
	b = append(b, c.Domain...)
	return b
}

func sigInput(signed []byte) []byte {
	return append([]byte(ClaimContext), signed...)
}

// SignClaim builds and signs a request by id. local and domain are lower-cased and checked.
func SignClaim(id *identity.Identity, op byte, gw identity.Address, local, domain string, now time.Time, nonce [16]byte) (*ClaimRequest, error) {
	c := &ClaimRequest{Op: op, Time: time.UnixMilli(now.UnixMilli()), Nonce: nonce, Gateway: gw,
		Claimant: id.Address(), Local: strings.ToLower(local), Domain: strings.ToLower(domain)}
	if err := c.check(); err != nil {
		return nil, err
	}
	c.Sig = id.Sign(sigInput(c.signed()))
	return c, nil
}

// Encode returns the request's wire form.
func (c *ClaimRequest) Encode() []byte {
	return append(c.signed(), c.Sig...)
}

func malformedClaim(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrClaimMalformed, fmt.Sprintf(format, args...))
}

// check checks the fields a decoder and a signer both need right.
func (c *ClaimRequest) check() error {
	if c.Op != OpClaim && c.Op != OpRevoke {
		return malformedClaim("unknown op %d", c.Op)
	}
	if err := CheckLocal(c.Local); err != nil {
		return malformedClaim("%v", err)
	}
	if err := CheckDomain(c.Domain); err != nil {
		return malformedClaim("%v", err)
	}
	return nil
}

// DecodeClaim parses a request's wire form and verifies its signature. It does not check time, nonce
// or gateway: Claims.Apply does.
func DecodeClaim(b []byte) (*ClaimRequest, error) {
	if len(b) < claimFixed+2+ed25519.SignatureSize {
		return nil, malformedClaim("%d bytes is too short", len(b))
	}
	if len(b) > MaxClaimSize {
		return nil, malformedClaim("%d bytes is too long", len(b))
	}
	if b[0] != ClaimVersion {
		return nil, malformedClaim("version %d", b[0])
	}
	c := &ClaimRequest{Op: b[1]}
	c.Time = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[2:10])))
	copy(c.Nonce[:], b[10:26])
	var err error
	off := 26
	if c.Gateway, err = identity.ParseBinaryAddress(b[off : off+identity.BinarySize]); err != nil {
		return nil, malformedClaim("gateway address: %v", err)
	}
	off += identity.BinarySize
	if c.Claimant, err = identity.ParseBinaryAddress(b[off : off+identity.BinarySize]); err != nil {
		return nil, malformedClaim("claimant address: %v", err)
	}
	off += identity.BinarySize
	str := func(what string) (string, error) {
		if off >= len(b) {
			return "", malformedClaim("truncated before the %s", what)
		}
		n := int(b[off])
		off++
		if n > len(b)-off {
			return "", malformedClaim("truncated %s", what)
		}
		s := string(b[off : off+n])
		off += n
		return s, nil
	}
	if c.Local, err = str("local part"); err != nil {
		return nil, err
	}
	if c.Domain, err = str("domain"); err != nil {
		return nil, err
	}
	if len(b)-off != ed25519.SignatureSize {
		return nil, malformedClaim("%d bytes where the %d-byte signature ends the request", len(b)-off, ed25519.SignatureSize)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	c.Sig = append([]byte(nil), b[off:]...)
	if !ed25519.Verify(c.Claimant.Key, sigInput(b[:off]), c.Sig) {
		return nil, fmt.Errorf("%w: %w", ErrClaimMalformed, ErrClaimSignature)
	}
	return c, nil
}

// CheckLocal checks a claimable local part: 1..64 bytes of lower-case a-z, 0-9, '.', '_', '-', not
// starting or ending with '.' and without "..": a dot-atom (RFC 5322 §3.2.3) that needs no quoting.
func CheckLocal(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return fmt.Errorf("local part of %d bytes (1..64)", len(s))
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return fmt.Errorf("local part %q: only lower-case a-z, 0-9, '.', '_', '-'", s)
		}
	}
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return fmt.Errorf("local part %q: misplaced '.'", s)
	}
	return nil
}

// CheckDomain checks a domain name: lower-case LDH labels (RFC 1123 §2.1) of 1..63 bytes, 253 in all.
func CheckDomain(s string) error {
	if len(s) == 0 || len(s) > 253 {
		return fmt.Errorf("domain of %d bytes (1..253)", len(s))
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("domain %q: bad label", s)
		}
		for i := 0; i < len(l); i++ {
			ch := l[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return fmt.Errorf("domain %q: only lower-case letters, digits and '-'", s)
			}
		}
	}
	return nil
}
