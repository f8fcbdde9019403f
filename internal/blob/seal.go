package blob

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the blob format (protocol.md §13.1).
const (
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 64 << 10
	// Overhead is the Poly1305 tag each sealed chunk adds.
	Overhead = chacha20poly1305.Overhead
	// SealedChunkSize is the ciphertext size of every chunk but the last.
	SealedChunkSize = ChunkSize + Overhead
	// MaxSize is the largest plaintext a blob may hold: the largest message (protocol.md §10.1).
	MaxSize = 26_214_400
	// MaxChunks is the chunk count of a blob of MaxSize bytes.
	MaxChunks = (MaxSize + ChunkSize - 1) / ChunkSize
	// KeySize is the size of a blob key.
	KeySize = chacha20poly1305.KeySize
)

// ID is a blob's content address: H("tanglemail/v1/blob" ‖ LE64(size) ‖ chunk hashes) (§13.1).
type ID [32]byte

// Key is a blob's symmetric key, fresh and random for every blob.
type Key [KeySize]byte

// ErrTooLarge is returned for plaintext beyond MaxSize.
var ErrTooLarge = fmt.Errorf("blob: larger than %d bytes", MaxSize)

// ErrAuth is returned when a chunk fails authentication or verification.
var ErrAuth = errors.New("blob: chunk failed verification")

// NumChunks is the number of chunks of a blob with size plaintext bytes; an empty blob has one empty
// chunk.
func NumChunks(size uint64) int {
	if size == 0 {
		return 1
	}
	return int((size + ChunkSize - 1) / ChunkSize)
}

// SealedSize is the ciphertext size of a blob with size plaintext bytes.
func SealedSize(size uint64) uint64 { return size + uint64(NumChunks(size))*Overhead }

// sealedChunkLen is the ciphertext length of chunk i of a blob of size plaintext bytes.
func sealedChunkLen(size uint64, i int) int {
	n := NumChunks(size)
	if i < n-1 {
		return SealedChunkSize
	}
	return int(size-uint64(n-1)*ChunkSize) + Overhead
}

// ChunkHash is H(sealed chunk).
func ChunkHash(sealed []byte) [32]byte { return blake2b.Sum256(sealed) }

// Manifest is a blob's size and the hashes of its sealed chunks, in order. Its hash is the blob's ID,
// so a fetcher verifies a manifest from any holder against the ID and then every chunk on its own.
type Manifest struct {
	Size   uint64
	Hashes [][32]byte
}

const idLabel = "tanglemail/v1/blob"

// ID is the blob's content address.
func (m Manifest) ID() ID {
	h, _ := blake2b.New256(nil)
	h.Write([]byte(idLabel))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], m.Size)
	h.Write(b[:])
	for _, c := range m.Hashes {
		h.Write(c[:])
	}
	var id ID
	h.Sum(id[:0])
	return id
}

// Encode is LE64(size) ‖ hashes (§13.1).
func (m Manifest) Encode() []byte {
	out := make([]byte, 8, 8+32*len(m.Hashes))
	binary.LittleEndian.PutUint64(out, m.Size)
	for _, c := range m.Hashes {
		out = append(out, c[:]...)
	}
	return out
}

// DecodeManifest parses an encoded manifest: a size of at most MaxSize and exactly NumChunks(size)
// hashes.
func DecodeManifest(b []byte) (Manifest, error) {
	if len(b) < 8 {
		return Manifest{}, errors.New("blob: manifest too short")
	}
	size := binary.LittleEndian.Uint64(b)
	if size > MaxSize {
		return Manifest{}, ErrTooLarge
	}
	n := NumChunks(size)
	if len(b) != 8+32*n {
		return Manifest{}, fmt.Errorf("blob: manifest of %d bytes for %d chunks", len(b), n)
	}
	m := Manifest{Size: size, Hashes: make([][32]byte, n)}
	for i := range m.Hashes {
		copy(m.Hashes[i][:], b[8+32*i:])
	}
	return m, nil
}

// NewKey returns a fresh random key.
func NewKey() (Key, error) {
	var k Key
	_, err := rand.Read(k[:])
	return k, err
}

// nonce is the STREAM nonce of chunk i: an 11-byte big-endian counter ‖ a last-chunk flag (§13.1).
func nonce(i int, last bool) [chacha20poly1305.NonceSize]byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], uint64(i))
	if last {
		n[11] = 1
	}
	return n
}

// Sealer encrypts a plaintext stream into sealed chunks written to an io.Writer, holding one chunk in
// memory. The manifest is known after Close.
type Sealer struct {
	aead   cipher.AEAD
	out    io.Writer
	buf    []byte // plaintext of the current chunk
	ct     []byte // sealed chunk, reused
	idx    int
	size   uint64
	hashes [][32]byte
	err    error
	done   bool
}

// NewSealer returns a Sealer writing the sealed chunks of its input, in order, to out.
func NewSealer(out io.Writer, key Key) *Sealer {
	aead, err := chacha20poly1305.New(key[:])
	return &Sealer{aead: aead, out: out, err: err, buf: make([]byte, 0, ChunkSize),
		ct: make([]byte, 0, SealedChunkSize)}
}

// Write buffers p, sealing each chunk once the next byte shows it is not the last.
func (s *Sealer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.done {
		return 0, errors.New("blob: write after Close")
	}
	if s.size+uint64(len(p)) > MaxSize {
		s.err = ErrTooLarge
		return 0, s.err
	}
	n := len(p)
	for len(p) > 0 {
		if len(s.buf) == ChunkSize {
			if err := s.flush(false); err != nil {
				return n - len(p), err
			}
		}
		k := copy(s.buf[len(s.buf):ChunkSize], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		s.size += uint64(k)
	}
	return n, nil
}

func (s *Sealer) flush(last bool) error {
	nc := nonce(s.idx, last)
	s.ct = s.aead.Seal(s.ct[:0], nc[:], s.buf, nil)
	s.hashes = append(s.hashes, ChunkHash(s.ct))
	s.idx++
	s.buf = s.buf[:0]
	if _, err := s.out.Write(s.ct); err != nil {
		s.err = err
		return err
	}
	return nil
}

// Close seals the last chunk. It does not close the underlying writer.
func (s *Sealer) Close() error {
	if s.err != nil || s.done {
		return s.err
	}
	s.done = true
	return s.flush(true)
}

// Manifest is the sealed blob's manifest; valid after a successful Close.
func (s *Sealer) Manifest() Manifest { return Manifest{Size: s.size, Hashes: s.hashes} }

// OpenChunk decrypts sealed chunk i of a blob of size plaintext bytes, appending to dst.
func OpenChunk(aead cipher.AEAD, dst []byte, size uint64, i int, sealed []byte) ([]byte, error) {
	if len(sealed) != sealedChunkLen(size, i) {
		return nil, ErrAuth
	}
	nc := nonce(i, i == NumChunks(size)-1)
	out, err := aead.Open(dst, nc[:], sealed, nil)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// Reader decrypts a sealed blob read from an io.Reader, chunk by chunk, checking each chunk against
// the manifest and its tag; it returns ErrAuth at the first bad chunk and io.EOF only after the last
// chunk, so a truncated blob is an error, never a short plaintext.
type Reader struct {
	aead cipher.AEAD
	src  io.Reader
	m    Manifest
	idx  int
	ct   []byte
	pt   []byte
	off  int
	err  error
}

// NewReader returns a Reader of the plaintext of the sealed blob read from src.
func NewReader(src io.Reader, key Key, m Manifest) *Reader {
	aead, err := chacha20poly1305.New(key[:])
	if err == nil && len(m.Hashes) != NumChunks(m.Size) {
		err = errors.New("blob: bad manifest")
	}
	return &Reader{aead: aead, src: src, m: m, err: err, ct: make([]byte, SealedChunkSize),
		pt: make([]byte, 0, ChunkSize)}
}

func (r *Reader) Read(p []byte) (int, error) {
	for r.off == len(r.pt) {
		if r.err != nil {
			return 0, r.err
		}
		if r.idx == len(r.m.Hashes) {
			r.err = io.EOF
			return 0, io.EOF
		}
		ct := r.ct[:sealedChunkLen(r.m.Size, r.idx)]
		if _, err := io.ReadFull(r.src, ct); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = fmt.Errorf("blob: reading chunk %d: %w", r.idx, err)
			return 0, r.err
		}
		if ChunkHash(ct) != r.m.Hashes[r.idx] {
			r.err = ErrAuth
			return 0, r.err
		}
		pt, err := OpenChunk(r.aead, r.pt[:0], r.m.Size, r.idx, ct)
		if err != nil {
			r.err = err
			return 0, err
		}
		r.pt, r.off = pt, 0
		r.idx++
	}
	n := copy(p, r.pt[r.off:])
	r.off += n
	return n, nil
}

// Seal encrypts everything read from in with a fresh key, writing the sealed chunks to out.
func Seal(out io.Writer, in io.Reader) (Manifest, Key, error) {
	key, err := NewKey()
	if err != nil {
		return Manifest{}, Key{}, err
	}
	s := NewSealer(out, key)
	buf := make([]byte, 32<<10)
	if _, err := io.CopyBuffer(s, in, buf); err != nil {
		return Manifest{}, Key{}, err
	}
	if err := s.Close(); err != nil {
		return Manifest{}, Key{}, err
	}
	return s.Manifest(), key, nil
}
