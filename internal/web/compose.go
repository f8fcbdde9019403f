package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/store"
)

// Limits of a message composed through the API (docs/api.md, "Sending mail").
const (
	maxRecipients = 100
	maxSubject    = 900 // bytes; the Subject field must fit RFC 5322's 998-character lines once encoded and folded

	maxAttachments     = 20       // files in one message
	maxAttachmentBytes = 18 << 20 // all files together, as uploaded; base64 makes them about 4/3 as large
	maxAttachmentName  = 255      // bytes of a file name
	// maxUploadBody bounds a multipart/form-data body of POST /api/messages: the files, the JSON and
	// the multipart framing.
	maxUploadBody = maxAttachmentBytes + maxBody + 1<<20
)

// attachment is one file of a message composed through the API.
type attachment struct {
	name  string // as the user's file was called, checked by attachmentName
	ctype string // a valid media type, without parameters
	data  []byte
}

// errNoRecipient is wrapped by resolve's errors: the entry is neither a petname nor an address.
var errNoRecipient = errors.New("not a recipient")

// resolve turns a recipient as the user wrote it — a contact's petname or a tangle address, with or
// without @tangle — into an address. A petname wins over an address spelled the same (petnames that
// parse as addresses are refused when contacts are added, so this does not arise through the API).
func (s *Server) resolve(ctx context.Context, entry string) (identity.Address, error) {
	entry = strings.TrimSpace(entry)
	if entry == "" {
		return identity.Address{}, fmt.Errorf("%w: an entry is empty", errNoRecipient)
	}
	c, err := s.store.Contact(ctx, entry)
	if err == nil {
		a, err := identity.ParseAddress(c.Address)
		if err != nil {
			return identity.Address{}, fmt.Errorf("%w: the contact %q has an invalid address %q", errNoRecipient, c.Petname, c.Address)
		}
		return a, nil
	}
	if !errors.Is(err, store.ErrNoContact) {
		return identity.Address{}, err
	}
	if strings.Contains(entry, "@") {
		a, err := mail.ParseRecipient(entry)
		if err != nil {
			return identity.Address{}, fmt.Errorf("%w: %v", errNoRecipient, err)
		}
		return a, nil
	}
	if strings.HasPrefix(strings.ToLower(entry), identity.HRP+"1") {
		a, err := identity.ParseAddress(entry)
		if err != nil {
			return identity.Address{}, fmt.Errorf("%w: %s is not a valid tangle address: %s", errNoRecipient, entry,
				strings.TrimPrefix(err.Error(), "identity: "))
		}
		return a, nil
	}
	return identity.Address{}, fmt.Errorf("%w: %q is neither a contact's petname nor a tangle address (tm1…@tangle)", errNoRecipient, entry)
}

// internetRecipient reports whether entry, which resolve could not make a tangle recipient (err), is an
// Internet address the node's relay gateway takes (protocol.md §15.4), and returns it trimmed.
func (s *Server) internetRecipient(entry string, err error) (string, bool) {
	if s.relay == "" || !errors.Is(err, errNoRecipient) {
		return "", false
	}
	entry = strings.TrimSpace(entry)
	if strings.HasSuffix(strings.ToLower(entry), "@tangle") || mail.CheckInternetAddress(entry) != nil {
		return "", false
	}
	return entry, true
}

// handleSend is POST /api/messages: build the message, file it in Sent and enqueue it, in one
// transaction (store.Submit); the outbox picks it up from the store's change bus.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	var req api.Compose
	var files []attachment
	if isMultipartForm(r.Header.Get("Content-Type")) {
		var ok bool
		if req, files, ok = readUpload(w, r); !ok {
			return
		}
	} else if !decodeJSON(w, r, &req) {
		return
	}
	ctx := r.Context()
	if len(req.To)+len(req.Cc)+len(req.Bcc) == 0 {
		writeError(w, http.StatusBadRequest, `field "to" is missing or empty: give at least one recipient (a contact's petname or a tm1…@tangle address)`)
		return
	}
	if len(req.To)+len(req.Cc)+len(req.Bcc) > maxRecipients {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("too many recipients: at most %d in to, cc and bcc together", maxRecipients))
		return
	}
	var rcpts, internet []string
	seen := map[string]bool{}
	resolveAll := func(field string, entries []string) ([]*gomail.Address, bool) {
		var out []*gomail.Address
		for _, e := range entries {
			a, err := s.resolve(ctx, e)
			if inet, ok := s.internetRecipient(e, err); ok {
				out = append(out, &gomail.Address{Address: inet})
				if k := strings.ToLower(inet); !seen[k] {
					seen[k] = true
					internet = append(internet, inet)
				}
				continue
			}
			if errors.Is(err, errNoRecipient) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("field %q: %s", field, strings.TrimPrefix(err.Error(), errNoRecipient.Error()+": ")))
				return nil, false
			}
			if err != nil {
				s.fail(w, r, "look up the contacts", err)
				return nil, false
			}
			m := a.Mail()
			out = append(out, &gomail.Address{Address: m})
			if !seen[m] {
				seen[m] = true
				rcpts = append(rcpts, m)
			}
		}
		return out, true
	}
	to, ok := resolveAll("to", req.To)
	if !ok {
		return
	}
	cc, ok := resolveAll("cc", req.Cc)
	if !ok {
		return
	}
	bcc, ok := resolveAll("bcc", req.Bcc)
	if !ok {
		return
	}
	if msg := checkText("subject", req.Subject, maxSubject, true); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := checkText("text", req.Text, maxBody, false); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	inReplyTo := strings.TrimSpace(req.InReplyTo)
	if inReplyTo != "" {
		inReplyTo = strings.TrimSuffix(strings.TrimPrefix(inReplyTo, "<"), ">")
		if !validMsgID(inReplyTo) {
			writeError(w, http.StatusBadRequest, `field "in_reply_to" must be a message id such as "<abc@tangle>"`)
			return
		}
	}
	raw, err := buildMessage(outgoing{from: s.address, to: to, cc: cc, bcc: bcc, subject: req.Subject, text: req.Text,
		inReplyTo: inReplyTo, files: files}, s.now())
	if err != nil {
		s.fail(w, r, "build the message", err)
		return
	}
	if len(raw) > mail.MaxMessageSize {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the message would be %d bytes, more than the %d the network carries: send fewer or smaller attachments", len(raw), mail.MaxMessageSize))
		return
	}
	var res store.Submitted
	if len(internet) > 0 {
		res, err = outbox.QueueRelay(ctx, s.store, s.address, rcpts, internet, s.relay, raw)
	} else {
		res, err = s.store.Submit(ctx, store.Submission{OutboxNew: store.OutboxNew{From: s.address, Rcpts: rcpts, Raw: raw}})
	}
	if err != nil {
		s.fail(w, r, "queue the message", err)
		return
	}
	s.log.Info("message queued from the API", "outbox_id", res.OutboxID, "recipients", len(rcpts), "internet_recipients", len(internet), "attachments", len(files))
	writeJSON(w, http.StatusAccepted, api.Sent{OutboxID: int64(res.OutboxID), Folder: int64(res.Sent.MailboxID), UID: res.Sent.UID})
}

// checkText says what is wrong with a text field, or "" if nothing is: it must be UTF-8, at most max
// bytes, without control characters other than line breaks and tabs (none at all when oneLine).
func checkText(field, v string, max int, oneLine bool) string {
	if len(v) > max {
		return fmt.Sprintf("field %q is too long: at most %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return fmt.Sprintf("field %q is not valid UTF-8", field)
	}
	for _, r := range v {
		if r == '\t' || (!oneLine && (r == '\n' || r == '\r')) {
			continue
		}
		if unicode.IsControl(r) {
			if oneLine && (r == '\n' || r == '\r') {
				return fmt.Sprintf("field %q must be one line", field)
			}
			return fmt.Sprintf("field %q contains a control character (U+%04X)", field, r)
		}
	}
	return ""
}

// validMsgID reports whether id (without angle brackets) can be written as an RFC 5322 §3.6.4 msg-id:
// printable ASCII without spaces or angle brackets, with an @.
func validMsgID(id string) bool {
	if len(id) == 0 || len(id) > 900 || !strings.Contains(id, "@") {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// outgoing is a message composed through the API.
type outgoing struct {
	from        string
	to, cc, bcc []*gomail.Address
	subject     string
	text        string
	inReplyTo   string // without angle brackets; "" for none
	files       []attachment
}

// buildMessage writes an RFC 5322 message (§3.6: Date, From, To, Cc, Bcc, Subject, Message-ID,
// In-Reply-To and References). Without files the body is a single text/plain; charset=utf-8 part (RFC
// 2045, RFC 2046 §4.1): 7bit when the text is ASCII with short lines, quoted-printable otherwise. With
// files it is multipart/mixed (RFC 2046 §5.1.3): that text part first, then each file as an attachment
// (RFC 2183 Content-Disposition with the file name, RFC 2231 encoded when not ASCII) in base64. Non-ASCII
// subjects are RFC 2047 encoded words; long fields are folded (RFC 5322 §2.2.3). Lines end in CRLF.
// The Bcc field stays in this, the Sent copy; the outbox sends every recipient the message without it
// (mail.StripBcc, RFC 5322 §3.6.3).
func buildMessage(m outgoing, now time.Time) ([]byte, error) {
	text := strings.ReplaceAll(strings.ReplaceAll(m.text, "\r\n", "\n"), "\r", "\n")
	cte := "7bit"
	for _, l := range strings.Split(text, "\n") {
		if len(l) > 78 || !isASCII(l) {
			cte = "quoted-printable"
			break
		}
	}
	if cte == "7bit" {
		text = strings.ReplaceAll(text, "\n", "\r\n")
	} // else the quoted-printable writer ends lines in CRLF

	// go-message writes header fields in the reverse order of addition.
	var h gomail.Header
	if len(m.files) == 0 {
		h.Set("Content-Transfer-Encoding", cte)
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	h.Set("MIME-Version", "1.0")
	if m.inReplyTo != "" {
		h.Set("References", "<"+m.inReplyTo+">")
		h.Set("In-Reply-To", "<"+m.inReplyTo+">")
	}
	h.Set("Message-ID", "<"+mail.NewMessageID()+">")
	if m.subject != "" {
		h.SetSubject(m.subject)
	}
	if len(m.bcc) > 0 {
		h.SetAddressList("Bcc", m.bcc)
	}
	if len(m.cc) > 0 {
		h.SetAddressList("Cc", m.cc)
	}
	if len(m.to) > 0 {
		h.SetAddressList("To", m.to)
	}
	h.SetAddressList("From", []*gomail.Address{{Address: m.from}})
	h.Set("Date", mail.FormatDate(now))

	var buf bytes.Buffer
	if len(m.files) == 0 {
		mw, err := message.CreateWriter(&buf, h.Header)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(mw, text); err != nil {
			return nil, err
		}
		if err := mw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := gomail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	var th gomail.InlineHeader
	th.Set("Content-Type", "text/plain; charset=utf-8")
	th.Set("Content-Transfer-Encoding", cte)
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, text); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	for _, f := range m.files {
		var ah gomail.AttachmentHeader
		ah.SetContentType(f.ctype, nil)
		ah.SetFilename(f.name)
		ah.Set("Content-Transfer-Encoding", "base64")
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := aw.Write(f.data); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
