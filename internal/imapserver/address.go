package imapserver

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Addresses for ENVELOPE (RFC 9051 §7.5.2): go-imap's ExtractEnvelope goes through net/mail, which
// drops group syntax and refuses a whole field for one address it cannot read (a route, RFC 5322
// §4.4 obs-route). addressList reads RFC 5322 §3.4 leniently itself: groups become the group start
// (NIL NIL "name" NIL) and end (NIL NIL NIL NIL) of RFC 9051's envelope; a route is read and left out
// (its adl is NIL, as RFC 9051 allows); a comment is the name of an address that has none; what
// cannot be read is skipped, not the field.

// decodeWords decodes RFC 2047 encoded words, keeping the text as it is where that fails.
func decodeWords(s string) string {
	d := mime.WordDecoder{CharsetReader: charsetReader}
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	if gomessage.CharsetReader == nil {
		return r, nil
	}
	return gomessage.CharsetReader(charset, r)
}

// envelope returns the ENVELOPE of a header section.
func envelope(header []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(header)))
	if err != nil && h.Len() == 0 {
		return &imap.Envelope{}
	}
	env := goimap.ExtractEnvelope(h)
	field := func(k string) []imap.Address {
		vals := h.Values(k)
		if len(vals) == 0 {
			return nil
		}
		return addressList(strings.Join(vals, ", "))
	}
	env.From, env.Sender, env.ReplyTo = field("From"), field("Sender"), field("Reply-To")
	env.To, env.Cc, env.Bcc = field("To"), field("Cc"), field("Bcc")
	return env
}

type addrParser struct {
	s       string
	i       int
	comment string // the last comment read
}

func (p *addrParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// skipCFWS skips white space, line breaks and (nested) comments (RFC 5322 §3.2.2).
func (p *addrParser) skipCFWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		case '(':
			depth, start := 0, p.i+1
			for ; p.i < len(p.s); p.i++ {
				c := p.s[p.i]
				if c == '\\' {
					p.i++
					continue
				}
				if c == '(' {
					depth++
				} else if c == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			p.comment = strings.TrimSpace(p.s[start:min(p.i, len(p.s))])
			p.i++
		default:
			return
		}
	}
}

func isAText(c byte) bool {
	return c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
}

// word reads a quoted string (unescaped) or a run of atext and dots; ok is false if there is none.
func (p *addrParser) word() (w string, quoted, ok bool) {
	if p.peek() == '"' {
		var b strings.Builder
		for p.i++; p.i < len(p.s) && p.s[p.i] != '"'; p.i++ {
			if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
				p.i++
			}
			if p.s[p.i] != '\r' && p.s[p.i] != '\n' {
				b.WriteByte(p.s[p.i])
			}
		}
		p.i++
		return b.String(), true, true
	}
	start := p.i
	for p.i < len(p.s) && isAText(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], false, p.i > start
}

// domain reads a dot-atom or a domain literal ([…]).
func (p *addrParser) domain() string {
	p.skipCFWS()
	if p.peek() == '[' {
		end := strings.IndexByte(p.s[p.i:], ']')
		if end < 0 {
			end = len(p.s) - p.i - 1
		}
		d := p.s[p.i : p.i+end+1]
		p.i += end + 1
		return d
	}
	var parts []string
	for {
		p.skipCFWS()
		w, _, ok := p.word()
		if !ok {
			break
		}
		parts = append(parts, strings.Trim(w, "."))
		p.skipCFWS()
		if p.peek() != '.' {
			break
		}
		p.i++
	}
	return strings.Join(parts, ".")
}

// addressList parses an address list (RFC 5322 §3.4, with obs-route and obs-phrase).
func addressList(s string) []imap.Address {
	p := &addrParser{s: s}
	var out []imap.Address
	inGroup := false
	for guard := 0; p.i < len(p.s) && guard < 10000; guard++ {
		p.skipCFWS()
		var phrase []string
		p.comment = ""
	item:
		for p.i < len(p.s) {
			p.skipCFWS()
			switch c := p.peek(); c {
			case '<':
				p.i++
				p.skipCFWS()
				if p.peek() == '@' { // obs-route: "@a,@b:" before the addr-spec
					if j := strings.IndexByte(p.s[p.i:], ':'); j >= 0 && !strings.Contains(p.s[p.i:p.i+j], ">") {
						p.i += j + 1
					}
				}
				end := strings.IndexByte(p.s[p.i:], '>')
				if end < 0 {
					end = len(p.s) - p.i
				}
				sub := &addrParser{s: p.s[p.i : p.i+end]}
				local, host := sub.addrSpec()
				p.i += min(end+1, len(p.s)-p.i)
				if local != "" {
					out = append(out, imap.Address{Name: decodeWords(strings.Join(phrase, " ")), Mailbox: local, Host: host})
				}
				break item
			case ':':
				p.i++
				if !inGroup {
					out = append(out, imap.Address{Mailbox: decodeWords(strings.Join(phrase, " "))})
					inGroup = true
				}
				phrase = nil
			case ';':
				p.i++
				if inGroup {
					out = append(out, imap.Address{})
					inGroup = false
				}
				break item
			case '@':
				p.i++
				p.comment = ""
				host := p.domain()
				local := strings.Join(phrase, "")
				p.skipCFWS()
				if local != "" {
					out = append(out, imap.Address{Name: decodeWords(p.comment), Mailbox: local, Host: host})
				}
				break item
			case ',':
				p.i++
				break item
			case 0:
				break item
			default:
				w, quoted, ok := p.word()
				if !ok {
					p.i++ // a character that has no place here
					continue
				}
				_ = quoted
				phrase = append(phrase, w)
			}
		}
	}
	if inGroup {
		out = append(out, imap.Address{})
	}
	return out
}

// addrSpec reads local-part "@" domain.
func (p *addrParser) addrSpec() (local, host string) {
	var parts []string
	for p.i < len(p.s) {
		p.skipCFWS()
		if p.peek() == '@' {
			p.i++
			return strings.Join(parts, ""), p.domain()
		}
		w, _, ok := p.word()
		if !ok {
			p.i++
			continue
		}
		parts = append(parts, w)
	}
	return strings.Join(parts, ""), ""
}
