// Package mimepart owns the MIME structure of a stored message: a bounded, single-pass parse of an
// RFC 5322 message with MIME (RFC 2045, RFC 2046) into a tree of parts with byte offsets into the
// message. It sits below the mailbox store, so that the store (searching bodies), the IMAP server
// (BODYSTRUCTURE, BODY[part], BINARY[part]) and the web client read one structure with one set of
// bounds, whatever a sender nested.
//
// Bounds: multiparts and message/rfc822 parts nest at most MaxDepth levels, and a message has at most
// MaxParts parts. A part beyond a bound is not parsed: it becomes an opaque leaf (Opaque, shown as
// application/octet-stream) that holds the rest of its parent's bytes, so the message keeps every
// byte and stays readable; nothing fails. The bounds are Dovecot's (message_max_nested_mime_parts
// 100, message_max_total_mime_parts 10000 in its message parser).
//
// Implementation notes:
//   - One pass. Every line is looked at once, by the innermost open part, and a line that starts with
//     "--" is looked up in a map of the open multiparts' boundaries, so parsing is linear in the size
//     of the message however deep it nests (a parser that stacks one reader per level, as
//     go-message's does, costs depth × size: 20,000 levels of 60 bytes took minutes).
//   - Boundaries (RFC 2046 §5.1.1): a delimiter line is "--" boundary, optionally followed by "--"
//     (the close delimiter), then optional linear white space. The line ending before a delimiter
//     belongs to the delimiter, not to the part. A delimiter of an enclosing multipart ends every
//     part inside it (a missing close delimiter is tolerated). If two open multiparts share a
//     boundary, the innermost one takes the line.
//   - Headers are parsed with go-message's textproto (leniently: a broken header keeps the fields
//     read so far); a part whose Content-Type does not parse is text/plain (RFC 2045 §5.2), and
//     application/octet-stream if it names a type that is not valid.
package mimepart

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Bounds of a parse (see the package doc).
const (
	MaxDepth = 100
	MaxParts = 10000
)

// Part is one MIME entity of a message. Offsets index the raw message given to Parse.
type Part struct {
	// HeaderStart..BodyStart is the header, including the blank line that ends it (if any).
	HeaderStart, BodyStart int
	// BodyStart..BodyEnd is the body, without the line ending before the next delimiter.
	BodyEnd int

	// Type and Subtype are lower case ("text", "plain"); Params has lower-case keys.
	Type, Subtype string
	Params        map[string]string
	// Header is the parsed header (empty for an opaque part's header is still parsed).
	Header textproto.Header

	// Children are the parts of a multipart (RFC 2046 §5.1); Message is the encapsulated message
	// of a message/rfc822 or message/global part (RFC 2046 §5.2.1). Both nil for other parts.
	Children []*Part
	Message  *Part

	// Opaque reports a part beyond MaxDepth or MaxParts: not parsed, shown as
	// application/octet-stream, its body is the rest of its parent's bytes.
	Opaque bool
}

// IsMultipart reports whether p has children.
func (p *Part) IsMultipart() bool { return p.Type == "multipart" && !p.Opaque }

// IsMessage reports whether p encapsulates a message (message/rfc822, message/global).
func (p *Part) IsMessage() bool { return p.Message != nil }

// MediaType is "type/subtype", application/octet-stream for an opaque part.
func (p *Part) MediaType() string {
	if p.Opaque {
		return "application/octet-stream"
	}
	return p.Type + "/" + p.Subtype
}

// Parse returns the MIME structure of raw. It never fails: whatever raw holds, the root part spans
// all of it.
func Parse(raw []byte) *Part {
	ps := &parser{raw: raw, bounds: map[string]int{}}
	root, _ := ps.entity(0, 0, "")
	return root
}

type parser struct {
	raw    []byte
	bounds map[string]int // boundary → depth of the innermost open multipart using it
	parts  int
}

// line returns the line at pos: its end without the line ending, and the start of the next line.
func (ps *parser) line(pos int) (end, next int) {
	i := bytes.IndexByte(ps.raw[pos:], '\n')
	if i < 0 {
		return len(ps.raw), len(ps.raw)
	}
	end, next = pos+i, pos+i+1
	if end > pos && ps.raw[end-1] == '\r' {
		end--
	}
	return end, next
}

// delimiter reports whether the line raw[pos:end] is a delimiter of an open multipart: the depth of
// that multipart and whether it is the close delimiter. depth is -1 if it is not one.
func (ps *parser) delimiter(pos, end int) (depth int, closing bool) {
	if end-pos < 3 || ps.raw[pos] != '-' || ps.raw[pos+1] != '-' || len(ps.bounds) == 0 {
		return -1, false
	}
	rest := bytes.TrimRight(ps.raw[pos+2:end], " \t")
	if d, ok := ps.bounds[string(rest)]; ok {
		return d, false
	}
	if bytes.HasSuffix(rest, []byte("--")) {
		if d, ok := ps.bounds[string(bytes.TrimRight(rest[:len(rest)-2], " \t"))]; ok {
			return d, true
		}
	}
	return -1, false
}

// scan reads lines from pos until a delimiter line of an open multipart. It returns the start of
// that line (len(raw) if none) and its depth (-1 if none) and whether it closes.
func (ps *parser) scan(pos int) (at, depth int, closing bool) {
	for pos < len(ps.raw) {
		end, next := ps.line(pos)
		if d, c := ps.delimiter(pos, end); d >= 0 {
			return pos, d, c
		}
		pos = next
	}
	return len(ps.raw), -1, false
}

// bodyEnd is the end of a body that runs up to the delimiter line at `at`: the line ending before
// the delimiter belongs to it (RFC 2046 §5.1.1).
func (ps *parser) bodyEnd(start, at int) int {
	if at >= len(ps.raw) || at <= start {
		return max(start, at)
	}
	end := at
	if ps.raw[end-1] == '\n' {
		end--
		if end > start && ps.raw[end-1] == '\r' {
			end--
		}
	}
	return max(start, end)
}

// entity parses the part whose header starts at pos, at the given nesting depth; parent is the
// parent's media type (in a multipart/digest, message/rfc822 is the default, RFC 2046 §5.1.5). It
// returns the part and the start of the delimiter line that ended it (len(raw) at the end).
func (ps *parser) entity(pos, depth int, parent string) (*Part, int) {
	ps.parts++
	p := ps.header(pos, parent)
	if depth >= MaxDepth || ps.parts > MaxParts {
		p.Opaque = true
	}
	switch {
	case p.Opaque:
	case p.Type == "multipart":
		return ps.multipart(p, depth)
	case p.Type == "message" && (p.Subtype == "rfc822" || p.Subtype == "global"):
		var at int
		p.Message, at = ps.entity(p.BodyStart, depth+1, "")
		p.BodyEnd = ps.bodyEnd(p.BodyStart, at)
		return p, at
	}
	at, _, _ := ps.scan(p.BodyStart)
	p.BodyEnd = ps.bodyEnd(p.BodyStart, at)
	return p, at
}

// header reads the header of the part at pos: up to the blank line, or up to a delimiter line of an
// open multipart (a part without a body).
func (ps *parser) header(pos int, parent string) *Part {
	p := &Part{HeaderStart: pos}
	hpos := pos
	for hpos < len(ps.raw) {
		end, next := ps.line(hpos)
		if end == hpos {
			hpos = next
			break
		}
		if d, _ := ps.delimiter(hpos, end); d >= 0 {
			break
		}
		hpos = next
	}
	p.BodyStart = hpos
	p.Header, _ = textproto.ReadHeader(bufio.NewReader(bytes.NewReader(ps.raw[pos:hpos])))
	p.Type, p.Subtype, p.Params = contentType(p.Header, parent)
	return p
}

// multipart parses the body of multipart p (RFC 2046 §5.1.1): preamble, parts, epilogue.
func (ps *parser) multipart(p *Part, depth int) (*Part, int) {
	b := p.Params["boundary"]
	old, had := ps.bounds[b]
	restore := func() {
		if had {
			ps.bounds[b] = old
		} else {
			delete(ps.bounds, b)
		}
	}
	if b != "" {
		ps.bounds[b] = depth
	}
	at, d, closing := ps.scan(p.BodyStart)
	for {
		if b == "" || d != depth {
			// The end of the message, or a delimiter of an enclosing multipart.
			restore()
			break
		}
		_, next := ps.line(at)
		if closing {
			restore()
			at, _, _ = ps.scan(next) // the epilogue
			break
		}
		if ps.parts >= MaxParts {
			// The rest of this multipart becomes one opaque part.
			restore()
			ps.parts++
			c := ps.header(next, p.MediaType())
			c.Opaque = true
			at, _, _ = ps.scan(c.BodyStart)
			c.BodyEnd = ps.bodyEnd(c.BodyStart, at)
			p.Children = append(p.Children, c)
			break
		}
		var c *Part
		c, at = ps.entity(next, depth+1, p.MediaType())
		p.Children = append(p.Children, c)
		d, closing = -1, false
		if at < len(ps.raw) {
			end, _ := ps.line(at)
			d, closing = ps.delimiter(at, end)
		}
	}
	p.BodyEnd = ps.bodyEnd(p.BodyStart, at)
	if len(p.Children) == 0 {
		// No delimiter (or no boundary): the body is one text part, as if it had no header.
		p.Children = []*Part{{HeaderStart: p.BodyStart, BodyStart: p.BodyStart, BodyEnd: p.BodyEnd,
			Type: "text", Subtype: "plain", Params: map[string]string{}}}
	}
	return p, at
}

// contentType returns the media type of a header (RFC 2045 §5.2): text/plain when absent or
// invalid, message/rfc822 when absent in a multipart/digest.
func contentType(h textproto.Header, parent string) (typ, sub string, params map[string]string) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		if parent == "multipart/digest" {
			return "message", "rfc822", map[string]string{}
		}
		return "text", "plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && err != mime.ErrInvalidMediaParameter {
		return "text", "plain", map[string]string{}
	}
	if params == nil {
		params = map[string]string{}
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" {
		return "text", "plain", map[string]string{}
	}
	return typ, sub, params
}

// Find returns the part that an IMAP section part path names (RFC 9051 §6.4.5: "1.2" is the second
// part of the first part), or nil. The path goes into an encapsulated message's parts; part 1 of a
// part that is not a multipart is the part itself.
func (p *Part) Find(path []int) *Part {
	cur := p
	for i, n := range path {
		if i > 0 && cur.Message != nil {
			cur = cur.Message
		}
		if !cur.IsMultipart() {
			if n != 1 {
				return nil
			}
			continue
		}
		if n < 1 || n > len(cur.Children) {
			return nil
		}
		cur = cur.Children[n-1]
	}
	return cur
}

// Count returns the number of parts in the tree.
func (p *Part) Count() int {
	n := 1
	for _, c := range p.Children {
		n += c.Count()
	}
	if p.Message != nil {
		n += p.Message.Count()
	}
	return n
}

// Depth returns how deep the tree nests (1 for a single part).
func (p *Part) Depth() int {
	d := 0
	for _, c := range p.Children {
		d = max(d, c.Depth())
	}
	if p.Message != nil {
		d = max(d, p.Message.Depth())
	}
	return d + 1
}

// ErrUnknownEncoding is returned by Decode for a transfer encoding it does not know.
var ErrUnknownEncoding = errors.New("mimepart: unknown Content-Transfer-Encoding")

// Decode removes a content transfer encoding (RFC 2045 §6). Broken base64 or quoted-printable is
// decoded as far as it goes, as mail clients do.
func Decode(cte string, b []byte) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return b, nil
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &base64Cleaner{r: bytes.NewReader(b)})
	case "quoted-printable":
		r = quotedprintable.NewReader(bytes.NewReader(b))
	default:
		return nil, ErrUnknownEncoding
	}
	out, _ := io.ReadAll(r)
	return out, nil
}

// base64Cleaner drops what is not base64 (line breaks, white space, junk) and what follows the
// padding, so that decoding never stops at a line break.
type base64Cleaner struct {
	r    *bytes.Reader
	done bool
}

func (c *base64Cleaner) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !c.done {
		b, err := c.r.ReadByte()
		if err != nil {
			break
		}
		switch {
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '+', b == '/':
			p[n] = b
			n++
		case b == '=':
			p[n] = b
			n++
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
