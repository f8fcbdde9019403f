package mail

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// E2EMarkField is the header field in which a node marks a message it decrypted itself with its
// user's OpenPGP key (docs/protocol.md §16.2); the web client shows it as "end-to-end encrypted".
// Only the user's own node may write it: the inbox removes it from every message it files
// (StripE2EMark, StripE2EMarkReader) before anything else looks at the message, so a sender cannot
// forge the mark by writing the field into its mail.
const E2EMarkField = "X-Tanglemail-E2E"

// StripE2EMark returns raw without any E2EMarkField field (raw itself when it has none).
func StripE2EMark(raw []byte) []byte { return StripFields(raw, E2EMarkField) }

// StripE2EMarkReader is StripE2EMark for a message read as a stream (a large message is never held
// whole): the header section is filtered line by line, the body passes unchanged. It gives the same
// bytes as StripE2EMark.
func StripE2EMarkReader(r io.Reader) io.Reader { return newFieldFilter(r, E2EMarkField, 64<<10) }

// fieldFilter drops the header fields called drop (with their continuation lines) from the message
// it reads, by the same rules as headerBounds: a blank line ends the header, a line starting with SP
// or HTAB continues the field before it, a field's name is what precedes its colon, less trailing
// white space.
type fieldFilter struct {
	br       *bufio.Reader
	drop     string
	inHeader bool   // still in the header section
	midLine  bool   // the last chunk ended without its line's LF (a line longer than the buffer)
	dropping bool   // the current field is being dropped
	head     []byte // the start of a field line whose name is not known yet (a long line's first chunks)
	pending  []byte // filtered bytes not yet returned
	err      error  // the error to return once pending is empty
}

func newFieldFilter(r io.Reader, drop string, size int) *fieldFilter {
	return &fieldFilter{br: bufio.NewReaderSize(r, size), drop: drop, inHeader: true}
}

func (f *fieldFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if !f.inHeader {
			return f.br.Read(p)
		}
		chunk, err := f.br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			err = nil
		case err != nil:
			f.err = err
		}
		if len(chunk) == 0 {
			continue
		}
		startOfLine := !f.midLine
		f.midLine = chunk[len(chunk)-1] != '\n'
		switch {
		case f.head != nil:
			// the rest of a line whose field name was not known yet
			f.head = append(f.head, chunk...)
		case startOfLine && isBlankLine(chunk):
			f.inHeader, f.dropping = false, false
		case startOfLine && (chunk[0] == ' ' || chunk[0] == '\t'):
			// a continuation line: the field before it decides
		case startOfLine:
			f.head = append([]byte{}, chunk...)
		}
		if f.head != nil {
			decided, dropping := f.decide(f.head, !f.midLine || f.err != nil) // at EOF the line has ended
			if !decided {
				continue
			}
			chunk, f.head, f.dropping = f.head, nil, dropping
		}
		if !f.dropping {
			f.pending = append(f.pending[:0], chunk...)
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// decide reports whether the field line that starts with head (ended: the whole line) is known to be
// dropped or kept: its name is what precedes the colon, less trailing white space (headerBounds).
// Without a colon yet, it is still undecided while head could be drop followed only by white space.
func (f *fieldFilter) decide(head []byte, ended bool) (decided, dropping bool) {
	if c := bytes.IndexByte(head, ':'); c >= 0 {
		return true, asciiFold(string(bytes.TrimRight(head[:c], " \t")), f.drop)
	}
	if ended {
		return true, false // a line without a colon: a field with an empty name
	}
	t := bytes.TrimRight(head, " \t")
	if len(t) == len(head) { // no white space yet: a prefix of drop may still become drop
		return !(len(t) <= len(f.drop) && asciiFold(string(t), f.drop[:len(t)])), false
	}
	return !asciiFold(string(t), f.drop), false // after white space only a colon may follow
}
