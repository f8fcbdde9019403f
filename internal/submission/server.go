package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/mail"
)

// Defaults of Options.
const (
	DefaultMaxMessageBytes = mail.MaxMessageSize // 25 MiB, the largest message the network carries
	DefaultMaxRecipients   = 100                 // RFC 5321 §4.5.3.1.8's minimum
	DefaultReadTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = time.Minute
	DefaultSubmitTimeout   = 2 * time.Minute
)

// Message is a message accepted for sending (not to be confused with store.Submission, the Sent copy
// and outbox item that StoreBackend makes of it).
type Message struct {
	From  identity.Address   // the user's address (Options.Address)
	Rcpts []identity.Address // the SMTP envelope's recipients (RCPT TO), in order, without duplicates
	// Raw is the message as every recipient receives it: the client's bytes with Date and Message-ID
	// added when missing (and From when missing), Bcc and Resent-Bcc removed.
	Raw []byte
	// SentCopy is the sender's copy for the Sent mailbox: Raw with the Bcc fields kept, that is the
	// client's bytes plus the added fields. mail.StripBcc(SentCopy) == Raw.
	SentCopy  []byte
	MessageID string // the message's Message-ID, without angle brackets
	// Text, when not nil, is the rest of a large message (one over SpoolThreshold, spooled to a file
	// in Options.SpoolDir): Raw and SentCopy then hold only the header section, blank line included,
	// and each message is that header followed by Text's TextSize bytes. Text is valid until Submit
	// returns; it is read at most once.
	Text     io.Reader
	TextSize int64
}

// Backend takes accepted messages. Submit must return nil only once the message is durably
// committed (it survives a crash from then on): the client is told 250 after it returns, and it
// forgets the message. An error makes the client keep the message and retry later (451).
type Backend interface {
	Submit(ctx context.Context, s Message) (queueID string, err error)
}

// Options configure a Server.
type Options struct {
	// Address is the user's address, required: the only one the server sends as (MAIL FROM and the
	// From header field must name it).
	Address identity.Address
	// Password is the password clients authenticate with, required; the user name is Address
	// (as an e-mail address, compared case-insensitively).
	Password string
	// Penalty delays logins from sources that recently failed to log in; the node shares one among its
	// front doors. A penalty of its own (the defaults) if nil.
	Penalty *loginpenalty.Penalty
	// Hostname is the name in the greeting; default "localhost".
	Hostname string
	// TLSConfig enables STARTTLS (RFC 3207) when set.
	TLSConfig *tls.Config
	// MaxMessageBytes is the largest message accepted (RFC 1870 SIZE); default DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// MaxRecipients is the most recipients per message; default DefaultMaxRecipients.
	MaxRecipients int
	// Logger receives connection, authentication and submission events, never message content or
	// passwords; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for the Date field added to messages without one; default time.Now.
	Now func() time.Time
	// ReadTimeout bounds the wait for a command line, and for a whole DATA transfer from its
	// command on (go-smtp arms the deadline per line read); default DefaultReadTimeout, negative
	// for none.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a reply; default DefaultWriteTimeout, negative for none.
	WriteTimeout time.Duration
	// SubmitTimeout bounds Backend.Submit; default DefaultSubmitTimeout.
	SubmitTimeout time.Duration
	// SpoolDir, if set, is where messages larger than SpoolThreshold are spooled during DATA (files
	// 0600, synced before Submit, removed after it); New creates it (0700) and removes what a killed
	// process left there. Empty: every message is read into memory.
	SpoolDir string
}

// Server is an SMTP submission server (RFC 6409) in front of a Backend.
type Server struct {
	be      Backend
	opts    Options
	log     *slog.Logger
	secret  loginpenalty.Secret
	penalty *loginpenalty.Penalty
	own     string // opts.Address.Mail()
	smtp    *smtp.Server
	ctx     context.Context
	cancel  context.CancelFunc
	err     error // configuration error, returned by Serve
}

// New returns a server for backend. A configuration error (no address, no password) is returned by
// Serve.
func New(backend Backend, opts Options) *Server {
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = DefaultMaxRecipients
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.SubmitTimeout <= 0 {
		opts.SubmitTimeout = DefaultSubmitTimeout
	}
	if opts.Penalty == nil {
		opts.Penalty = loginpenalty.New(loginpenalty.Options{})
	}
	s := &Server{be: backend, opts: opts, log: opts.Logger, secret: loginpenalty.NewSecret(opts.Password), penalty: opts.Penalty}
	switch {
	case backend == nil:
		s.err = errors.New("submission: no backend")
	case opts.Password == "":
		s.err = errors.New("submission: no password configured")
	case opts.Address.Validate() != nil:
		s.err = fmt.Errorf("submission: the user's address: %w", opts.Address.Validate())
	default:
		s.own = opts.Address.Mail()
		if opts.SpoolDir != "" {
			s.err = cleanSpool(opts.SpoolDir)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLSConfig
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	// go-smtp's own rule would refuse AUTH on every connection without TLS, loopback included; the
	// session applies ours instead (authAllowed).
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = max(opts.ReadTimeout, 0)
	srv.WriteTimeout = max(opts.WriteTimeout, 0)
	srv.ErrorLog = errorLog{opts.Logger}
	s.smtp = srv
	return s
}

// Serve accepts connections on l until Close; it returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	if s.err != nil {
		return s.err
	}
	if s.ctx.Err() != nil {
		l.Close()
		return errors.New("submission: server closed")
	}
	err := s.smtp.Serve(ackListener{l})
	if s.ctx.Err() != nil {
		return nil
	}
	return err
}

// Close closes the listeners and every connection at once. A Backend.Submit in progress has its
// context cancelled; its client gets no reply and will submit again.
func (s *Server) Close() error {
	s.cancel()
	if err := s.smtp.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown closes the listeners and waits until every connection has ended (or ctx is done), so
// that submissions in progress finish and get their reply.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	s.cancel()
	if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, tlsOn := c.TLSConnectionState()
	remote := c.Conn().RemoteAddr()
	return &session{
		srv:    s,
		remote: remote.String(),
		source: loginpenalty.SourceOf(remote),
		local:  isLocal(remote),
		tls:    tlsOn,
	}, nil
}

// isLocal reports whether a connection comes from this machine: TCP from a loopback address, a Unix
// socket, or an in-process pipe.
func isLocal(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return a != nil && a.Network() == "pipe"
}

type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Warn("submission: " + fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.l.Warn("submission: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
