package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Defaults of a real MX (RFC 5321 §4.5.3: at least 100 recipients; §4.5.3.2: 5-minute timeouts).
const (
	DefaultMaxMessageBytes = 10 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxConns        = 200
	DefaultMaxConnsPerIP   = 10
	DefaultMsgsPerIPMinute = 60
	DefaultTimeout         = 5 * time.Minute
)

// Queue seals and durably queues a message for addresses, returning a queue id for logs.
type Queue func(ctx context.Context, to []identity.Address, msg []byte) (int64, error)

// Config says how to run a gateway. Identity, Queue, Dir and Domains are required.
type Config struct {
	Identity *identity.Identity // the gateway node's identity (claims are bound to its address)
	// Queue seals msg to every address and commits the sealed envelopes; it returns once they are
	// durable (the node passes outbox.EnqueueSealed, so that engines meet only in node). msg is the
	// only copy of the plaintext: Queue must not store it.
	Queue    Queue
	Dir      string           // where gateway.db lives
	Domains  []string         // served domains
	Hostname string           // the MX host name (EHLO, Authentication-Results); default "mx."+Domains[0]
	Operator identity.Address // receives role mail (RFC 2142); zero: the gateway's own address
	Policy   Policy
	Resolver Resolver    // DNS for SPF/DKIM/DMARC; nil: net.DefaultResolver
	TLS      *tls.Config // STARTTLS; nil: not offered

	MaxMessageBytes int64         // default DefaultMaxMessageBytes
	MaxRecipients   int           // default DefaultMaxRecipients
	MaxConns        int           // concurrent connections in all; default DefaultMaxConns
	MaxConnsPerIP   int           // concurrent connections per client IP; default DefaultMaxConnsPerIP
	MsgsPerIPMinute int           // messages accepted per client IP per minute; default DefaultMsgsPerIPMinute
	Timeout         time.Duration // per command read/write; default DefaultTimeout

	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// Gateway is a running inbound gateway: claims, the claim API and the MX.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	claims *Claims
	smtp   *smtp.Server
	limits *limits
	now    func() time.Time

	mu       sync.Mutex
	accepted int64 // messages accepted (250), for Stats
	refused  int64 // messages refused after DATA (DMARC reject)
}

// New opens the claim table and prepares the MX; ServeSMTP and Handler run them.
func New(cfg Config) (*Gateway, error) {
	if cfg.Identity == nil || cfg.Queue == nil || cfg.Dir == "" || len(cfg.Domains) == 0 {
		return nil, errors.New("gateway: identity, queue, directory and domains are required")
	}
	for i, d := range cfg.Domains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if err := CheckDomain(d); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		cfg.Domains[i] = d
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mx." + cfg.Domains[0]
	}
	if cfg.Operator.Key == nil {
		cfg.Operator = cfg.Identity.Address()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxMessageBytes = orDefault(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	cfg.MaxRecipients = orDefault(cfg.MaxRecipients, DefaultMaxRecipients)
	cfg.MaxConns = orDefault(cfg.MaxConns, DefaultMaxConns)
	cfg.MaxConnsPerIP = orDefault(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.MsgsPerIPMinute = orDefault(cfg.MsgsPerIPMinute, DefaultMsgsPerIPMinute)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	claims, err := OpenClaims(filepath.Join(cfg.Dir, ClaimsFile), cfg.Identity.Address(), cfg.Domains, cfg.Operator, cfg.Policy)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, claims: claims, now: cfg.Now,
		limits: newLimits(cfg.MaxConns, cfg.MaxConnsPerIP, cfg.MsgsPerIPMinute, cfg.Now)}
	s := smtp.NewServer(smtp.BackendFunc(g.newSession))
	s.Domain = cfg.Hostname
	s.TLSConfig = cfg.TLS
	s.MaxMessageBytes = cfg.MaxMessageBytes
	s.MaxRecipients = cfg.MaxRecipients
	s.MaxLineLength = 2000
	s.ReadTimeout = cfg.Timeout
	s.WriteTimeout = cfg.Timeout
	s.EnableSMTPUTF8 = true
	s.ErrorLog = errorLog{g.log}
	g.smtp = s
	return g, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Claims is the gateway's claim table.
func (g *Gateway) Claims() *Claims { return g.claims }

// Hostname is the MX host name.
func (g *Gateway) Hostname() string { return g.cfg.Hostname }

// Domains are the served domains.
func (g *Gateway) Domains() []string { return g.claims.Domains() }

// ServeSMTP runs the MX on l until Close; the connection limits apply at accept.
func (g *Gateway) ServeSMTP(l net.Listener) error {
	err := g.smtp.Serve(g.limits.listener(l))
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the MX (open sessions are cut) and closes the claim table.
func (g *Gateway) Close() error {
	err := g.smtp.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, g.claims.Close())
}

// Stats are counts since start.
type Stats struct {
	Accepted, Refused int64
}

// Stats returns the gateway's counts.
func (g *Gateway) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{Accepted: g.accepted, Refused: g.refused}
}

// Handler is the claim API (protocol.md §15.1).
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /gateway", g.serveInfo)
	mux.HandleFunc("POST /claim", g.serveClaim)
	return mux
}

type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Debug("gateway: smtp: " + fmt.Sprintf(format, v...))
}
func (e errorLog) Println(v ...any) { e.log.Debug("gateway: smtp: " + fmt.Sprintln(v...)) }
