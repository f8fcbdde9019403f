package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/handoff"
	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/store"
)

// DefaultUsername is the user name clients log in with when Options.Username is empty.
const DefaultUsername = "tanglemail"

// DefaultMaxAppendSize is the largest message APPEND accepts when Options.MaxAppendSize is zero
// (advertised as APPENDLIMIT, RFC 7889).
const DefaultMaxAppendSize = 64 << 20

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("imapserver: server closed")

// Options configure a Server.
type Options struct {
	// Username is the one user name this server accepts (LOGIN, AUTHENTICATE PLAIN), compared
	// case-insensitively; DefaultUsername if empty. The node sets it to the account's address or
	// leaves the default; either way the password is the secret.
	Username string
	// Password is the account's IMAP password, compared in constant time. If empty, every login fails.
	Password string
	// TLSConfig enables STARTTLS (RFC 3501 §6.2.1) when set. Connections from a TLS listener
	// (tls.NewListener) are TLS from the start and need no STARTTLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth reports whether a connection from remote may log in without TLS. Nil means
	// loopback only: loopback IP addresses, Unix sockets and in-process pipes. On other connections the
	// server advertises LOGINDISABLED and refuses LOGIN and AUTHENTICATE with [PRIVACYREQUIRED] until
	// STARTTLS (RFC 3501 §6.2.3, RFC 9051 §6.2.3), so a client never sends a password in clear text.
	AllowInsecureAuth func(remote net.Addr) bool
	// Logger receives connection events and internal errors, never message content or passwords.
	// slog.Default() if nil.
	Logger *slog.Logger
	// Penalty delays logins from sources that recently failed to log in; the node shares one among its
	// front doors. A penalty of its own (the defaults) if nil.
	Penalty *loginpenalty.Penalty
	// MaxAppendSize is the largest message APPEND accepts, in bytes; DefaultMaxAppendSize if zero.
	// At most 4 GiB - 1 (APPENDLIMIT is a 32-bit number).
	MaxAppendSize int64
}

// Server is an IMAP server for one account's store. Create it with New, run it with Serve, stop it
// with Close.
type Server struct {
	st        *store.Store
	opts      Options
	log       *slog.Logger
	appendMax uint32
	secret    loginpenalty.Secret
	penalty   *loginpenalty.Penalty

	ctx    context.Context // canceled by Close; parent of every session's context
	cancel context.CancelFunc

	// Two go-imap servers that differ only in InsecureAuth: connections that may log in without TLS
	// go to local, the others to remote. go-imap decides LOGINDISABLED per server, not per
	// connection, so this is how the decision becomes per connection.
	local, remote     *goimap.Server
	localLn, remoteLn *handoff.Listener
	startOnce         sync.Once
	innerDone         sync.WaitGroup // the two go-imap Serve loops

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}

	sessions sync.WaitGroup
	panics   atomic.Int64 // panics go-imap recovered (tests assert zero)
}

// New returns a server for the account whose mailboxes st holds. It does not listen: call Serve.
func New(st *store.Store, opts Options) *Server {
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.AllowInsecureAuth == nil {
		opts.AllowInsecureAuth = IsLocal
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	max := opts.MaxAppendSize
	if max <= 0 {
		max = DefaultMaxAppendSize
	}
	if max > 1<<32-1 {
		max = 1<<32 - 1
	}
	if opts.Penalty == nil {
		opts.Penalty = loginpenalty.New(loginpenalty.Options{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		st:        st,
		opts:      opts,
		log:       log,
		appendMax: uint32(max),
		secret:    loginpenalty.NewSecret(opts.Password),
		penalty:   opts.Penalty,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		localLn:   handoff.New(),
		remoteLn:  handoff.New(),
	}
	mk := func(insecure bool) *goimap.Server {
		return goimap.New(&goimap.Options{
			NewSession:   s.newSession,
			Caps:         capabilities(),
			Logger:       goimapLogger{s},
			TLSConfig:    opts.TLSConfig,
			InsecureAuth: insecure,
		})
	}
	s.local, s.remote = mk(true), mk(false)
	return s
}

// capabilities is what the server supports beyond what go-imap always advertises (SASL-IR,
// LITERAL-, ENABLE, IDLE, UNSELECT, UTF8=ACCEPT) and APPENDLIMIT=n, which comes from the session.
func capabilities() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:    {}, // RFC 3501
		imap.CapIMAP4rev2:    {}, // RFC 9051
		imap.CapNamespace:    {}, // RFC 2342
		imap.CapUIDPlus:      {}, // RFC 4315
		imap.CapESearch:      {}, // RFC 4731
		imap.CapSearchRes:    {}, // RFC 5182
		imap.CapListExtended: {}, // RFC 5258
		imap.CapListStatus:   {}, // RFC 5819
		imap.CapMove:         {}, // RFC 6851
		imap.CapStatusSize:   {}, // RFC 8438
		imap.CapBinary:       {}, // RFC 3516
		imap.CapChildren:     {}, // RFC 3348
		imap.CapSpecialUse:   {}, // RFC 6154
		imap.CapLiteralPlus:  {}, // RFC 7888
		imap.CapAppendLimit:  {}, // RFC 7889
		imap.Cap("ID"):       {}, // RFC 2971, answered by cmdConn
	}
}

// IsLocal reports whether remote is a loopback IP address, a Unix socket or an in-process pipe: the
// default AllowInsecureAuth.
func IsLocal(remote net.Addr) bool {
	if remote == nil {
		return false
	}
	switch remote.Network() {
	case "unix", "unixpacket", "pipe":
		return true
	}
	var ip netip.Addr
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(remote.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	return ip.Unmap().IsLoopback()
}

// Serve accepts connections on ln until Close (then it returns ErrServerClosed) or until ln fails.
// It may be called for several listeners; ln is closed by Close.
func (s *Server) Serve(ln net.Listener) error {
	s.startOnce.Do(func() {
		s.innerDone.Add(2)
		go func() { defer s.innerDone.Done(); s.local.Serve(s.localLn) }()
		go func() { defer s.innerDone.Done(); s.remote.Serve(s.remoteLn) }()
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("imap accept", "err", err, "retry", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("imapserver: accept: %w", err)
		}
		delay = 0
		s.dispatch(c)
	}
}

// dispatch hands a new connection to the go-imap server that matches its authentication policy.
func (s *Server) dispatch(c net.Conn) {
	local := s.opts.AllowInsecureAuth(c.RemoteAddr())
	ln := s.remoteLn
	if local {
		ln = s.localLn
	}
	if _, isTLS := c.(*tls.Conn); !isTLS {
		// See cmdConn: it answers STARTTLS itself, so go-imap never sees TLS on these connections;
		// they all go to the server that allows login without TLS, and Login and cmdConn enforce
		// TLS for clients that are not local. Connections that are TLS already stay as they are.
		cc := newCmdConn(c)
		cc.tlsConfig, cc.needsTLS = s.opts.TLSConfig, !local
		cc.capRewrite.Store(cc.tlsConfig != nil || cc.needsTLS)
		c, ln = cc, s.localLn
	}
	if !ln.Push(c) {
		c.Close()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the listeners given to Serve, closes every connection and waits (a few seconds at most)
// for the sessions to end. The store stays open: it is the caller's.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	for ln := range s.listeners {
		if cerr := ln.Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	s.mu.Unlock()
	s.cancel()
	s.startOnce.Do(func() {}) // Serve was never called: nothing to start any more
	// Stop the go-imap accept loops first and wait for them: go-imap's Close must not overlap the
	// start of its Serve. Then its Close closes the connections.
	s.localLn.Close()
	s.remoteLn.Close()
	s.innerDone.Wait()
	s.local.Close()
	s.remote.Close()

	done := make(chan struct{})
	go func() { s.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("imap close: sessions still running")
	}
	return err
}

// goimapLogger turns go-imap's log lines into slog records. go-imap logs panics it recovered (per
// connection), commands that failed with an error that is not an IMAP status, and I/O errors; none
// of them carry message content (the protocol trace, DebugWriter, is never enabled).
type goimapLogger struct{ s *Server }

func (l goimapLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "panic") {
		l.s.panics.Add(1)
		l.s.log.Error("imap: recovered panic", "detail", msg)
		return
	}
	l.s.log.Debug("imap: " + msg)
}
