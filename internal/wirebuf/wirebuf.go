// Package wirebuf owns the bounded little-endian reader shared by the parsers of the wire formats of
// docs/protocol.md (block exchange, storage protocol, payment quotes, blob refs). It imports nothing
// from this module, so every layer may use it.
//
// Invariant: a read past the end of the input never panics. It sets a sticky error, the one the
// parser passed to NewReader, and returns a zero value or nil; every later read does the same, so a
// parser may read a whole structure and check Err once. Writers need no helper: encoders append with
// encoding/binary's LittleEndian.Append* functions.
package wirebuf

import (
	"encoding/binary"
	"errors"
)

// ErrShort is the error of a Reader made with a nil short error.
var ErrShort = errors.New("wirebuf: read past the end")

// Reader consumes a byte slice front to back.
type Reader struct {
	b     []byte
	err   error
	short error
}

// NewReader returns a Reader over b. The first read past the end, or of a negative length, sets Err
// to short (ErrShort when nil), returned as it is so that a parser keeps its own error value.
func NewReader(b []byte, short error) *Reader {
	if short == nil {
		short = ErrShort
	}
	return &Reader{b: b, short: short}
}

// Err is nil until a read ran past the end, then the short error of NewReader.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not yet read.
func (r *Reader) Len() int { return len(r.b) }

// Take returns the next n bytes, or nil once Err is set (a read of 0 bytes may also be nil: check Err).
// The slice aliases the input, with its capacity cut to n so that appending to it cannot overwrite
// the bytes that follow.
func (r *Reader) Take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = r.short
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// Copy is Take into a fresh slice; nil when n is 0 or Err is set.
func (r *Reader) Copy(n int) []byte {
	return append([]byte(nil), r.Take(n)...)
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if b := r.Take(1); b != nil {
		return b[0]
	}
	return 0
}

// U16 reads a little-endian uint16.
func (r *Reader) U16() uint16 {
	if b := r.Take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

// U32 reads a little-endian uint32.
func (r *Reader) U32() uint32 {
	if b := r.Take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

// U64 reads a little-endian uint64.
func (r *Reader) U64() uint64 {
	if b := r.Take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}
