package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/wirebuf"
)

// Messages of the request/response protocol /tanglemail/<NID hex>/blocks/1 (see the package doc and
// protocol.md §7). Every message is one frame: a 4-byte little-endian body length, then the body, whose
// first byte is the message type. One request and one response per stream.
const (
	msgGetBlocks byte = 0x01 // count u16, count × id[32]
	msgBlocks    byte = 0x02 // count u16, count × (len u32, block[len])
	msgGetIDs    byte = 0x03 // shard u32, since i64 ms, after.time i64 ms, after.id[32], limit u16
	msgIDs       byte = 0x04 // more u8, count u16, count × (time i64 ms, id[32])
	msgAnnounce  byte = 0x05 // shard u32, since i64 ms
	msgOK        byte = 0x06 // (empty)
	msgGetDigest byte = 0x07 // shard u32, start i64 ms, slot u32 ms, count u16
	msgDigest    byte = 0x08 // count u16, count × (n u32, xor[32])
	msgError     byte = 0x7f // code u8
)

// Error codes of msgError.
const (
	errCodeBadRequest byte = 1 // malformed or over a bound
	errCodeBusy       byte = 2 // rate-limited or out of stream slots: retry later
	errCodeInternal   byte = 3 // the responder's store failed
)

// Hard protocol bounds. Limits may lower the first three, never raise them.
const (
	wireMaxIDsPerGet   = 1024
	wireMaxIDsPerPage  = 8192
	wireMaxBlocksBytes = 8 << 20
	wireMaxSlots       = 64
	// maxFrame bounds any frame a node reads: a full blocks response plus its per-block headers.
	maxFrame = wireMaxBlocksBytes + tangle.MaxBlockSize + 4*wireMaxIDsPerGet + 16
	// maxRequestFrame bounds request frames (the largest is a get-blocks with wireMaxIDsPerGet ids).
	maxRequestFrame = 3 + tangle.IDSize*wireMaxIDsPerGet
)

var errWire = errors.New("p2p: malformed message")

func wireErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errWire, fmt.Sprintf(format, args...))
}

// cursor is a position in a shard's (issuing time, id) order; the zero value is the start.
type cursor struct {
	Time int64
	ID   tangle.ID
}

// message is a decoded frame body. Exactly the fields of its Type are meaningful.
type message struct {
	Type   byte
	IDs    []tangle.ID // msgGetBlocks
	Blocks [][]byte    // msgBlocks: raw blocks, not yet validated
	Shard  uint32      // msgGetIDs, msgAnnounce
	Since  int64       // msgGetIDs, msgAnnounce: Unix ms
	After  cursor      // msgGetIDs
	Limit  int         // msgGetIDs
	More   bool        // msgIDs
	Items  []cursor    // msgIDs
	Code   byte        // msgError
	Slot   int64       // msgGetDigest: slot length, ms
	Digest []digest    // msgDigest; msgGetDigest: len is the slot count
}

// digest summarises the ids of one time slot: how many, and their XOR. Equal digests mean (barring an
// adversary, which can only make a peer skip syncing with it) the same set of blocks.
type digest struct {
	N   uint32
	XOR tangle.ID
}

func (d *digest) add(id tangle.ID) {
	d.N++
	for i := range id {
		d.XOR[i] ^= id[i]
	}
}

// encode serialises m into a frame body.
func (m *message) encode() []byte {
	var b []byte
	b = append(b, m.Type)
	switch m.Type {
	case msgGetBlocks:
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.IDs)))
		for _, id := range m.IDs {
			b = append(b, id[:]...)
		}
	case msgBlocks:
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Blocks)))
		for _, raw := range m.Blocks {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(raw)))
			b = append(b, raw...)
		}
	case msgGetIDs:
		b = binary.LittleEndian.AppendUint32(b, m.Shard)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Since))
		b = binary.LittleEndian.AppendUint64(b, uint64(m.After.Time))
		b = append(b, m.After.ID[:]...)
		b = binary.LittleEndian.AppendUint16(b, uint16(m.Limit))
	case msgIDs:
		more := byte(0)
		if m.More {
			more = 1
		}
		b = append(b, more)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Items)))
		for _, it := range m.Items {
			b = binary.LittleEndian.AppendUint64(b, uint64(it.Time))
			b = append(b, it.ID[:]...)
		}
	case msgAnnounce:
		b = binary.LittleEndian.AppendUint32(b, m.Shard)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Since))
	case msgGetDigest:
		b = binary.LittleEndian.AppendUint32(b, m.Shard)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Since))
		b = binary.LittleEndian.AppendUint32(b, uint32(m.Slot))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Digest)))
	case msgDigest:
		b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Digest)))
		for _, d := range m.Digest {
			b = binary.LittleEndian.AppendUint32(b, d.N)
			b = append(b, d.XOR[:]...)
		}
	case msgOK:
	case msgError:
		b = append(b, m.Code)
	}
	return b
}

// decodeMessage parses a frame body. It never panics and rejects trailing bytes, counts over the
// protocol bounds and unknown types.
func decodeMessage(body []byte) (*message, error) {
	if len(body) == 0 {
		return nil, wireErr("empty body")
	}
	m := &message{Type: body[0]}
	r := wirebuf.NewReader(body[1:], errTruncated)
	switch m.Type {
	case msgGetBlocks:
		n := int(r.U16())
		if n == 0 || n > wireMaxIDsPerGet {
			return nil, wireErr("get-blocks with %d ids", n)
		}
		m.IDs = make([]tangle.ID, 0, min(n, r.Len()/tangle.IDSize))
		for range n {
			m.IDs = append(m.IDs, readID(r))
		}
	case msgBlocks:
		n := int(r.U16())
		m.Blocks = make([][]byte, 0, min(n, r.Len()/(4+tangle.MinBlockSize)))
		for range n {
			l := int(r.U32())
			if l > tangle.MaxBlockSize {
				return nil, wireErr("block of %d bytes", l)
			}
			m.Blocks = append(m.Blocks, r.Copy(l))
			if r.Err() != nil {
				break
			}
		}
	case msgGetIDs:
		m.Shard = r.U32()
		m.Since = int64(r.U64())
		m.After.Time = int64(r.U64())
		m.After.ID = readID(r)
		m.Limit = int(r.U16())
		if r.Err() == nil && (m.Limit == 0 || m.Limit > wireMaxIDsPerPage) {
			return nil, wireErr("get-ids limit %d", m.Limit)
		}
	case msgIDs:
		more := r.U8()
		if r.Err() == nil && more > 1 {
			return nil, wireErr("more flag %d", more)
		}
		m.More = more == 1
		n := int(r.U16())
		if n > wireMaxIDsPerPage {
			return nil, wireErr("ids page of %d", n)
		}
		m.Items = make([]cursor, 0, min(n, r.Len()/(8+tangle.IDSize)))
		for range n {
			var c cursor
			c.Time = int64(r.U64())
			c.ID = readID(r)
			m.Items = append(m.Items, c)
		}
	case msgAnnounce:
		m.Shard = r.U32()
		m.Since = int64(r.U64())
	case msgGetDigest:
		m.Shard = r.U32()
		m.Since = int64(r.U64())
		m.Slot = int64(r.U32())
		n := int(r.U16())
		if r.Err() == nil && (n == 0 || n > wireMaxSlots || m.Slot == 0) {
			return nil, wireErr("get-digest of %d slots of %d ms", n, m.Slot)
		}
		if r.Err() == nil {
			m.Digest = make([]digest, n)
		}
	case msgDigest:
		n := int(r.U16())
		if n > wireMaxSlots {
			return nil, wireErr("%d digests", n)
		}
		m.Digest = make([]digest, 0, min(n, r.Len()/(4+tangle.IDSize)))
		for range n {
			var d digest
			d.N = r.U32()
			d.XOR = readID(r)
			m.Digest = append(m.Digest, d)
		}
	case msgOK:
	case msgError:
		m.Code = r.U8()
	default:
		return nil, wireErr("unknown message type 0x%02x", m.Type)
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if r.Len() != 0 {
		return nil, wireErr("%d trailing bytes", r.Len())
	}
	return m, nil
}

// errTruncated is the error of a read past the end of a frame body.
var errTruncated = wireErr("truncated")

// readID reads a block id.
func readID(r *wirebuf.Reader) tangle.ID {
	var id tangle.ID
	copy(id[:], r.Take(tangle.IDSize))
	return id
}

// writeFrame writes one frame.
func writeFrame(w io.Writer, body []byte) error {
	buf := make([]byte, 4, 4+len(body))
	binary.LittleEndian.PutUint32(buf, uint32(len(body)))
	buf = append(buf, body...)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame of at most limit body bytes. It allocates only after the length passed.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || uint64(n) > uint64(limit) {
		return nil, wireErr("frame of %d bytes, limit %d", n, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}
