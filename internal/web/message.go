package web

import (
	"bytes"
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/store"
)

// mailAddress is an address of a header field with its display name.
type mailAddress struct {
	Name    string
	Address string
}

// parsedMessage is what the API shows of a stored message: header fields for display, the first
// text/plain and text/html parts, and the other parts as attachments.
type parsedMessage struct {
	from, to, cc []mailAddress
	bcc          []mailAddress // the sender's own copy only (the outbox strips it from what it sends)
	subject      string
	date         time.Time // zero if absent or unparseable

	text        string // the first inline text/plain part (with later inline text/plain parts appended)
	haveText    bool
	html        string // the first inline text/html part, as sent (unsanitized)
	hasHTML     bool
	attachments []api.Attachment

	// e2e and e2eSignature are read from the X-Tanglemail-E2E field (docs/protocol.md §16.2), which only
	// the node writes: "openpgp" and the signature value, or empty.
	e2e, e2eSignature string

	capture  int    // the index of the attachment whose decoded bytes to keep in captured; -1: none
	captured []byte // see capture
}

// Limits of parsing: how deep multiparts nest and how much of one text part is read.
const (
	maxDepth    = 20
	maxTextPart = 4 << 20
	maxParts    = 1000
	// maxAttachment bounds one decoded attachment; a message is at most 25 MiB (mail.MaxMessageSize),
	// and base64 only shrinks.
	maxAttachment = 32 << 20
)

// bodyText is the message's text: its text/plain part, else text made from its HTML part.
func (pm *parsedMessage) bodyText() string {
	if pm.haveText || !pm.hasHTML {
		return pm.text
	}
	return htmlToText(pm.html)
}

// parseMessage parses raw (RFC 5322 with MIME, RFC 2045/2046) leniently: it never fails, and keeps
// what it could read of a broken or truncated message. With brief, it stops at the first text part
// (for previews) and does not size attachments.
func parseMessage(raw []byte, brief bool) *parsedMessage {
	pm := &parsedMessage{capture: -1}
	pm.parseBrief(raw, brief)
	return pm
}

// parse is parseMessage into pm (whose capture is set).
func (pm *parsedMessage) parse(raw []byte) { pm.parseBrief(raw, false) }

func (pm *parsedMessage) parseBrief(raw []byte, brief bool) {
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		// The header does not parse as MIME: show what a lenient parse finds, and the rest as text.
		pm.leniently(raw)
		return
	}
	pm.header(e.Header)
	parts := 0
	pm.walk(e, 0, brief, &parts)
}

// header reads the display fields of a message header (RFC 5322 §3.6).
func (pm *parsedMessage) header(h message.Header) {
	mh := gomail.Header{Header: h}
	pm.from = addressList(mh, "From")
	pm.to = addressList(mh, "To")
	pm.cc = addressList(mh, "Cc")
	pm.bcc = addressList(mh, "Bcc")
	if s, err := mh.Subject(); err == nil {
		pm.subject = s
	} else {
		pm.subject = mh.Get("Subject")
	}
	if d, err := mh.Date(); err == nil {
		pm.date = d
	}
	pm.e2eMark(mh.Get("X-Tanglemail-E2E"))
}

// e2eMark reads the node's X-Tanglemail-E2E field, "openpgp; key=…; signature=…[; signer=…]".
func (pm *parsedMessage) e2eMark(v string) {
	if v == "" {
		return
	}
	mech, params, err := mime.ParseMediaType(v)
	if err != nil || mech != "openpgp" {
		return
	}
	pm.e2e = mech
	switch sig := params["signature"]; sig {
	case "none", "good", "bad", "unknown-key":
		pm.e2eSignature = sig
	default:
		pm.e2eSignature = "unknown-key"
	}
}

// addressList parses an address field, falling back to net/mail and then to the field's text when
// the field is malformed: display must not fail.
func addressList(h gomail.Header, key string) []mailAddress {
	var out []mailAddress
	if list, err := h.AddressList(key); err == nil {
		for _, a := range list {
			out = append(out, mailAddress{Name: a.Name, Address: a.Address})
		}
		return out
	}
	v, _ := h.Text(key)
	if v == "" {
		v = h.Get(key)
	}
	if list, err := netmail.ParseAddressList(v); err == nil {
		for _, a := range list {
			out = append(out, mailAddress{Name: a.Name, Address: a.Address})
		}
		return out
	}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if i, j := strings.LastIndexByte(p, '<'), strings.LastIndexByte(p, '>'); i >= 0 && j > i {
			out = append(out, mailAddress{Name: strings.Trim(strings.TrimSpace(p[:i]), `"`), Address: p[i+1 : j]})
		} else if strings.Contains(p, "@") && !strings.ContainsAny(p, " \t") {
			out = append(out, mailAddress{Address: p})
		} else {
			out = append(out, mailAddress{Name: p})
		}
	}
	return out
}

// leniently fills pm from a message whose header go-message refuses: the store's lenient header
// parser for the fields, and the body as text.
func (pm *parsedMessage) leniently(raw []byte) {
	hl := store.HeaderLen(raw)
	h := store.ParseHeader(raw[:hl])
	var th textproto.Header
	for _, f := range []string{"From", "To", "Cc", "Bcc"} {
		if v := h.Get(f); v != "" {
			th.Set(f, v)
		}
	}
	mh := gomail.Header{Header: message.Header{Header: th}}
	pm.from, pm.to, pm.cc = addressList(mh, "From"), addressList(mh, "To"), addressList(mh, "Cc")
	pm.bcc = addressList(mh, "Bcc")
	pm.subject = h.Get("Subject")
	if d, err := netmail.ParseDate(h.Get("Date")); err == nil {
		pm.date = d
	}
	pm.e2eMark(h.Get("X-Tanglemail-E2E"))
	body := raw[hl:]
	if len(body) > maxTextPart {
		body = body[:maxTextPart]
	}
	pm.text, pm.haveText = normalizeNewlines(string(body)), true
}

// walk visits the entity's leaves in order.
func (pm *parsedMessage) walk(e *message.Entity, depth int, brief bool, parts *int) {
	if depth > maxDepth || *parts >= maxParts || (brief && (pm.haveText || pm.hasHTML)) {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
				return // the end, or a broken multipart: keep what was read
			}
			pm.walk(p, depth+1, brief, parts)
			if *parts >= maxParts || (brief && (pm.haveText || pm.hasHTML)) {
				return
			}
		}
	}
	*parts++
	ctype, params, err := e.Header.ContentType()
	if err != nil || ctype == "" {
		ctype, params = "text/plain", nil
		if e.Header.Get("Content-Type") != "" {
			ctype = "application/octet-stream"
		}
	}
	disp, _, _ := e.Header.ContentDisposition()
	name, _ := (&gomail.AttachmentHeader{Header: e.Header}).Filename()
	inline := disp != "attachment" && name == ""
	switch {
	case inline && ctype == "text/plain":
		b := readPart(e.Body, maxTextPart)
		t := normalizeNewlines(string(b))
		if strings.EqualFold(params["format"], "flowed") {
			t = unflow(t, strings.EqualFold(params["delsp"], "yes"))
		}
		if pm.haveText {
			pm.text += "\n\n" + t
		} else {
			pm.text, pm.haveText = t, true
		}
	case inline && ctype == "text/html":
		if !pm.hasHTML {
			pm.html, pm.hasHTML = string(readPart(e.Body, maxTextPart)), true
		}
	default:
		if name == "" {
			name = "attachment"
		}
		a := api.Attachment{Name: name, Type: ctype}
		switch {
		case pm.capture == len(pm.attachments):
			pm.captured = readPart(e.Body, maxAttachment)
			a.Size = int64(len(pm.captured))
		case !brief:
			n, _ := io.Copy(io.Discard, e.Body)
			a.Size = n
		}
		pm.attachments = append(pm.attachments, a)
	}
}

// readPart reads up to limit bytes of a decoded part, keeping what it read before an error (a
// truncated or badly encoded part still shows what it has).
func readPart(r io.Reader, limit int64) []byte {
	var buf bytes.Buffer
	buf.ReadFrom(io.LimitReader(r, limit)) // an error ends the part; what came before it is kept
	return buf.Bytes()
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// unflow joins the soft line breaks of format=flowed text (RFC 3676 §4.1, §4.2): a line ending in a
// space continues on the next line of the same quote depth; space-stuffing is removed, and with
// delsp=yes the trailing space of a flowed line too. The signature separator "-- " is never flowed.
func unflow(text string, delsp bool) string {
	lines := strings.Split(text, "\n")
	var out strings.Builder
	joining := false
	prevDepth := 0
	for i, l := range lines {
		depth := 0
		for depth < len(l) && l[depth] == '>' {
			depth++
		}
		content := l[depth:]
		content = strings.TrimPrefix(content, " ") // space-stuffing (§4.4)
		if joining && depth != prevDepth {
			out.WriteByte('\n') // a quote depth change ends a paragraph (§4.5)
			joining = false
		}
		if !joining {
			out.WriteString(l[:depth])
			if depth > 0 {
				out.WriteByte(' ')
			}
		}
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if flowed && delsp {
			content = content[:len(content)-1]
		}
		out.WriteString(content)
		if flowed {
			joining, prevDepth = true, depth
			continue
		}
		joining = false
		if i < len(lines)-1 {
			out.WriteByte('\n')
		}
	}
	return out.String()
}
