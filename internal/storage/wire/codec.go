package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/wirebuf"
)

// Bounds of protocol.md §12.1.
const (
	// MaxBody is the largest frame body (type byte excluded): a page of blocks of up to 4 MiB plus its
	// per-block headers.
	MaxBody = 4<<20 + 64<<10
	// MaxPageBytes bounds the block bytes of one blocks frame; MaxPageCount its blocks.
	MaxPageBytes = 4 << 20
	MaxPageCount = 4096
	// MaxGrant bounds a grant token; MaxMsg an error message; MaxTips the ids of a tips frame.
	MaxGrant = 256
	MaxMsg   = 1024
	MaxTips  = 64
	// MaxPrefixBits bounds Prefix.Bits.
	MaxPrefixBits = 16
	// NonceSize is the server nonce of a challenge.
	NonceSize = 32
	// AuthDomain is the domain separator of the signed challenge.
	AuthDomain = "tanglemail/v1/storage-auth"
)

// Message types (protocol.md §12.1).
const (
	TCreate     byte = 0x01
	TCreated    byte = 0x02
	TChallenge  byte = 0x03 // request: sub id
	TNonce      byte = 0x04 // response: server nonce
	TAuth       byte = 0x05
	TOK         byte = 0x06
	TFetch      byte = 0x07
	TBlocks     byte = 0x08
	TRelease    byte = 0x09
	TWatch      byte = 0x0b
	TPush       byte = 0x0c
	TPublish    byte = 0x0d
	TTips       byte = 0x0f
	TTipsResp   byte = 0x10
	TStatus     byte = 0x11
	TStatusResp byte = 0x12
	TError      byte = 0x7f
)

// Prefix is a route-tag prefix: the first Bits bits (MSB first) of Tag (protocol.md §4). Bits ≤ 16;
// the bits of Tag past Bits are zero on the wire.
type Prefix struct {
	Bits uint8
	Tag  [8]byte
}

// Matches reports whether tag starts with the prefix.
func (p Prefix) Matches(tag tangle.Tag) bool {
	full := int(p.Bits) / 8
	for i := 0; i < full; i++ {
		if tag[i] != p.Tag[i] {
			return false
		}
	}
	if rem := p.Bits % 8; rem != 0 {
		mask := byte(0xff) << (8 - rem)
		return tag[full]&mask == p.Tag[full]&mask
	}
	return true
}

// Canonical returns p with the bits past Bits cleared.
func (p Prefix) Canonical() Prefix {
	var out Prefix
	out.Bits = p.Bits
	full := int(p.Bits) / 8
	copy(out.Tag[:full], p.Tag[:full])
	if rem := p.Bits % 8; rem != 0 && full < 8 {
		out.Tag[full] = p.Tag[full] & (byte(0xff) << (8 - rem))
	}
	return out
}

// PrefixOf is the Bits-bit prefix of tag.
func PrefixOf(tag tangle.Tag, bits uint8) Prefix {
	return Prefix{Bits: bits, Tag: tag}.Canonical()
}

func (p Prefix) valid() bool { return p.Bits >= 1 && p.Bits <= MaxPrefixBits && p.Canonical() == p }

// SubID names a subscription (random, chosen by the provider).
type SubID [16]byte

// Cursor is a position in a subscription's stream of stored blocks: exclusive (Fetch returns blocks
// strictly after it); 0 is before the first block.
type Cursor uint64

// SubState is a subscription's state: Pending → Active → Expired.
type SubState uint8

// Subscription states.
const (
	Pending SubState = 1
	Active  SubState = 2
	Expired SubState = 3
)

func (s SubState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Active:
		return "active"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// CreateRequest asks for a subscription. Key is the subscription's own key (fresh per subscription,
// never an identity key). Grant is an operator's one-time token ("" for none).
type CreateRequest struct {
	Prefix        Prefix
	RetentionDays uint32
	QuotaMiB      uint32
	Key           ed25519.PublicKey
	Grant         string
}

// Status is a subscription's state as its holder sees it.
type Status struct {
	ID            SubID
	State         SubState
	UsedBytes     uint64
	QuotaBytes    uint64
	Blocks        uint64
	Expires       time.Time // zero while pending
	Prefix        Prefix
	RetentionDays uint32
}

// Pushed is one stored block and its cursor.
type Pushed struct {
	Cursor Cursor
	Block  []byte
}

// AuthMessage is the 32-byte digest the subscription key signs (protocol.md §12.2):
// SHA-256("tanglemail/v1/storage-auth" ‖ len(provider) u8 ‖ provider peer id bytes ‖ sub id ‖ nonce).
func AuthMessage(provider peer.ID, id SubID, nonce [NonceSize]byte) []byte {
	h := sha256.New()
	h.Write([]byte(AuthDomain))
	pid := []byte(provider)
	h.Write([]byte{byte(len(pid))})
	h.Write(pid)
	h.Write(id[:])
	h.Write(nonce[:])
	return h.Sum(nil)
}

// Messages. Each is one frame; Encode/Decode convert (protocol.md §12.1).
type (
	// MsgCreate (0x01): bits u8 ‖ tag[8] ‖ retention u32 ‖ quota u32 ‖ key[32] ‖ glen u16 ‖ grant.
	MsgCreate struct{ Req CreateRequest }
	// MsgCreated (0x02): id[16] ‖ state u8.
	MsgCreated struct {
		ID    SubID
		State SubState
	}
	// MsgChallenge (0x03): id[16].
	MsgChallenge struct{ ID SubID }
	// MsgNonce (0x04): nonce[32].
	MsgNonce struct{ Nonce [NonceSize]byte }
	// MsgAuth (0x05): sig[64].
	MsgAuth struct{ Sig [ed25519.SignatureSize]byte }
	// MsgOK (0x06): empty.
	MsgOK struct{}
	// MsgFetch (0x07): after u64 ‖ max_count u32 ‖ max_bytes u32.
	MsgFetch struct {
		After    Cursor
		MaxCount uint32
		MaxBytes uint32
	}
	// MsgBlocks (0x08): next u64 ‖ more u8 ‖ count u16 ‖ count × (cursor u64 ‖ len u32 ‖ block).
	MsgBlocks struct {
		Next   Cursor
		More   bool
		Blocks []Pushed
	}
	// MsgRelease (0x09): up_to u64.
	MsgRelease struct{ UpTo Cursor }
	// MsgWatch (0x0b): empty.
	MsgWatch struct{}
	// MsgPush (0x0c): cursor u64 ‖ block.
	MsgPush struct{ P Pushed }
	// MsgPublish (0x0d): block.
	MsgPublish struct{ Raw []byte }
	// MsgTips (0x0f): shard u32 ‖ n u16.
	MsgTips struct {
		Shard uint32
		N     uint16
	}
	// MsgTipsResp (0x10): count u16 ‖ count × id[32].
	MsgTipsResp struct{ IDs []tangle.ID }
	// MsgStatus (0x11): empty.
	MsgStatus struct{}
	// MsgStatusResp (0x12): id[16] ‖ state u8 ‖ used u64 ‖ quota u64 ‖ blocks u64 ‖ expires i64 ms ‖
	// bits u8 ‖ tag[8] ‖ retention u32.
	MsgStatusResp struct{ S Status }
	// MsgError (0x7f): code u8 ‖ mlen u16 ‖ message.
	MsgError struct{ E Error }
)

// Msg is any message.
type Msg interface{ Type() byte }

func (MsgCreate) Type() byte     { return TCreate }
func (MsgCreated) Type() byte    { return TCreated }
func (MsgChallenge) Type() byte  { return TChallenge }
func (MsgNonce) Type() byte      { return TNonce }
func (MsgAuth) Type() byte       { return TAuth }
func (MsgOK) Type() byte         { return TOK }
func (MsgFetch) Type() byte      { return TFetch }
func (MsgBlocks) Type() byte     { return TBlocks }
func (MsgRelease) Type() byte    { return TRelease }
func (MsgWatch) Type() byte      { return TWatch }
func (MsgPush) Type() byte       { return TPush }
func (MsgPublish) Type() byte    { return TPublish }
func (MsgTips) Type() byte       { return TTips }
func (MsgTipsResp) Type() byte   { return TTipsResp }
func (MsgStatus) Type() byte     { return TStatus }
func (MsgStatusResp) Type() byte { return TStatusResp }
func (MsgError) Type() byte      { return TError }

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("storage wire: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

var le = binary.LittleEndian

// Encode returns m's frame: length u32 LE (of type ‖ body) ‖ type ‖ body.
func Encode(m Msg) ([]byte, error) {
	b := make([]byte, 5, 64)
	b[4] = m.Type()
	switch m := m.(type) {
	case MsgCreate:
		r := m.Req
		if len(r.Key) != ed25519.PublicKeySize {
			return nil, malformed("create: key of %d bytes", len(r.Key))
		}
		if len(r.Grant) > MaxGrant {
			return nil, malformed("create: grant of %d bytes", len(r.Grant))
		}
		b = append(b, r.Prefix.Bits)
		b = append(b, r.Prefix.Tag[:]...)
		b = le.AppendUint32(b, r.RetentionDays)
		b = le.AppendUint32(b, r.QuotaMiB)
		b = append(b, r.Key...)
		b = le.AppendUint16(b, uint16(len(r.Grant)))
		b = append(b, r.Grant...)
	case MsgCreated:
		b = append(b, m.ID[:]...)
		b = append(b, byte(m.State))
	case MsgChallenge:
		b = append(b, m.ID[:]...)
	case MsgNonce:
		b = append(b, m.Nonce[:]...)
	case MsgAuth:
		b = append(b, m.Sig[:]...)
	case MsgOK, MsgWatch, MsgStatus:
	case MsgFetch:
		b = le.AppendUint64(b, uint64(m.After))
		b = le.AppendUint32(b, m.MaxCount)
		b = le.AppendUint32(b, m.MaxBytes)
	case MsgBlocks:
		if len(m.Blocks) > MaxPageCount {
			return nil, malformed("blocks: %d blocks", len(m.Blocks))
		}
		b = le.AppendUint64(b, uint64(m.Next))
		b = append(b, boolByte(m.More))
		b = le.AppendUint16(b, uint16(len(m.Blocks)))
		for _, p := range m.Blocks {
			if len(p.Block) > tangle.MaxBlockSize {
				return nil, malformed("blocks: block of %d bytes", len(p.Block))
			}
			b = le.AppendUint64(b, uint64(p.Cursor))
			b = le.AppendUint32(b, uint32(len(p.Block)))
			b = append(b, p.Block...)
		}
	case MsgRelease:
		b = le.AppendUint64(b, uint64(m.UpTo))
	case MsgPush:
		if len(m.P.Block) > tangle.MaxBlockSize {
			return nil, malformed("push: block of %d bytes", len(m.P.Block))
		}
		b = le.AppendUint64(b, uint64(m.P.Cursor))
		b = append(b, m.P.Block...)
	case MsgPublish:
		if len(m.Raw) > tangle.MaxBlockSize {
			return nil, malformed("publish: block of %d bytes", len(m.Raw))
		}
		b = append(b, m.Raw...)
	case MsgTips:
		b = le.AppendUint32(b, m.Shard)
		b = le.AppendUint16(b, m.N)
	case MsgTipsResp:
		if len(m.IDs) > MaxTips {
			return nil, malformed("tips: %d ids", len(m.IDs))
		}
		b = le.AppendUint16(b, uint16(len(m.IDs)))
		for _, id := range m.IDs {
			b = append(b, id[:]...)
		}
	case MsgStatusResp:
		s := m.S
		b = append(b, s.ID[:]...)
		b = append(b, byte(s.State))
		b = le.AppendUint64(b, s.UsedBytes)
		b = le.AppendUint64(b, s.QuotaBytes)
		b = le.AppendUint64(b, s.Blocks)
		var ms int64
		if !s.Expires.IsZero() {
			ms = s.Expires.UnixMilli()
		}
		b = le.AppendUint64(b, uint64(ms))
		b = append(b, s.Prefix.Bits)
		b = append(b, s.Prefix.Tag[:]...)
		b = le.AppendUint32(b, s.RetentionDays)
	case MsgError:
		msg := m.E.Msg
		if len(msg) > MaxMsg {
			msg = msg[:MaxMsg]
		}
		b = append(b, byte(m.E.Code))
		b = le.AppendUint16(b, uint16(len(msg)))
		b = append(b, msg...)
	default:
		return nil, fmt.Errorf("storage wire: cannot encode %T", m)
	}
	if len(b)-5 > MaxBody {
		return nil, malformed("frame body of %d bytes", len(b)-5)
	}
	le.PutUint32(b[:4], uint32(len(b)-4))
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// WriteMsg writes m's frame to w.
func WriteMsg(w io.Writer, m Msg) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// MaxRequest bounds a client's frame (type included): the largest request is a publish of one block.
const MaxRequest = 1 + tangle.MaxBlockSize

// ReadMsg reads one frame from r and decodes it. A frame longer than MaxBody+1 is refused before it is
// read.
func ReadMsg(r io.Reader) (Msg, error) { return ReadMsgLimit(r, MaxBody+1) }

// ReadMsgLimit is ReadMsg with a smaller bound on the frame length (type ‖ body): a provider reads
// requests with MaxRequest, so a client cannot make it hold 4 MiB per stream.
func ReadMsgLimit(r io.Reader, limit uint32) (Msg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := le.Uint32(hdr[:])
	if n < 1 || n > limit || n > MaxBody+1 {
		return nil, malformed("frame length %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(buf)
}

// errTruncated is the error of a read past the end of a frame body.
var errTruncated = malformed("truncated")

// Decode decodes one frame without its length: type ‖ body. Trailing bytes, unknown types and values
// out of range are errors wrapping ErrMalformed.
func Decode(frame []byte) (Msg, error) {
	if len(frame) < 1 {
		return nil, malformed("empty frame")
	}
	if len(frame)-1 > MaxBody {
		return nil, malformed("frame body of %d bytes", len(frame)-1)
	}
	r := wirebuf.NewReader(frame[1:], errTruncated)
	var m Msg
	switch frame[0] {
	case TCreate:
		var c CreateRequest
		c.Prefix.Bits = r.U8()
		copy(c.Prefix.Tag[:], r.Take(8))
		c.RetentionDays = r.U32()
		c.QuotaMiB = r.U32()
		if k := r.Take(ed25519.PublicKeySize); k != nil {
			c.Key = append(ed25519.PublicKey(nil), k...)
		}
		gl := int(r.U16())
		if r.Err() == nil && gl > MaxGrant {
			return nil, malformed("create: grant of %d bytes", gl)
		}
		c.Grant = string(r.Take(gl))
		if r.Err() == nil && !c.Prefix.valid() {
			return nil, malformed("create: prefix of %d bits (want 1..%d, canonical)", c.Prefix.Bits, MaxPrefixBits)
		}
		m = MsgCreate{Req: c}
	case TCreated:
		var c MsgCreated
		copy(c.ID[:], r.Take(16))
		c.State = SubState(r.U8())
		if r.Err() == nil && (c.State < Pending || c.State > Expired) {
			return nil, malformed("created: state %d", c.State)
		}
		m = c
	case TChallenge:
		var c MsgChallenge
		copy(c.ID[:], r.Take(16))
		m = c
	case TNonce:
		var c MsgNonce
		copy(c.Nonce[:], r.Take(NonceSize))
		m = c
	case TAuth:
		var c MsgAuth
		copy(c.Sig[:], r.Take(ed25519.SignatureSize))
		m = c
	case TOK:
		m = MsgOK{}
	case TWatch:
		m = MsgWatch{}
	case TStatus:
		m = MsgStatus{}
	case TFetch:
		m = MsgFetch{After: Cursor(r.U64()), MaxCount: r.U32(), MaxBytes: r.U32()}
	case TBlocks:
		var c MsgBlocks
		c.Next = Cursor(r.U64())
		more := r.U8()
		if r.Err() == nil && more > 1 {
			return nil, malformed("blocks: more = %d", more)
		}
		c.More = more == 1
		n := int(r.U16())
		if r.Err() == nil && n > MaxPageCount {
			return nil, malformed("blocks: %d blocks", n)
		}
		total := 0
		for i := 0; i < n && r.Err() == nil; i++ {
			cur := Cursor(r.U64())
			l := int(r.U32())
			if r.Err() == nil && (l < 1 || l > tangle.MaxBlockSize) {
				return nil, malformed("blocks: block of %d bytes", l)
			}
			blk := r.Take(l)
			total += l
			if r.Err() == nil && total > MaxPageBytes+tangle.MaxBlockSize {
				return nil, malformed("blocks: %d bytes in one page", total)
			}
			if blk != nil {
				c.Blocks = append(c.Blocks, Pushed{Cursor: cur, Block: append([]byte(nil), blk...)})
			}
		}
		m = c
	case TRelease:
		m = MsgRelease{UpTo: Cursor(r.U64())}
	case TPush:
		var c MsgPush
		c.P.Cursor = Cursor(r.U64())
		c.P.Block = r.Copy(r.Len())
		if r.Err() == nil && (len(c.P.Block) < 1 || len(c.P.Block) > tangle.MaxBlockSize) {
			return nil, malformed("push: block of %d bytes", len(c.P.Block))
		}
		m = c
	case TPublish:
		raw := r.Copy(r.Len())
		if len(raw) < 1 || len(raw) > tangle.MaxBlockSize {
			return nil, malformed("publish: block of %d bytes", len(raw))
		}
		m = MsgPublish{Raw: raw}
	case TTips:
		m = MsgTips{Shard: r.U32(), N: r.U16()}
	case TTipsResp:
		var c MsgTipsResp
		n := int(r.U16())
		if r.Err() == nil && n > MaxTips {
			return nil, malformed("tips: %d ids", n)
		}
		for i := 0; i < n && r.Err() == nil; i++ {
			var id tangle.ID
			copy(id[:], r.Take(tangle.IDSize))
			c.IDs = append(c.IDs, id)
		}
		m = c
	case TStatusResp:
		var s Status
		copy(s.ID[:], r.Take(16))
		s.State = SubState(r.U8())
		s.UsedBytes = r.U64()
		s.QuotaBytes = r.U64()
		s.Blocks = r.U64()
		if ms := int64(r.U64()); ms != 0 {
			s.Expires = time.UnixMilli(ms).UTC()
		}
		s.Prefix.Bits = r.U8()
		copy(s.Prefix.Tag[:], r.Take(8))
		s.RetentionDays = r.U32()
		if r.Err() == nil && (s.State < Pending || s.State > Expired) {
			return nil, malformed("status: state %d", s.State)
		}
		m = MsgStatusResp{S: s}
	case TError:
		var e Error
		e.Code = Code(r.U8())
		ml := int(r.U16())
		if r.Err() == nil && ml > MaxMsg {
			return nil, malformed("error: message of %d bytes", ml)
		}
		e.Msg = string(r.Take(ml))
		m = MsgError{E: e}
	default:
		return nil, malformed("unknown type 0x%02x", frame[0])
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if r.Len() != 0 {
		return nil, malformed("%d trailing bytes after type 0x%02x", r.Len(), frame[0])
	}
	return m, nil
}
