package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"
)

// Envelope content of mail (protocol.md §10.1). A mail envelope (kind 1) carries a content type byte
// and then either the whole message or a manifest; chunk envelopes (kind 4) carry the pieces of a
// message that does not fit one envelope.
const (
	ContentInline   byte = 0x00 // kind 1: 0x00 ‖ RFC 5322 message
	ContentManifest byte = 0x01 // kind 1: 0x01 ‖ message id ‖ count ‖ length ‖ hash
	ContentBlob     byte = 0x02 // kind 1: 0x02 ‖ LE16 ref length ‖ blob ref ‖ header section (§13.7)

	// MaxBlobRef bounds the blob ref a kind-1 content may carry (protocol.md §13.2 allows at most 8
	// holders with 4 addresses of ≤ 256 bytes each; real refs are a few hundred bytes).
	MaxBlobRef = 12 << 10

	IDSize          = 16                      // message id: random bytes chosen by the sender
	ManifestSize    = 1 + IDSize + 2 + 4 + 32 // 55: the whole kind-1 content of a manifest
	ChunkHeaderSize = IDSize + 2 + 2          // 20: message id ‖ index u16 ‖ count u16

	// MaxChunks is the largest chunk count a manifest or chunk may declare.
	MaxChunks = 1024
	// MaxMessageSize is the largest message the chunked form may carry (25 MiB). A receiver may set
	// a lower limit (Reassembler.MaxMessageSize).
	MaxMessageSize = 25 << 20
)

// Errors of the content parsers and the Reassembler; test with errors.Is.
var (
	ErrContent      = errors.New("mail: malformed envelope content")
	ErrTooLarge     = errors.New("mail: message too large")
	ErrConflict     = errors.New("mail: chunks of a message do not agree")
	ErrHashMismatch = errors.New("mail: reassembled message does not match its manifest's hash")
	ErrPendingFull  = errors.New("mail: too many incomplete chunked messages")
)

// Manifest describes a chunked message (protocol.md §10.1).
type Manifest struct {
	ID     [IDSize]byte
	Count  int      // number of chunks, 2…MaxChunks
	Length int      // message length in bytes, Count…MaxMessageSize
	Hash   [32]byte // BLAKE2b-256 of the whole message
}

// Chunk is one piece of a chunked message (protocol.md §10.1).
type Chunk struct {
	ID    [IDSize]byte
	Index int // 0…Count−1
	Count int
	Data  []byte // at least one byte
}

// Encode returns the manifest's kind-1 envelope content (55 bytes).
func (m Manifest) Encode() []byte {
	b := make([]byte, 0, ManifestSize)
	b = append(b, ContentManifest)
	b = append(b, m.ID[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(m.Count))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.Length))
	return append(b, m.Hash[:]...)
}

// Encode returns the chunk's kind-4 envelope content.
func (c Chunk) Encode() []byte {
	b := make([]byte, 0, ChunkHeaderSize+len(c.Data))
	b = append(b, c.ID[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(c.Index))
	b = binary.LittleEndian.AppendUint16(b, uint16(c.Count))
	return append(b, c.Data...)
}

// EncodeInline returns the kind-1 envelope content that carries raw whole.
func EncodeInline(raw []byte) []byte {
	return append([]byte{ContentInline}, raw...)
}

// MailContent is a parsed kind-1 envelope content: exactly one of Inline, Manifest and Blob is set.
type MailContent struct {
	Inline   []byte // the message (aliases the content)
	Manifest *Manifest
	Blob     *BlobContent
}

// BlobContent is a mail whose message is a sealed blob (protocol.md §13.7). The mail layer does not
// parse the ref (package blob does, a layer above).
type BlobContent struct {
	Ref    []byte // the blob ref, §13.2 (aliases the content)
	Header []byte // the message's header section, for a notice before the blob is fetched (may be empty)
}

// EncodeBlob returns the kind-1 envelope content of a mail carried by a blob.
func EncodeBlob(ref, header []byte) ([]byte, error) {
	if len(ref) == 0 || len(ref) > MaxBlobRef {
		return nil, fmt.Errorf("%w: blob ref of %d bytes", ErrContent, len(ref))
	}
	b := make([]byte, 0, 3+len(ref)+len(header))
	b = append(b, ContentBlob)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ref)))
	b = append(b, ref...)
	return append(b, header...), nil
}

// ParseMailContent parses a kind-1 envelope content (protocol.md §10.1). Every rejection wraps
// ErrContent: an empty content or message, an unknown content type, a manifest that is not exactly
// 55 bytes, or a manifest whose count or length is out of range.
func ParseMailContent(content []byte) (MailContent, error) {
	if len(content) == 0 {
		return MailContent{}, fmt.Errorf("%w: empty", ErrContent)
	}
	switch content[0] {
	case ContentInline:
		if len(content) == 1 {
			return MailContent{}, fmt.Errorf("%w: empty message", ErrContent)
		}
		return MailContent{Inline: content[1:]}, nil
	case ContentManifest:
		if len(content) != ManifestSize {
			return MailContent{}, fmt.Errorf("%w: manifest is %d bytes, not %d", ErrContent, len(content), ManifestSize)
		}
		var m Manifest
		copy(m.ID[:], content[1:17])
		m.Count = int(binary.LittleEndian.Uint16(content[17:19]))
		m.Length = int(binary.LittleEndian.Uint32(content[19:23]))
		copy(m.Hash[:], content[23:55])
		if m.Count < 2 || m.Count > MaxChunks {
			return MailContent{}, fmt.Errorf("%w: chunk count %d outside 2…%d", ErrContent, m.Count, MaxChunks)
		}
		if m.Length < m.Count || m.Length > MaxMessageSize {
			return MailContent{}, fmt.Errorf("%w: length %d outside %d…%d", ErrContent, m.Length, m.Count, MaxMessageSize)
		}
		return MailContent{Manifest: &m}, nil
	case ContentBlob:
		if len(content) < 3 {
			return MailContent{}, fmt.Errorf("%w: blob content too short", ErrContent)
		}
		n := int(binary.LittleEndian.Uint16(content[1:3]))
		if n == 0 || n > MaxBlobRef || 3+n > len(content) {
			return MailContent{}, fmt.Errorf("%w: blob ref length %d out of bounds", ErrContent, n)
		}
		return MailContent{Blob: &BlobContent{Ref: content[3 : 3+n], Header: content[3+n:]}}, nil
	}
	return MailContent{}, fmt.Errorf("%w: unknown content type 0x%02x", ErrContent, content[0])
}

// ParseChunk parses a kind-4 envelope content (protocol.md §10.1). Data aliases content. Every
// rejection wraps ErrContent: shorter than 21 bytes, count outside 2…MaxChunks, index ≥ count.
func ParseChunk(content []byte) (Chunk, error) {
	if len(content) <= ChunkHeaderSize {
		return Chunk{}, fmt.Errorf("%w: chunk of %d bytes", ErrContent, len(content))
	}
	var c Chunk
	copy(c.ID[:], content[:IDSize])
	c.Index = int(binary.LittleEndian.Uint16(content[16:18]))
	c.Count = int(binary.LittleEndian.Uint16(content[18:20]))
	c.Data = content[ChunkHeaderSize:]
	if c.Count < 2 || c.Count > MaxChunks {
		return Chunk{}, fmt.Errorf("%w: chunk count %d outside 2…%d", ErrContent, c.Count, MaxChunks)
	}
	if c.Index >= c.Count {
		return Chunk{}, fmt.Errorf("%w: chunk index %d of %d", ErrContent, c.Index, c.Count)
	}
	return c, nil
}

// Split turns a message into envelope contents (protocol.md §10.1) for envelopes whose content holds
// at most maxContent bytes (seal.MaxContent, 32145, on the network). A message that fits whole
// (1 + len(raw) ≤ maxContent) gives the inline mail content and no chunks. Otherwise it gives the
// manifest as mail content and the chunks in order, each but the last carrying maxContent − 20 bytes
// of the message, under a fresh random message id. It fails with ErrTooLarge beyond MaxMessageSize
// or MaxChunks chunks; raw must not be empty. The chunks alias nothing; mail and chunks are the same
// for every recipient.
func Split(raw []byte, maxContent int) (mailContent []byte, chunks [][]byte, err error) {
	var id [IDSize]byte
	rand.Read(id[:])
	return SplitID(raw, maxContent, id)
}

// SplitID is Split with a given message id (for tests, and for a sender that must re-derive the same
// chunks after a restart).
func SplitID(raw []byte, maxContent int, id [IDSize]byte) (mailContent []byte, chunks [][]byte, err error) {
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("%w: empty message", ErrContent)
	}
	if 1+len(raw) <= maxContent {
		return EncodeInline(raw), nil, nil
	}
	per := maxContent - ChunkHeaderSize
	if per < 1 || maxContent < ManifestSize {
		return nil, nil, fmt.Errorf("mail: split: envelope content of %d bytes is too small", maxContent)
	}
	if len(raw) > MaxMessageSize {
		return nil, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(raw), MaxMessageSize)
	}
	count := (len(raw) + per - 1) / per
	if count > MaxChunks {
		return nil, nil, fmt.Errorf("%w: %d chunks of %d bytes, the limit is %d chunks", ErrTooLarge, count, per, MaxChunks)
	}
	m := Manifest{ID: id, Count: count, Length: len(raw), Hash: blake2b.Sum256(raw)}
	chunks = make([][]byte, 0, count)
	for i := 0; i < count; i++ {
		end := min((i+1)*per, len(raw))
		chunks = append(chunks, Chunk{ID: id, Index: i, Count: count, Data: raw[i*per : end]}.Encode())
	}
	return m.Encode(), chunks, nil
}

// HeaderSection returns raw's header section up to and including the empty line that ends it (CRLF or
// bare LF line ends), or nil when raw has none; it aliases raw. A blob mail's envelope carries it for
// the recipient's notice (protocol.md §13.7).
func HeaderSection(raw []byte) []byte {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return nil
		}
		line := raw[i : i+j+1]
		i += j + 1
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return raw[:i]
		}
	}
	return nil
}
