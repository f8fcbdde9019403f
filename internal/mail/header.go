package mail

import (
	"bytes"
	"strings"
)

// field is one header field of a raw message: raw[start:end] is the field with its continuation lines
// and its last line ending.
type field struct {
	start, end int
	name       string // as written, without trailing white space; "" for a line without a colon
}

// headerBounds scans the header section of raw (RFC 5322 §2.1, §2.2). It returns the fields in order
// and hdrEnd, the offset of the blank line that ends the header, or len(raw) when there is none (a
// message without a body). Lines end in LF or CRLF; a line starting with SP or HTAB continues the
// previous field (folding, §2.2.3). Nothing is rejected: a line without a colon becomes a field with
// an empty name, so a caller that copies the fields it keeps copies such lines unchanged.
func headerBounds(raw []byte) (fields []field, hdrEnd int) {
	pos := 0
	for pos < len(raw) {
		end := len(raw)
		if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := raw[pos:end]
		if isBlankLine(line) {
			return fields, pos
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].end = end
		} else {
			name := ""
			if c := bytes.IndexByte(line, ':'); c >= 0 {
				name = string(bytes.TrimRight(line[:c], " \t"))
			}
			fields = append(fields, field{start: pos, end: end, name: name})
		}
		pos = end
	}
	return fields, len(raw)
}

func isBlankLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// value returns the field's unfolded value: the text after the colon with the line breaks of folding
// removed (RFC 5322 §2.2.3) and surrounding white space trimmed.
func (f field) value(raw []byte) string {
	b := raw[f.start:f.end]
	c := bytes.IndexByte(b, ':')
	if c < 0 {
		return ""
	}
	b = b[c+1:]
	var out []byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, b...)
			break
		}
		line := b[:i]
		line = bytes.TrimSuffix(line, []byte("\r"))
		out = append(out, line...)
		b = b[i+1:]
	}
	return string(bytes.Trim(out, " \t"))
}

// lineEnding returns the line ending raw's header uses: CRLF unless its first line ends in a bare LF.
func lineEnding(raw []byte) string {
	if i := bytes.IndexByte(raw, '\n'); i >= 0 && (i == 0 || raw[i-1] != '\r') {
		return "\n"
	}
	return "\r\n"
}

// asciiFold compares a with b, which must be ASCII (a header field name the code names),
// case-insensitively; a Unicode look-alike in a does not match (see identity's asciiEqualFold).
func asciiFold(a, b string) bool { return len(a) == len(b) && strings.EqualFold(a, b) }
