package imapserver

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"

	"github.com/tanglemail/tanglemail/internal/mimepart"
)

// MIME for FETCH: BODYSTRUCTURE, BODY[part…] and BINARY[part] come from mimepart's bounded, one-pass
// parse of the message (depth ≤ mimepart.MaxDepth, parts ≤ mimepart.MaxParts; a part beyond the
// bounds is an opaque application/octet-stream leaf), never from go-imap's Extract helpers, whose
// nested readers cost depth × size. The parse is made once per message per FETCH.

// bodyStructure is the BODYSTRUCTURE (RFC 9051 §7.5.2) of a parsed message; ctx is checked between
// parts so that the work stops when the client has gone.
func bodyStructure(raw []byte, root *mimepart.Part) imap.BodyStructure {
	return structureOf(raw, root)
}

func structureOf(raw []byte, p *mimepart.Part) imap.BodyStructure {
	h := gomessage.Header{Header: p.Header}
	if p.IsMultipart() {
		bs := &imap.BodyStructureMultiPart{Subtype: p.Subtype}
		for _, c := range p.Children {
			bs.Children = append(bs.Children, structureOf(raw, c))
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      p.Params,
			Disposition: disposition(h),
			Language:    language(h),
			Location:    h.Get("Content-Location"),
		}
		return bs
	}
	body := raw[p.BodyStart:p.BodyEnd]
	lines := int64(bytes.Count(body, []byte("\n")))
	bs := &imap.BodyStructureSinglePart{
		Type:        p.Type,
		Subtype:     p.Subtype,
		Params:      p.Params,
		ID:          h.Get("Content-Id"),
		Description: h.Get("Content-Description"),
		Encoding:    h.Get("Content-Transfer-Encoding"),
		Size:        uint32(len(body)),
	}
	if p.Opaque {
		bs.Type, bs.Subtype, bs.Params = "application", "octet-stream", nil
	}
	if bs.Encoding == "" {
		bs.Encoding = "7bit"
	}
	if m := p.Message; m != nil && !p.Opaque {
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      envelope(raw[m.HeaderStart:m.BodyStart]),
			BodyStructure: structureOf(raw, m),
			NumLines:      lines,
		}
	}
	if bs.Type == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: lines}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: disposition(h),
		Language:    language(h),
		Location:    h.Get("Content-Location"),
	}
	return bs
}

func disposition(h gomessage.Header) *imap.BodyStructureDisposition {
	d, params, _ := h.ContentDisposition()
	if d == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d, Params: params}
}

func language(h gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	l := strings.Split(v, ",")
	for i := range l {
		l[i] = strings.TrimSpace(l[i])
	}
	return l
}

// partSection returns the bytes of BODY[part…] (RFC 9051 §6.4.5) for a non-empty part path, before
// the partial is applied; nil if the part does not exist.
func partSection(raw []byte, root *mimepart.Part, bs *imap.FetchItemBodySection) []byte {
	p := root.Find(bs.Part)
	if p == nil {
		return nil
	}
	switch bs.Specifier {
	case imap.PartSpecifierNone:
		return raw[p.BodyStart:p.BodyEnd]
	case imap.PartSpecifierMIME:
		return raw[p.HeaderStart:p.BodyStart]
	}
	// HEADER, HEADER.FIELDS, TEXT of an encapsulated message (of the part itself otherwise, as
	// go-imap does).
	m := p
	if p.Message != nil {
		m = p.Message
	}
	if bs.Specifier == imap.PartSpecifierText {
		return raw[m.BodyStart:m.BodyEnd]
	}
	hdr := raw[m.HeaderStart:m.BodyStart]
	if len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		return hdr
	}
	// Header fields: go-imap's filter over the header bytes alone (no MIME parsing there).
	return goimap.ExtractBodySection(bytes.NewReader(hdr), &imap.FetchItemBodySection{
		Specifier: imap.PartSpecifierHeader, HeaderFields: bs.HeaderFields, HeaderFieldsNot: bs.HeaderFieldsNot,
	})
}

// errUnknownCTE answers BINARY of a part whose transfer encoding the server cannot decode (RFC 3516
// §4.3).
var errUnknownCTE = imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeUnknownCTE, "Unknown Content-Transfer-Encoding")

// binarySection returns BINARY[part] (RFC 3516 §4.2): the part's body with its transfer encoding
// removed (no charset conversion). BINARY[] is the whole message, header and decoded body. A
// multipart's body and an opaque part are returned as they are.
func binarySection(raw []byte, root *mimepart.Part, part []int) ([]byte, error) {
	p := root
	if len(part) > 0 {
		p = root.Find(part)
		if p == nil {
			return nil, nil
		}
	}
	body := raw[p.BodyStart:p.BodyEnd]
	if !p.IsMultipart() && !p.Opaque && p.Message == nil {
		var err error
		body, err = mimepart.Decode(p.Header.Get("Content-Transfer-Encoding"), body)
		if errors.Is(err, mimepart.ErrUnknownEncoding) {
			return nil, errUnknownCTE
		}
	}
	if len(part) == 0 {
		return append(append([]byte{}, raw[p.HeaderStart:p.BodyStart]...), body...), nil
	}
	return body, nil
}

// errNULHeader refuses a message with a NUL byte in a header: no encoding can carry it.
var errNULHeader = imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Message header contains a NUL byte")

// encodeBinary returns raw with every part whose body holds a NUL byte re-encoded as base64, as
// Dovecot does when a message arrives as binary (APPEND with literal8, RFC 3516 §4.3): the stored
// message can then be sent as BODY[] in a plain literal, which must not hold NUL (RFC 9051 §4.3),
// and BINARY[part] still gives the original bytes. raw is returned as it is if it has no NUL.
func encodeBinary(raw []byte) ([]byte, error) {
	if bytes.IndexByte(raw, 0) < 0 {
		return raw, nil
	}
	root := mimepart.Parse(raw)
	var out bytes.Buffer
	out.Grow(len(raw) * 4 / 3)
	pos := 0
	var walk func(p *mimepart.Part) error
	walk = func(p *mimepart.Part) error {
		if bytes.IndexByte(raw[p.HeaderStart:p.BodyStart], 0) >= 0 {
			return errNULHeader
		}
		switch {
		case p.IsMultipart():
			for _, c := range p.Children {
				if err := walk(c); err != nil {
					return err
				}
			}
			return nil
		case p.Message != nil && !p.Opaque:
			return walk(p.Message)
		}
		body := raw[p.BodyStart:p.BodyEnd]
		if bytes.IndexByte(body, 0) < 0 {
			return nil
		}
		out.Write(raw[pos:p.HeaderStart])
		writeBase64Header(&out, raw[p.HeaderStart:p.BodyStart])
		enc := base64.StdEncoding.EncodeToString(body)
		for len(enc) > 76 {
			out.WriteString(enc[:76])
			out.WriteString("\r\n")
			enc = enc[76:]
		}
		out.WriteString(enc)
		pos = p.BodyEnd
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	out.Write(raw[pos:])
	return out.Bytes(), nil
}

// writeBase64Header writes a part's header with its Content-Transfer-Encoding field (and its folded
// lines) replaced by "base64", before the blank line that ends the header.
func writeBase64Header(out *bytes.Buffer, h []byte) {
	lines := bytes.SplitAfter(h, []byte("\n"))
	skipping := false
	wrote := false
	for _, l := range lines {
		if len(l) == 0 {
			continue
		}
		blank := len(bytes.TrimRight(l, "\r\n")) == 0
		if skipping && !blank && (l[0] == ' ' || l[0] == '\t') {
			continue // folded part of the dropped field
		}
		skipping = false
		if blank {
			out.WriteString("Content-Transfer-Encoding: base64\r\n")
			wrote = true
			out.Write(l)
			continue
		}
		if len(l) > 26 && strings.EqualFold(string(l[:26]), "content-transfer-encoding:") {
			skipping = true
			continue
		}
		out.Write(l)
		if !bytes.HasSuffix(l, []byte("\n")) {
			out.WriteString("\r\n")
		}
	}
	if !wrote {
		out.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	}
}
