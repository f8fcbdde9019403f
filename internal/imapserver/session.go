package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/store"
)

// session is one connection's state. go-imap calls its methods one at a time from the connection's
// goroutine, except Idle, which runs on a second goroutine while the first waits for DONE (and Close,
// which may overlap a finishing Idle); mu serialises them all.
type session struct {
	srv    *Server
	conn   *goimap.Conn
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	mu     sync.Mutex
	authed bool
	// loggedIn mirrors authed for the connection's cmdConn, which reads it without mu.
	loggedIn authFlag
	sel      *selected // nil unless a mailbox is selected
}

var (
	_ goimap.SessionIMAP4rev2   = (*session)(nil)
	_ goimap.SessionAppendLimit = (*session)(nil)
)

func (s *Server) newSession(c *goimap.Conn) (goimap.Session, *goimap.GreetingData, error) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.sessions.Add(1)
	}
	s.mu.Unlock()
	if closed {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sess := &session{
		srv:    s,
		conn:   c,
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With("remote", c.NetConn().RemoteAddr().String()),
	}
	if cc, ok := c.NetConn().(*cmdConn); ok {
		cc.authed = sess.loggedIn.Load // same goroutine as cmdConn's reads, before the first command
	}
	sess.log.Debug("imap: connection")
	return sess, nil, nil
}

// Close ends the session: it drops the selected mailbox's listener and cancels store calls.
func (s *session) Close() error {
	s.cancel()
	s.mu.Lock()
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	s.mu.Unlock()
	s.log.Debug("imap: connection closed")
	s.srv.sessions.Done()
	return nil
}

// Login checks the user name and password (LOGIN, and AUTHENTICATE PLAIN through go-imap), after the
// failed-login penalty's wait for the connection's source (Options.Penalty). go-imap has already
// refused it on a connection that must use TLS first; the check is repeated here.
func (s *session) Login(username, password string) error {
	if !s.isTLS() && !s.srv.opts.AllowInsecureAuth(s.conn.NetConn().RemoteAddr()) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	}
	// Both checks run whatever the other's outcome; the penalty's wait comes before the answer.
	passOK := s.srv.secret.Matches(password)
	userOK := strings.EqualFold(username, s.srv.opts.Username)
	ok, err := s.srv.penalty.Attempt(s.ctx, "imap", loginpenalty.SourceOf(s.conn.NetConn().RemoteAddr()), password, passOK && userOK)
	if err != nil {
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable, "Server shutting down")
	}
	if !ok {
		s.log.Warn("imap: login failed")
		return goimap.ErrAuthFailed
	}
	s.mu.Lock()
	s.authed = true
	s.loggedIn.Store(true)
	s.mu.Unlock()
	s.log.Info("imap: login")
	return nil
}

// AppendLimit is the APPENDLIMIT (RFC 7889) for every mailbox.
func (s *session) AppendLimit() uint32 { return s.srv.appendMax }

// Namespace: one personal namespace, no prefix, "/" as delimiter (RFC 2342).
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

// delim is the hierarchy delimiter, store.Delimiter as a rune.
const delim = '/'

// Errors sent to clients. Texts are fixed: store errors may name mailboxes, and internal errors never
// reach the wire.
func imapErr(typ imap.StatusResponseType, code imap.ResponseCode, text string) *imap.Error {
	return &imap.Error{Type: typ, Code: code, Text: text}
}

var (
	errNoMailbox   = imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeNonExistent, "No such mailbox")
	errTryCreate   = imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeTryCreate, "No such mailbox")
	errReadOnly    = imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Mailbox is read-only (EXAMINE)")
	errMailboxGone = imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeNonExistent, "Selected mailbox was deleted")
)

// storeErr maps a store error to an IMAP status response (RFC 5530 codes) and logs the unexpected
// ones. op names the command for the log.
func (s *session) storeErr(op string, err error) error {
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return err
	case errors.Is(err, store.ErrNoMailbox):
		return errNoMailbox
	case errors.Is(err, store.ErrMailboxExists):
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrInvalidName):
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, store.ErrProtected):
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "This mailbox cannot be deleted")
	case errors.Is(err, store.ErrSameMailbox):
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Source and destination are the same mailbox")
	case errors.Is(err, store.ErrInvalidFlag):
		return imapErr(imap.StatusResponseTypeBad, imap.ResponseCodeClientBug, "Invalid flag")
	case errors.Is(err, store.ErrUIDsExhausted):
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeLimit, "Mailbox has used all UIDs")
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled), s.ctx.Err() != nil:
		return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable, "Server shutting down")
	}
	s.log.Error("imap: store", "op", op, "err", err)
	return imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeServerBug, "Internal error")
}

// command returns the name of the command being run ("LSUB"), "" if unknown. go-imap does not tell
// LSUB from LIST (SUBSCRIBED); cmdConn saw the line. The session's methods run on the goroutine that
// reads commands, after the line was read.
func (s *session) command() string {
	if cc, ok := s.conn.NetConn().(*cmdConn); ok {
		return cc.command
	}
	return ""
}

// isTLS reports whether the connection has TLS: from the start (*tls.Conn), or after a STARTTLS that
// cmdConn answered.
func (s *session) isTLS() bool {
	switch c := s.conn.NetConn().(type) {
	case *tls.Conn:
		return true
	case *cmdConn:
		return c.TLS()
	}
	return false
}
