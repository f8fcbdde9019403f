package submission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// Replies (RFC 5321 §4.2, enhanced codes RFC 3463, AUTH codes RFC 4954 §6).
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message: "Encryption required for requested authentication mechanism: use STARTTLS, or connect over loopback"}
	errAuthFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid: the user name is your address, the password the node's"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Service shutting down"}
	errSASLSyntax = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Malformed authentication response"}
	errTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message too big for system"}
	errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Line too long: lines are limited to 2000 bytes (RFC 5321 §4.5.3.1.6 allows 1000)"}
	errNotStored = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Message not accepted: it could not be stored, please try again later"}
)

type session struct {
	srv    *Server
	remote string
	source loginpenalty.Source
	local  bool // loopback, Unix socket or pipe
	tls    bool

	authed bool
	rcpts  []identity.Address
}

// authAllowed: AUTH is offered over TLS, and without TLS only to local connections (RFC 4954 §4:
// a server should not permit plaintext mechanisms without a confidentiality layer).
func (s *session) authAllowed() bool { return s.tls || s.local }

func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil // not advertised in EHLO
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	defer s.logPanic()
	if !s.authAllowed() {
		return nil, errEncryptionRequired
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return saslErrors{s, sasl.NewPlainServer(func(authz, user, pass string) error {
			if authz != "" && authz != user {
				s.srv.log.Warn("submission: authentication failed", "remote", s.remote, "mechanism", "PLAIN",
					"reason", "authorization identity differs from user name")
				return errAuthFailed
			}
			return s.login("PLAIN", user, pass)
		})}, nil
	case sasl.Login:
		return saslErrors{s, &loginServer{check: func(user, pass string) error { return s.login("LOGIN", user, pass) }}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// login checks the user name and the password, after the failed-login penalty's wait for the
// connection's source (Options.Penalty). The user name must be the user's address (the one IMAP takes),
// compared case-insensitively (bech32 and the domain both are); the password is compared in constant
// time, of its length too (both sides are hashed first).
func (s *session) login(mech, user, password string) error {
	passOK := s.srv.secret.Matches(password)
	userOK := strings.EqualFold(user, s.srv.own)
	ok, err := s.srv.penalty.Attempt(s.srv.ctx, "smtp", s.source, password, passOK && userOK)
	if err != nil {
		return errShuttingDown
	}
	if !ok {
		s.srv.log.Warn("submission: authentication failed", "remote", s.remote, "mechanism", mech)
		return errAuthFailed
	}
	s.authed = true
	s.srv.log.Debug("submission: authenticated", "remote", s.remote, "mechanism", mech, "tls", s.tls)
	return nil
}

// saslErrors turns go-sasl's own errors (malformed responses) into 501 instead of go-smtp's 454.
type saslErrors struct {
	s *session
	sasl.Server
}

func (w saslErrors) Next(response []byte) ([]byte, bool, error) {
	defer w.s.logPanic()
	c, done, err := w.Server.Next(response)
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			err = errSASLSyntax
		}
	}
	return c, done, err
}

// loginServer is the LOGIN mechanism (draft-murchison-sasl-login): the server asks for "Username:"
// and "Password:"; a client may send the user name as an initial response. go-sasl has only its
// client side.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// Mail handles MAIL FROM (RFC 5321 §4.1.1.2). The reverse-path must be the user's address or null;
// RFC 6409 §6.1 lets an MSA refuse a sender the user is not authorised to use, and every tangle
// message is signed by the user's key whatever the client says.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	defer s.logPanic()
	if !s.authed {
		return errAuthRequired
	}
	if from != "" {
		a, err := mail.ParseRecipient(from)
		if err != nil || !a.Equal(s.srv.opts.Address) {
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
				Message: replyText(fmt.Sprintf("<%s> is not your address: this node sends only as <%s>", from, s.srv.own))}
		}
	}
	s.rcpts = s.rcpts[:0]
	return nil
}

// Rcpt handles RCPT TO (RFC 5321 §4.1.1.3): only tangle addresses; a repeated one is accepted once.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	defer s.logPanic()
	if !s.authed {
		return errAuthRequired
	}
	a, err := mail.ParseRecipient(to)
	if err != nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: replyText(s.rcptError(to, err))}
	}
	for _, r := range s.rcpts {
		if r.Equal(a) {
			return nil
		}
	}
	s.rcpts = append(s.rcpts, a)
	return nil
}

// rcptError is the text of the 550 for a recipient that is not a tangle address. A contact's petname
// (RCPT TO:<bob@tangle>, or @localhost; go-smtp refuses a bare <bob> as a syntax error) is not
// resolved: the reply names the contact's address instead, so the user writes to it (docs/decisions.md
// says why).
func (s *session) rcptError(to string, err error) string {
	name, domain, hasAt := strings.Cut(to, "@")
	if hasAt && !strings.EqualFold(domain, identity.MailDomain) && !strings.EqualFold(domain, "localhost") {
		return err.Error()
	}
	if cr, ok := s.srv.be.(ContactResolver); ok && name != "" {
		ctx, cancel := context.WithTimeout(s.srv.ctx, 5*time.Second)
		defer cancel()
		if addr, ok := cr.ContactAddress(ctx, name); ok {
			return fmt.Sprintf("%s is the name of your contact, not an address: write to <%s>", name, addr)
		}
	}
	return err.Error()
}

// Data reads the message and hands it to the backend; the reply (go-smtp writes what Data returns)
// is 250 only once Backend.Submit has returned nil. A message larger than SpoolThreshold is spooled
// to a file (Options.SpoolDir) and handed over as its header section and a reader of the rest.
func (s *session) Data(r io.Reader) error {
	defer s.logPanic()
	if !s.authed {
		return errAuthRequired
	}
	max := s.srv.opts.MaxMessageBytes
	lr := io.LimitReader(r, max+1)
	first := io.Reader(lr)
	if s.srv.opts.SpoolDir != "" {
		first = io.LimitReader(lr, SpoolThreshold+1)
	}
	raw, err := io.ReadAll(first)
	if err != nil {
		return dataReadError(err)
	}
	if s.srv.opts.SpoolDir != "" && len(raw) > SpoolThreshold {
		return s.dataSpooled(raw, lr)
	}
	if int64(len(raw)) > max {
		return errTooLarge
	}
	sub, rerr := s.prepare(raw)
	if rerr != nil {
		return rerr
	}
	return s.submit(sub)
}

// dataSpooled spools a large message (head: its first bytes, read already; r: the rest) and submits
// it from the spool file, which is removed once Submit has returned, whatever it returned.
func (s *session) dataSpooled(head []byte, r io.Reader) error {
	max := s.srv.opts.MaxMessageBytes
	sp, err := spool(s.srv.opts.SpoolDir, head, r, max)
	if errors.Is(err, errSpoolWrite) {
		s.srv.log.Error("submission: message not spooled", "remote", s.remote, "err", err)
		return errNotStored
	}
	if err != nil {
		return dataReadError(err)
	}
	defer sp.release()
	if sp.size > max {
		return errTooLarge
	}
	hs, ok := store.HeaderEnd(sp.head)
	if !ok {
		// A header section longer than SpoolThreshold (malformed mail): read whole, as small mail is.
		raw, err := io.ReadAll(sp.text(0))
		if err != nil {
			s.srv.log.Error("submission: reading the spool file", "remote", s.remote, "err", err)
			return errNotStored
		}
		sub, rerr := s.prepare(raw)
		if rerr != nil {
			return rerr
		}
		return s.submit(sub)
	}
	sub, rerr := s.prepare(sp.head[:hs])
	if rerr != nil {
		return rerr
	}
	sub.Text, sub.TextSize = sp.text(int64(hs)), sp.size-int64(hs)
	return s.submit(sub)
}

// dataReadError is the reply to an error reading DATA from the client.
func dataReadError(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se // 552 from go-smtp's size limit
	}
	if errors.Is(err, smtp.ErrTooLongLine) {
		return errLineTooLong
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Reading the message failed"}
}

// submit hands a prepared message to the backend and replies 250 once it has it durably.
func (s *session) submit(sub Message) error {
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.SubmitTimeout)
	defer cancel()
	size := int64(len(sub.SentCopy)) + sub.TextSize
	id, err := s.srv.be.Submit(ctx, sub)
	if err != nil {
		s.srv.log.Error("submission: message not stored", "remote", s.remote, "size", size, "err", err)
		return errNotStored
	}
	s.srv.log.Info("submission: message queued", "queue_id", id, "recipients", len(sub.Rcpts), "size", size)
	// go-smtp replies with the code of the error Data returns; this is how a backend names the queue id.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: replyText("OK: queued as " + id)}
}

// prepare checks the message and builds the submission: From must be the user's (added if absent),
// Date and Message-ID are added if absent (RFC 6409 §8.2, §8.3), Bcc is removed for delivery.
func (s *session) prepare(raw []byte) (Message, *smtp.SMTPError) {
	msg, err := mail.Parse(raw)
	if err != nil {
		return Message{}, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: replyText("Message header cannot be parsed: " + strings.TrimPrefix(err.Error(), "mail: "))}
	}
	if !mail.HasField(raw, "From") {
		raw = mail.InsertFields(raw, mail.Field{Name: "From", Value: "<" + s.srv.own + ">"})
	} else {
		if len(msg.From) == 0 {
			return Message{}, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
				Message: "The From header field is empty: it must name your address <" + s.srv.own + ">"}
		}
		// RFC 5322 §3.6: exactly one From field; and a message signed by one identity has one author.
		if len(msg.From) > 1 {
			return Message{}, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
				Message: replyText(fmt.Sprintf("The message names %d authors in From: write one From field with your address <%s>", len(msg.From), s.srv.own))}
		}
		for _, f := range msg.From {
			if a, err := f.Tangle(); err != nil || !a.Equal(s.srv.opts.Address) {
				return Message{}, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
					Message: replyText(fmt.Sprintf("From: <%s> is not your address: write From: <%s> (every message is signed by your identity)", f.Address, s.srv.own))}
			}
		}
	}
	sent := mail.AddMissing(raw, s.srv.opts.Now())
	if msg.MessageID == "" || !msg.HasMessageID {
		if m, err := mail.Parse(sent); err == nil {
			msg = m
		}
	}
	return Message{
		From:      s.srv.opts.Address,
		Rcpts:     append([]identity.Address(nil), s.rcpts...),
		Raw:       mail.StripBcc(sent),
		SentCopy:  sent,
		MessageID: msg.MessageID,
	}, nil
}

func (s *session) Reset() {
	s.rcpts = s.rcpts[:0]
}

func (s *session) Logout() error { return nil }

// logPanic logs a panic of a session method with the server's logger and the connection's context,
// then lets it go on to go-smtp, which answers 421 and closes the connection.
func (s *session) logPanic() {
	if r := recover(); r != nil {
		s.srv.log.Error("submission: panic in session", "remote", s.remote, "panic", fmt.Sprint(r))
		panic(r)
	}
}

// replyText makes s safe for one reply line: printable US-ASCII, at most 400 characters.
func replyText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > 400 {
		s = s[:397] + "..."
	}
	return s
}
