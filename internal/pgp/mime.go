package pgp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
)

// PGP/MIME errors.
var (
	ErrNotEncrypted = errors.New("pgp: not a PGP/MIME encrypted message (RFC 3156 §4)")
	ErrNotForUs     = errors.New("pgp: the message is not encrypted to our key")
	ErrDecrypt      = errors.New("pgp: decryption failed")
	ErrNoRecipients = errors.New("pgp: no recipient keys")
)

// field is one header field as it was written: its name and its raw lines, CRLF included.
type field struct {
	name string // as written
	raw  []byte
}

// value returns the field's raw value, after the colon.
func (f field) value() string {
	return string(f.raw[bytes.IndexByte(f.raw, ':')+1:])
}

// splitMessage splits an RFC 5322 message into its header fields and its body (after the empty line).
// A message without an empty line is all header. Line ends may be CRLF or LF.
func splitMessage(msg []byte) (fields []field, body []byte, err error) {
	rest := msg
	for len(rest) > 0 {
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			end = len(rest) - 1
		}
		line := rest[:end+1]
		if len(bytes.TrimRight(line, "\r\n")) == 0 { // the empty line
			return fields, rest[end+1:], nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, nil, errors.New("pgp: message starts with a continuation line")
			}
			fields[len(fields)-1].raw = append(fields[len(fields)-1].raw, crlf(line)...)
		} else {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return nil, nil, fmt.Errorf("pgp: malformed header line %q", truncate(line))
			}
			fields = append(fields, field{name: string(bytes.TrimSpace(line[:colon])), raw: crlf(line)})
		}
		rest = rest[end+1:]
	}
	return fields, nil, nil
}

// crlf returns line with its line end made CRLF (one is added if it has none).
func crlf(line []byte) []byte {
	l := bytes.TrimRight(line, "\r\n")
	out := make([]byte, 0, len(l)+2)
	return append(append(out, l...), '\r', '\n')
}

func truncate(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}

func isContentField(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "content-")
}

// ObscuredSubject is the Subject an encrypted message shows outside (RFC 9788 §4.2, hcp_baseline).
const ObscuredSubject = "[...]"

// protectedFields are the header fields copied into the encrypted entity (RFC 9788 §2.1.1's protected
// headers, with the Subject, which is only inside): the receiving client shows these.
var protectedFields = map[string]bool{"from": true, "to": true, "cc": true, "reply-to": true, "date": true,
	"message-id": true, "in-reply-to": true, "references": true}

// EncryptMIME encrypts msg, an RFC 5322 message, to the recipients' keys as PGP/MIME (RFC 3156 §4),
// signed by signer (nil: unsigned) and also encrypted to signer's own key so the sender can read its
// sent copy. The Content-* fields and the body become the encrypted MIME entity, with the protected
// headers of RFC 9788 (protected-headers="v1"): the Subject, and copies of From, To, Cc, Reply-To, Date,
// Message-ID, In-Reply-To and References. Outside, every field but Content-* stays as it was (the mail
// system needs them), except the Subject, which becomes ObscuredSubject.
// now is the time of the signature.
func EncryptMIME(msg []byte, to []*PublicKey, signer *Key, now time.Time) ([]byte, error) {
	if len(to) == 0 {
		return nil, ErrNoRecipients
	}
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrTooLarge, len(msg))
	}
	fields, body, err := splitMessage(msg)
	if err != nil {
		return nil, err
	}
	var inner, outer bytes.Buffer
	hasType := false
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.name, "Content-Type"):
			hasType = true
			inner.Write(bytes.TrimRight(f.raw, "\r\n"))
			inner.WriteString("; protected-headers=\"v1\"\r\n")
		case isContentField(f.name):
			inner.Write(f.raw)
		case strings.EqualFold(f.name, "MIME-Version"):
		case strings.EqualFold(f.name, "Subject"):
			// RFC 9788 §4.2 (hcp_baseline): the real subject only inside, "[...]" outside.
			inner.Write(f.raw)
			outer.WriteString("Subject: " + ObscuredSubject + "\r\n")
		default:
			outer.Write(f.raw)
			if protectedFields[strings.ToLower(f.name)] {
				inner.Write(f.raw)
			}
		}
	}
	if !hasType { // RFC 2045 §5.2's default, said explicitly
		inner.WriteString("Content-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\r\n")
	}
	inner.WriteString("\r\n")
	inner.Write(body)

	ents := make([]*openpgp.Entity, 0, len(to)+1)
	for _, p := range to {
		ents = append(ents, p.e)
	}
	var signEnt *openpgp.Entity
	if signer != nil {
		signEnt = signer.e
		ents = append(ents, signer.e)
	}
	var armored bytes.Buffer
	aw, err := armor.Encode(&armored, "PGP MESSAGE", nil)
	if err != nil {
		return nil, err
	}
	pw, err := openpgp.Encrypt(aw, ents, signEnt, &openpgp.FileHints{IsBinary: true}, config(now))
	if err != nil {
		return nil, fmt.Errorf("pgp: encrypt: %w", err)
	}
	if _, err := pw.Write(inner.Bytes()); err != nil {
		return nil, fmt.Errorf("pgp: encrypt: %w", err)
	}
	if err := pw.Close(); err != nil {
		return nil, fmt.Errorf("pgp: encrypt: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}

	var rb [12]byte
	rand.Read(rb[:])
	boundary := "tm-pgp-" + hex.EncodeToString(rb[:])
	outer.WriteString("MIME-Version: 1.0\r\n")
	outer.WriteString("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"" + boundary + "\"\r\n")
	outer.WriteString("\r\nThis is an OpenPGP/MIME encrypted message (RFC 3156).\r\n")
	outer.WriteString("--" + boundary + "\r\n")
	outer.WriteString("Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n")
	outer.WriteString("--" + boundary + "\r\n")
	outer.WriteString("Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n")
	outer.WriteString("Content-Description: OpenPGP encrypted message\r\n")
	outer.WriteString("Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n")
	outer.Write(bytes.ReplaceAll(bytes.ReplaceAll(armored.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")))
	outer.WriteString("\r\n--" + boundary + "--\r\n")
	return outer.Bytes(), nil
}

// IsEncryptedMIME reports whether msg's top-level Content-Type is multipart/encrypted with protocol
// application/pgp-encrypted (RFC 3156 §4). It reads only the header.
func IsEncryptedMIME(msg []byte) bool {
	_, _, err := encryptedPart(msg, true)
	return err == nil
}

// encryptedPart returns msg's header fields and the armored OpenPGP message of its second part (RFC
// 3156 §4). With headerOnly it checks the Content-Type only.
func encryptedPart(msg []byte, headerOnly bool) ([]field, []byte, error) {
	if len(msg) > MaxMessageSize {
		return nil, nil, fmt.Errorf("%w: message of %d bytes", ErrTooLarge, len(msg))
	}
	fields, body, err := splitMessage(msg)
	if err != nil {
		return nil, nil, err
	}
	var ct string
	for _, f := range fields {
		if strings.EqualFold(f.name, "Content-Type") {
			ct = strings.ReplaceAll(f.value(), "\r\n", "")
		}
	}
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(ct))
	if err != nil || mt != "multipart/encrypted" || !strings.EqualFold(params["protocol"], "application/pgp-encrypted") || params["boundary"] == "" {
		return nil, nil, ErrNotEncrypted
	}
	if headerOnly {
		return fields, nil, nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	// Part 1: application/pgp-encrypted, "Version: 1".
	p1, err := mr.NextRawPart()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: first part: %v", ErrNotEncrypted, err)
	}
	if t, _, _ := mime.ParseMediaType(p1.Header.Get("Content-Type")); t != "application/pgp-encrypted" {
		return nil, nil, fmt.Errorf("%w: first part is %q", ErrNotEncrypted, t)
	}
	// Part 2: application/octet-stream, the armored message.
	p2, err := mr.NextRawPart()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: second part: %v", ErrNotEncrypted, err)
	}
	if t, _, _ := mime.ParseMediaType(p2.Header.Get("Content-Type")); t != "application/octet-stream" {
		return nil, nil, fmt.Errorf("%w: second part is %q", ErrNotEncrypted, t)
	}
	data, err := io.ReadAll(io.LimitReader(p2, MaxMessageSize))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: second part: %v", ErrNotEncrypted, err)
	}
	return fields, data, nil
}

// Decrypted is an inbound PGP/MIME message opened by DecryptMIME.
type Decrypted struct {
	// Message is the RFC 5322 message: the outer header fields (but Content-* and those the encrypted
	// part repeats, RFC 9788's protected headers) followed by the decrypted MIME entity.
	Message []byte
	// Signed says the encrypted data carried a signature; SignerKnown that it was made by one of the
	// keys given to DecryptMIME and verified (SignatureError nil), with SignerFingerprint.
	Signed            bool
	SignerKnown       bool
	SignerFingerprint string
	SignatureError    error
}

// DecryptMIME decrypts a PGP/MIME message (RFC 3156 §4) encrypted to k. Signatures by one of senders'
// keys are verified (the result says so; a bad signature is not an error, the caller decides). A message
// that is not PGP/MIME gives ErrNotEncrypted, one not encrypted to k ErrNotForUs, and a corrupt or
// altered one (the integrity check of SEIPD, RFC 9580 §5.13) ErrDecrypt.
func (k *Key) DecryptMIME(msg []byte, senders []*PublicKey, now time.Time) (*Decrypted, error) {
	fields, armored, err := encryptedPart(msg, false)
	if err != nil {
		return nil, err
	}
	blk, err := armor.Decode(bytes.NewReader(armored))
	if err != nil || blk.Type != "PGP MESSAGE" {
		return nil, fmt.Errorf("%w: not an armored OpenPGP message", ErrDecrypt)
	}
	ring := openpgp.EntityList{k.e}
	for _, s := range senders {
		ring = append(ring, s.e)
	}
	plain, md, err := readMessage(blk.Body, ring, now)
	if err != nil {
		return nil, err
	}
	ifields, ibody, err := splitMessage(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: encrypted entity: %v", ErrDecrypt, err)
	}
	protected := map[string]bool{}
	for _, f := range ifields {
		protected[strings.ToLower(f.name)] = true
	}
	var out bytes.Buffer
	for _, f := range fields {
		if isContentField(f.name) || protected[strings.ToLower(f.name)] || strings.EqualFold(f.name, "MIME-Version") {
			continue
		}
		out.Write(f.raw)
	}
	out.WriteString("MIME-Version: 1.0\r\n")
	for _, f := range ifields {
		if !strings.EqualFold(f.name, "MIME-Version") {
			out.Write(f.raw)
		}
	}
	out.WriteString("\r\n")
	out.Write(ibody)
	d := &Decrypted{Message: out.Bytes(), Signed: md.IsSigned}
	if md.IsSigned && md.SignedBy != nil && md.SignedBy.Entity != k.e {
		d.SignerKnown = true
		d.SignerFingerprint = fmt.Sprintf("%X", md.SignedBy.Entity.PrimaryKey.Fingerprint)
		d.SignatureError = md.SignatureError
	} else if md.IsSigned && md.SignedBy != nil { // signed by ourselves (our own sent copy)
		d.SignerKnown = true
		d.SignerFingerprint = k.Fingerprint()
		d.SignatureError = md.SignatureError
	}
	return d, nil
}

// readMessage decrypts an OpenPGP message with ring, reading all of it (the integrity check is done at
// the end) up to MaxMessageSize bytes.
func readMessage(r io.Reader, ring openpgp.EntityList, now time.Time) (plain []byte, md *openpgp.MessageDetails, err error) {
	defer func() {
		if v := recover(); v != nil {
			plain, md, err = nil, nil, fmt.Errorf("%w: parser failure: %v", ErrDecrypt, v)
		}
	}()
	md, err = openpgp.ReadMessage(r, ring, nil, config(now))
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, nil, fmt.Errorf("%w: %v", ErrNotForUs, err)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	if !md.IsEncrypted || md.DecryptedWith.Entity == nil {
		return nil, nil, fmt.Errorf("%w: not encrypted to a key of ours", ErrNotForUs)
	}
	plain, err = io.ReadAll(io.LimitReader(md.UnverifiedBody, MaxMessageSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	if len(plain) > MaxMessageSize {
		return nil, nil, fmt.Errorf("%w: decrypted message over %d bytes", ErrTooLarge, MaxMessageSize)
	}
	return plain, md, nil
}
