package mail

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"mime"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets in encoded words
	gomail "github.com/emersion/go-message/mail"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// ErrMalformed is wrapped by Parse's errors: the message's header cannot be parsed.
var ErrMalformed = errors.New("mail: malformed message")

// Mailbox is one address of an address header field: an optional display name (RFC 2047 decoded)
// and an addr-spec.
type Mailbox struct {
	Name    string
	Address string
}

// Tangle parses the address as a tangle address (see ParseRecipient).
func (m Mailbox) Tangle() (identity.Address, error) { return ParseRecipient(m.Address) }

// String formats the mailbox for a header field.
func (m Mailbox) String() string {
	return (&gomail.Address{Name: m.Name, Address: m.Address}).String()
}

// Message is what the layers above need from a submitted RFC 5322 message. Raw is never modified;
// the header fields are parsed for display and checks only. Delivery goes to the SMTP envelope's
// recipients (RFC 5321 §3.3), never to To/Cc/Bcc.
type Message struct {
	Raw []byte
	// HeaderEnd is the offset of the blank line that ends the header, len(Raw) if there is none.
	HeaderEnd int

	From, Sender, ReplyTo []Mailbox
	To, Cc, Bcc           []Mailbox
	MessageID             string    // without angle brackets; "" if absent
	InReplyTo             string    // first id of In-Reply-To, without angle brackets; "" if absent
	Date                  time.Time // zero if absent or not parseable
	Subject               string    // RFC 2047 decoded

	// HasDate and HasMessageID report whether the fields are present at all (parseable or not):
	// AddMissing adds only absent fields, it never replaces a client's.
	HasDate, HasMessageID bool
}

// Header returns the header section of the message, including the blank line that ends it.
func (m *Message) Header() []byte {
	_, end := headerBounds(m.Raw)
	if end == len(m.Raw) {
		return m.Raw
	}
	n := 1
	if m.Raw[end] == '\r' {
		n = 2
	}
	return m.Raw[:end+n]
}

// Parse parses the header of an RFC 5322 message (RFC 5322 §3.6): originator fields (From, Sender,
// Reply-To), destination fields (To, Cc, Bcc; each may occur more than once, their addresses are
// concatenated), Message-ID, In-Reply-To, Date and Subject. It fails with ErrMalformed when the
// message is empty, when a header line has no colon or starts with white space, or when an
// originator field or Bcc does not parse. An unparseable To or Cc, Date or Message-ID is tolerated
// (they are for display; Date and Message-ID are then left as the client wrote them).
func Parse(raw []byte) (*Message, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	fields, hdrEnd := headerBounds(raw)
	m := &Message{Raw: raw, HeaderEnd: hdrEnd}
	for _, f := range fields {
		if f.name == "" || !validFieldName(f.name) {
			line := raw[f.start:f.end]
			if len(line) > 40 {
				line = line[:40]
			}
			return nil, fmt.Errorf("%w: bad header line %q", ErrMalformed, strings.TrimRight(string(line), "\r\n"))
		}
		v := f.value(raw)
		var err error
		switch strings.ToLower(f.name) {
		case "from":
			m.From, err = appendAddresses(m.From, v, f.name)
		case "sender":
			m.Sender, err = appendAddresses(m.Sender, v, f.name)
		case "reply-to":
			m.ReplyTo, err = appendAddresses(m.ReplyTo, v, f.name)
		case "bcc":
			m.Bcc, err = appendAddresses(m.Bcc, v, f.name)
		case "to":
			m.To, _ = appendAddresses(m.To, v, f.name)
		case "cc":
			m.Cc, _ = appendAddresses(m.Cc, v, f.name)
		case "message-id":
			m.HasMessageID = true
			m.MessageID = parseMsgID(v)
		case "in-reply-to":
			m.InReplyTo = parseMsgID(v)
		case "date":
			m.HasDate = true
			if d, err := netmail.ParseDate(v); err == nil {
				m.Date = d
			}
		case "subject":
			m.Subject = decodeText(v)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// validFieldName reports whether s is an RFC 5322 §3.6.8 field name: printable US-ASCII except colon.
func validFieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return s != ""
}

func appendAddresses(dst []Mailbox, v, name string) ([]Mailbox, error) {
	if strings.TrimSpace(v) == "" {
		return dst, nil
	}
	list, err := gomail.ParseAddressList(v)
	if err != nil {
		return dst, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	for _, a := range list {
		dst = append(dst, Mailbox{Name: a.Name, Address: a.Address})
	}
	return dst, nil
}

// parseMsgID returns the first msg-id of v without its angle brackets, or v trimmed if it has none.
func parseMsgID(v string) string {
	var h gomail.Header
	h.Set("Message-Id", v)
	if id, err := h.MessageID(); err == nil && id != "" {
		return id
	}
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return strings.TrimSpace(v)
}

var wordDecoder = mime.WordDecoder{CharsetReader: message.CharsetReader}

func decodeText(v string) string {
	if s, err := wordDecoder.DecodeHeader(v); err == nil {
		return s
	}
	return v
}

// StripBcc returns raw without its Bcc and Resent-Bcc header fields (RFC 5322 §3.6.3, §3.6.6), with
// their continuation lines; every other byte is kept as it was, in order. Field names match in any
// case, with or without white space before the colon, however often they occur. Fields of
// attached messages (message/rfc822 parts) are content and are not touched. When raw has no such
// field, raw itself is returned.
//
// This is the message every recipient receives, Bcc recipients included (the first of the three
// methods of RFC 5322 §3.6.3): nobody learns of the blind copies from the message. The sender's own
// Sent copy keeps its Bcc field, as mail clients show it there.
func StripBcc(raw []byte) []byte { return StripFields(raw, "Bcc", "Resent-Bcc") }

// StripFields returns raw without the header fields of these names (ASCII case-insensitive), with
// their continuation lines, keeping every other byte as it was; raw itself when there is none. The
// body is never touched.
func StripFields(raw []byte, names ...string) []byte {
	fields, _ := headerBounds(raw)
	var drop []field
	for _, f := range fields {
		for _, n := range names {
			if asciiFold(f.name, n) {
				drop = append(drop, f)
				break
			}
		}
	}
	if len(drop) == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw))
	pos := 0
	for _, f := range drop {
		out = append(out, raw[pos:f.start]...)
		pos = f.end
	}
	return append(out, raw[pos:]...)
}

// HasField reports whether raw's header has a field with this name (ASCII case-insensitive).
func HasField(raw []byte, name string) bool {
	fields, _ := headerBounds(raw)
	for _, f := range fields {
		if asciiFold(f.name, name) {
			return true
		}
	}
	return false
}

// Field is a header field to insert.
type Field struct{ Name, Value string }

// InsertFields adds fields at the end of raw's header, just before the blank line that ends it,
// with the line ending the header already uses; every byte of raw is kept. Values must be already
// encoded (US-ASCII, no line breaks); a field with a line break in its name or value is skipped. A
// message without a body gets the fields appended (after a line break if raw does not end in one).
func InsertFields(raw []byte, fields ...Field) []byte {
	eol := lineEnding(raw)
	var add []byte
	for _, f := range fields {
		if strings.ContainsAny(f.Name+f.Value, "\r\n") || !validFieldName(f.Name) {
			continue
		}
		add = append(add, f.Name+": "+f.Value+eol...)
	}
	if len(add) == 0 {
		return raw
	}
	_, hdrEnd := headerBounds(raw)
	out := make([]byte, 0, len(raw)+len(add)+len(eol))
	out = append(out, raw[:hdrEnd]...)
	if hdrEnd == len(raw) && hdrEnd > 0 && raw[hdrEnd-1] != '\n' {
		out = append(out, eol...)
	}
	out = append(out, add...)
	return append(out, raw[hdrEnd:]...)
}

// AddMissing adds a Date field (now, in UTC, so the node's time zone is not disclosed) and a
// Message-ID field (NewMessageID) when raw has none, as an MSA does (RFC 6409 §8.2, §8.3; both
// fields are required by RFC 5322 §3.6). A field that is present is never replaced, even when it
// does not parse. It returns raw itself when nothing was missing.
func AddMissing(raw []byte, now time.Time) []byte {
	var add []Field
	if !HasField(raw, "Date") {
		add = append(add, Field{"Date", FormatDate(now)})
	}
	if !HasField(raw, "Message-ID") {
		add = append(add, Field{"Message-ID", "<" + NewMessageID() + ">"})
	}
	return InsertFields(raw, add...)
}

// FormatDate formats t in UTC as an RFC 5322 §3.3 date-time.
func FormatDate(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700") }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewMessageID returns a new globally unique msg-id (RFC 5322 §3.6.4) without angle brackets: 128
// random bits, lower-case base32, "@tangle".
func NewMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return strings.ToLower(idEncoding.EncodeToString(b[:])) + "@" + identity.MailDomain
}
