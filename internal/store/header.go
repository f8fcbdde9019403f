package store

import (
	"bytes"
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
)

// HeaderField is one header field: its name as written and its value unfolded, trimmed and with
// RFC 2047 encoded words decoded to UTF-8 (the raw value where decoding fails).
type HeaderField struct {
	Name  string
	Value string
}

// Header is a message's header fields in message order.
type Header []HeaderField

// Get returns the value of the first field named name (case-insensitive), or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns the values of all fields named name (case-insensitive), in order.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// rawField is a header field with both its raw (unfolded) and decoded value.
type rawField struct {
	name, raw, decoded string
}

type parsedHeader []rawField

// raw returns the unfolded raw value of the first field named name.
func (h parsedHeader) raw(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.raw
		}
	}
	return ""
}

var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// ParseHeader parses a header section leniently: it stops at the first empty line, unfolds
// continuation lines, and skips lines that are not fields. It never fails.
func ParseHeader(hdr []byte) Header {
	ph := parseHeader(hdr, true)
	out := make(Header, len(ph))
	for i, f := range ph {
		out[i] = HeaderField{Name: f.name, Value: f.decoded}
	}
	return out
}

// parseHeader parses a header section; with decode, it also RFC 2047-decodes each value.
func parseHeader(hdr []byte, decode bool) parsedHeader {
	var out parsedHeader
	var name string
	var val []byte
	have := false
	flush := func() {
		if !have {
			return
		}
		raw := strings.TrimSpace(string(val))
		dec := raw
		if decode && strings.Contains(raw, "=?") {
			if d, err := wordDecoder.DecodeHeader(raw); err == nil {
				dec = d
			}
		}
		out = append(out, rawField{name: name, raw: raw, decoded: dec})
		have = false
	}
	for len(hdr) > 0 {
		var line []byte
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i], hdr[i+1:]
		} else {
			line, hdr = hdr, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if have {
				val = append(val, ' ')
				val = append(val, bytes.TrimLeft(line, " \t")...)
			}
			continue
		}
		flush()
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		n := bytes.TrimRight(line[:i], " \t")
		if len(n) == 0 || bytes.ContainsAny(n, " \t") {
			continue
		}
		name = string(n)
		val = append([]byte(nil), line[i+1:]...)
		have = true
	}
	flush()
	return out
}
