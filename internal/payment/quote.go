package payment

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/wirebuf"
)

// SubID is a storage subscription id (the storage protocol's wire.SubID, protocol.md §12).
type SubID [16]byte

// Nanos is an amount of IOTA in nano-IOTA (10^-9 IOTA). On IOTA EVM (18 decimals) one nano is
// 10^9 wei: the smallest value that chain keeps (protocol.md §14.1).
type Nanos uint64

// WeiPerNano is 10^9: the wei in one nano-IOTA.
var WeiPerNano = big.NewInt(1_000_000_000)

// Wei returns n in wei (n × 10^9).
func (n Nanos) Wei() *big.Int { return new(big.Int).Mul(new(big.Int).SetUint64(uint64(n)), WeiPerNano) }

// String formats n in IOTA, e.g. "1.5 IOTA", "0.000000001 IOTA".
func (n Nanos) String() string { return FormatIOTA(n.Wei()) }

// FormatIOTA formats an amount of wei (10^-18 IOTA) in IOTA with no trailing zeros.
func FormatIOTA(wei *big.Int) string {
	if wei == nil {
		return "0 IOTA"
	}
	neg := wei.Sign() < 0
	q, r := new(big.Int).QuoRem(new(big.Int).Abs(wei), big.NewInt(1e18), new(big.Int))
	s := q.String()
	if r.Sign() != 0 {
		frac := fmt.Sprintf("%018s", r.String())
		s += "." + string(bytes.TrimRight([]byte(frac), "0"))
	}
	if neg {
		s = "-" + s
	}
	return s + " IOTA"
}

// RoundUpWei returns the smallest Nanos worth at least wei (the rail's rounding: IOTA EVM drops the
// digits below 10^9 wei). It fails when wei is negative or does not fit.
func RoundUpWei(wei *big.Int) (Nanos, error) {
	if wei.Sign() < 0 {
		return 0, errors.New("payment: negative amount")
	}
	q, r := new(big.Int).QuoRem(wei, WeiPerNano, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsUint64() {
		return 0, errors.New("payment: amount too large")
	}
	return Nanos(q.Uint64()), nil
}

// Price returns the amount for mib MiB kept days days at pricePerMiBDay, or an error on overflow.
func Price(pricePerMiBDay Nanos, mib, days uint32) (Nanos, error) {
	hi, lo := bits.Mul64(uint64(pricePerMiBDay), uint64(mib)*uint64(days))
	if hi != 0 {
		return 0, errors.New("payment: price overflows")
	}
	return Nanos(lo), nil
}

// RailKind names a payment rail in a quote (protocol.md §14.1).
type RailKind uint8

const (
	// RailEVM is Ethereum JSON-RPC: IOTA EVM (chain id 8822) or any EVM chain. Addresses are 20 bytes.
	RailEVM RailKind = 1
	// RailMove is reserved for a Move escrow on IOTA Rebased (32-byte addresses); not implemented.
	RailMove RailKind = 2
)

// IOTAEVMChainID is IOTA EVM mainnet's chain id.
const IOTAEVMChainID = 8822

// Quote is a provider's signed offer for one subscription (protocol.md §14.1).
type Quote struct {
	Rail    RailKind
	ChainID uint64
	Sub     SubID
	Address []byte // the payee on the rail (EVM: 20 bytes)
	Amount  Nanos  // > 0
	MiB     uint32 // quota bought
	Days    uint32 // period bought, > 0
	Expires time.Time
	Signer  ed25519.PublicKey // the provider's quote key
	Sig     []byte            // Ed25519 over quoteDomain ‖ encoding without Sig
}

const (
	quoteVersion = 1
	quoteDomain  = "tanglemail/v1/payment-quote"
	maxAddrLen   = 32
	// MaxQuoteLen bounds an encoded quote.
	MaxQuoteLen = 2 + 8 + 16 + 1 + maxAddrLen + 8 + 4 + 4 + 8 + ed25519.PublicKeySize + ed25519.SignatureSize
)

// Quote errors. Decode wraps ErrMalformedQuote; Check returns the others.
var (
	ErrMalformedQuote = errors.New("payment: malformed quote")
	ErrBadSignature   = errors.New("payment: quote signature does not verify (or it is not this provider's)")
	ErrQuoteExpired   = errors.New("payment: quote expired; ask the provider for a new one")
)

func (q *Quote) appendBody(b []byte) []byte {
	b = append(b, quoteVersion, byte(q.Rail))
	b = binary.LittleEndian.AppendUint64(b, q.ChainID)
	b = append(b, q.Sub[:]...)
	b = append(b, byte(len(q.Address)))
	b = append(b, q.Address...)
	b = binary.LittleEndian.AppendUint64(b, uint64(q.Amount))
	b = binary.LittleEndian.AppendUint32(b, q.MiB)
	b = binary.LittleEndian.AppendUint32(b, q.Days)
	b = binary.LittleEndian.AppendUint64(b, uint64(q.Expires.Unix()))
	b = append(b, q.Signer...)
	return b
}

func (q *Quote) validate() error {
	switch {
	case q.Rail == RailEVM && len(q.Address) != 20:
		return fmt.Errorf("%w: EVM address of %d bytes", ErrMalformedQuote, len(q.Address))
	case q.Rail != RailEVM && q.Rail != RailMove:
		return fmt.Errorf("%w: unknown rail %d", ErrMalformedQuote, q.Rail)
	case len(q.Address) == 0 || len(q.Address) > maxAddrLen:
		return fmt.Errorf("%w: address of %d bytes", ErrMalformedQuote, len(q.Address))
	case q.Amount == 0:
		return fmt.Errorf("%w: zero amount", ErrMalformedQuote)
	case q.Days == 0:
		return fmt.Errorf("%w: zero days", ErrMalformedQuote)
	case q.Expires.Unix() <= 0:
		return fmt.Errorf("%w: no expiry", ErrMalformedQuote)
	case len(q.Signer) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: signer key of %d bytes", ErrMalformedQuote, len(q.Signer))
	}
	return nil
}

// Sign sets q.Signer and q.Sig with the provider's key.
func (q *Quote) Sign(key ed25519.PrivateKey) error {
	q.Signer = key.Public().(ed25519.PublicKey)
	if err := q.validate(); err != nil {
		return err
	}
	q.Sig = ed25519.Sign(key, q.appendBody([]byte(quoteDomain)))
	return nil
}

// Encode returns the quote's encoding (protocol.md §14.1). The quote must be signed.
func (q *Quote) Encode() ([]byte, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	if len(q.Sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: not signed", ErrMalformedQuote)
	}
	return append(q.appendBody(make([]byte, 0, MaxQuoteLen)), q.Sig...), nil
}

// DecodeQuote parses an encoded quote. It checks the encoding (canonical, bounded) and the signature
// against the key the quote names; that this key is the provider's is the caller's check (Check).
func DecodeQuote(b []byte) (*Quote, error) {
	if len(b) > MaxQuoteLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformedQuote, len(b))
	}
	r := wirebuf.NewReader(b, ErrMalformedQuote)
	if v := r.U8(); v != quoteVersion {
		if r.Err() != nil {
			return nil, fmt.Errorf("%w: empty", ErrMalformedQuote)
		}
		return nil, fmt.Errorf("%w: version %d (this program reads %d)", ErrMalformedQuote, v, quoteVersion)
	}
	q := &Quote{Rail: RailKind(r.U8()), ChainID: r.U64()}
	copy(q.Sub[:], r.Take(16))
	q.Address = bytes.Clone(r.Take(int(r.U8())))
	q.Amount = Nanos(r.U64())
	q.MiB = r.U32()
	q.Days = r.U32()
	exp := r.U64()
	q.Signer = bytes.Clone(r.Take(ed25519.PublicKeySize))
	q.Sig = bytes.Clone(r.Take(ed25519.SignatureSize))
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: truncated", ErrMalformedQuote)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedQuote, r.Len())
	}
	if exp == 0 || exp > math.MaxInt64/2 {
		return nil, fmt.Errorf("%w: expiry %d", ErrMalformedQuote, exp)
	}
	q.Expires = time.Unix(int64(exp), 0).UTC()
	if err := q.validate(); err != nil {
		return nil, err
	}
	if !ed25519.Verify(q.Signer, q.appendBody([]byte(quoteDomain)), q.Sig) {
		return nil, ErrBadSignature
	}
	return q, nil
}

// Check verifies that q is signed by provider and has not expired at now.
func (q *Quote) Check(provider ed25519.PublicKey, now time.Time) error {
	if len(q.Sig) != ed25519.SignatureSize || !bytes.Equal(q.Signer, provider) ||
		!ed25519.Verify(provider, q.appendBody([]byte(quoteDomain)), q.Sig) {
		return ErrBadSignature
	}
	if !now.Before(q.Expires) {
		return fmt.Errorf("%w (expired %s)", ErrQuoteExpired, q.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// Digest is SHA-256 of the quote's encoding.
func (q *Quote) Digest() [32]byte {
	enc, err := q.Encode()
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(enc)
}

// CalldataMagic starts the calldata of a payment (protocol.md §14.2): "tmp1".
var CalldataMagic = [4]byte{'t', 'm', 'p', '1'}

// Calldata is what a payment transaction carries to name its quote (protocol.md §14.2):
// "tmp1" ‖ subscription id (16) ‖ the first 16 bytes of the quote's Digest.
func (q *Quote) Calldata() []byte {
	d := q.Digest()
	out := make([]byte, 0, 36)
	out = append(out, CalldataMagic[:]...)
	out = append(out, q.Sub[:]...)
	return append(out, d[:16]...)
}

// ParseIOTA parses a decimal amount of IOTA ("1.5", "0.000001") into nano-IOTA; at most 9 decimals.
func ParseIOTA(s string) (Nanos, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "IOTA"))
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" {
		whole = "0"
	}
	if len(frac) > 9 || strings.ContainsAny(whole+frac, "+-") {
		return 0, fmt.Errorf("payment: %q: want an amount of IOTA with at most 9 decimals, such as 0.001", s)
	}
	w, err1 := strconv.ParseUint(whole, 10, 64)
	f := uint64(0)
	var err2 error
	if frac != "" {
		f, err2 = strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	hi, lo := bits.Mul64(w, 1_000_000_000)
	if err1 != nil || err2 != nil || hi != 0 || lo+f < lo {
		return 0, fmt.Errorf("payment: %q: want an amount of IOTA with at most 9 decimals, such as 0.001", s)
	}
	return Nanos(lo + f), nil
}
