package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
)

// Outbound relay defaults (protocol.md §15.4).
const (
	DefaultRelayPerHour  = 100
	DefaultRelayMaxAge   = 5 * 24 * time.Hour
	DefaultRelayMinRetry = time.Minute
	DefaultRelayMaxRetry = time.Hour
	DefaultSMTPPort      = 25
)

// RelayConfig configures the outbound half of the gateway: mail from tanglemail users with an active
// claim to Internet recipients (protocol.md §15.4).
type RelayConfig struct {
	// DKIMKey signs outbound mail for the claim's domain (the key of the DNS record the node prints);
	// DKIMSelector is its selector. Required.
	DKIMKey      crypto.Signer
	DKIMSelector string
	Resolver     Resolver // MX and address lookups; nil: the gateway's Config.Resolver
	// Port is the SMTP port of the recipients' MX hosts; default 25 (tests use another: MX records
	// cannot carry a port).
	Port     int
	PerHour  int           // messages accepted per claimed address and hour; default DefaultRelayPerHour
	MaxAge   time.Duration // a recipient not delivered by then fails (4.4.7); default DefaultRelayMaxAge
	MinRetry time.Duration // first retry delay, doubling per attempt; default DefaultRelayMinRetry
	MaxRetry time.Duration // largest retry delay; default DefaultRelayMaxRetry
	Timeout  time.Duration // per SMTP command (connect included); default 5 minutes (RFC 5321 §4.5.3.2)
	// DeliveredReports sends a DSN with Action: delivered to the sender for each delivered recipient;
	// the node sets it (the default of "tanglemail gateway").
	DeliveredReports bool
}

// Relay is the gateway's outbound side: it takes relay messages from tanglemail users (Submit), keeps
// them in a durable queue (relay.db) and delivers them by MX lookup (Run). Reports go back to the
// sender through Config.Queue (sealed by the gateway). Safe for concurrent use: the queue is SQLite
// with one writer connection; Run is one goroutine; the wake channel has room for one signal.
type Relay struct {
	g    *Gateway
	cfg  RelayConfig
	q    *relayQueue
	log  *slog.Logger
	wake chan struct{}

	mu                sync.Mutex
	delivered, failed int64
	refused, retried  int64
}

// ErrRelayRefused is returned by Submit for a request the gateway answered with a DSN instead of
// queueing it (no claim, rate limit, malformed): the request is settled, the caller drops it.
var ErrRelayRefused = errors.New("gateway: relay request refused")

// NewRelay opens the outbound queue in the gateway's directory.
func (g *Gateway) NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.DKIMKey == nil || cfg.DKIMSelector == "" {
		return nil, errors.New("gateway: relay needs a DKIM key and selector")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = g.cfg.Resolver
	}
	cfg.Port = orDefault(cfg.Port, DefaultSMTPPort)
	cfg.PerHour = orDefault(cfg.PerHour, DefaultRelayPerHour)
	cfg.MaxAge = orDefault(cfg.MaxAge, DefaultRelayMaxAge)
	cfg.MinRetry = orDefault(cfg.MinRetry, DefaultRelayMinRetry)
	cfg.MaxRetry = orDefault(cfg.MaxRetry, DefaultRelayMaxRetry)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	q, err := openRelayQueue(filepath.Join(g.cfg.Dir, RelayFile))
	if err != nil {
		return nil, err
	}
	return &Relay{g: g, cfg: cfg, q: q, log: g.log, wake: make(chan struct{}, 1)}, nil
}

// Close closes the queue (after Run has returned).
func (r *Relay) Close() error { return r.q.close() }

// RelayStats are the relay's counts since start, and the queue's length.
type RelayStats struct {
	Delivered, Failed, Refused, Retried int64
	Pending                             int
}

// Stats returns the relay's counts.
func (r *Relay) Stats(ctx context.Context) RelayStats {
	n, _ := r.q.pending(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStats{Delivered: r.delivered, Failed: r.failed, Refused: r.refused, Retried: r.retried, Pending: n}
}

// ClaimsOf returns the addresses claimant holds, oldest first.
func (c *Claims) ClaimsOf(ctx context.Context, claimant identity.Address) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT addr FROM claim WHERE claimant = ? ORDER BY created, addr`, claimant.Binary())
	if err != nil {
		return nil, fmt.Errorf("gateway: claims: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("gateway: claims: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Submit takes a relay message (protocol.md §15.4) that sender sealed to the gateway. It returns nil
// once the signed message is durably queued for every recipient (or was before: the same request
// again is queued once); ErrRelayRefused once a refusal DSN is durably queued to the sender (no claim,
// rate limit, malformed); any other error means nothing was settled and the caller retries.
func (r *Relay) Submit(ctx context.Context, sender identity.Address, raw []byte) error {
	now := r.g.now()
	key := relayKey(sender, raw)
	if seen, err := r.q.seen(ctx, key); err != nil || seen {
		return err
	}
	rcpts, msg, err := mail.ParseRelay(raw)
	if err != nil {
		return r.refuse(ctx, key, sender, raw, nil, mail.Reason{Status: "5.6.0", Text: "the gateway could not read the relay request"}, now)
	}
	claims, err := r.g.claims.ClaimsOf(ctx, sender)
	if err != nil {
		return err
	}
	if len(claims) == 0 {
		r.log.Info("gateway: relay refused: sender holds no claim", "recipients", len(rcpts))
		r.log.Debug("gateway: relay refused: sender holds no claim", "sender", sender.Mail())
		return r.refuse(ctx, key, sender, msg, rcpts, mail.Reason{Status: "5.7.1",
			Text: "you hold no address on this gateway: claim one before sending Internet mail through it"}, now)
	}
	from := claims[0]
	if m, err := mail.Parse(msg); err == nil && len(m.From) == 1 {
		for _, c := range claims {
			if strings.EqualFold(m.From[0].Address, c) {
				from = c
			}
		}
	}
	n, err := r.q.sentSince(ctx, from, now.Add(-time.Hour))
	if err != nil {
		return err
	}
	if n >= r.cfg.PerHour {
		r.log.Info("gateway: relay refused: claim over its hourly limit", "limit", r.cfg.PerHour)
		return r.refuse(ctx, key, sender, msg, rcpts, mail.Reason{Status: "5.7.0",
			Text: fmt.Sprintf("more than %d messages in an hour from %s: send it again later", r.cfg.PerHour, from)}, now)
	}
	body, err := r.prepare(from, msg, now)
	if err != nil {
		return r.refuse(ctx, key, sender, msg, rcpts, mail.Reason{Status: "5.6.0", Text: "the message could not be signed: " + err.Error()}, now)
	}
	added, err := r.q.add(ctx, key, sender, from, rcpts, body, now)
	clear(body)
	if err != nil {
		return fmt.Errorf("gateway: relay queue: %w", err)
	}
	if added {
		r.log.Info("gateway: relay queued", "recipients", len(rcpts), "bytes", len(msg))
		r.log.Debug("gateway: relay queued", "from", from, "rcpts", rcpts)
		r.Notify()
	}
	return nil
}

// refuse answers a request with a failure DSN per recipient (one for the request when rcpts is nil),
// durably queued to the sender, and records the request as seen.
func (r *Relay) refuse(ctx context.Context, key []byte, sender identity.Address, msg []byte, rcpts []string, reason mail.Reason, now time.Time) error {
	if rcpts == nil {
		rcpts = []string{"(relay request)"}
	}
	for _, rc := range rcpts {
		if err := r.report(ctx, sender, msg, rc, reason, false, now); err != nil {
			return err
		}
	}
	if err := r.q.markSeen(ctx, key, now); err != nil {
		return err
	}
	r.mu.Lock()
	r.refused++
	r.mu.Unlock()
	return ErrRelayRefused
}

// prepare makes the message the Internet sees: the claimed address as From (the user's From, Sender
// and Return-Path removed, its display name kept), a Received field, and the DKIM signature of the
// claim's domain over it all (RFC 6376, relaxed/relaxed, rsa-sha256).
func (r *Relay) prepare(from string, msg []byte, now time.Time) ([]byte, error) {
	name := ""
	if m, err := mail.Parse(msg); err == nil && len(m.From) == 1 {
		name = m.From[0].Name
	}
	msg = removeFields(msg, "From", "Sender", "Return-Path", "Received", "DKIM-Signature")
	var id [8]byte
	rand.Read(id[:])
	_, domain, _ := strings.Cut(from, "@")
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from tanglemail by %s (tanglemail gateway) with ESMTPSA id %s;\r\n\t%s\r\n",
		r.g.cfg.Hostname, hex.EncodeToString(id[:]), now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s\r\n", (&gomail.Address{Name: name, Address: from}).String())
	b.Write(msg)
	var signed bytes.Buffer
	err := dkim.Sign(&signed, bytes.NewReader(b.Bytes()), &dkim.SignOptions{
		Domain: domain, Selector: r.cfg.DKIMSelector, Signer: r.cfg.DKIMKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
			"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Reply-To"},
	})
	clear(b.Bytes())
	if err != nil {
		return nil, err
	}
	return signed.Bytes(), nil
}

// removeFields returns raw without the header fields named (any case), continuation lines included.
func removeFields(raw []byte, names ...string) []byte {
	out := make([]byte, 0, len(raw))
	skip := false
	rest := raw
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if len(bytes.TrimRight(line, "\r\n")) == 0 { // end of the header section
			out = append(out, line...)
			out = append(out, rest...)
			return out
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skip {
				out = append(out, line...)
			}
			continue
		}
		skip = false
		if n, _, ok := bytes.Cut(line, []byte(":")); ok {
			for _, name := range names {
				if strings.EqualFold(strings.TrimSpace(string(n)), name) {
					skip = true
				}
			}
		}
		if !skip {
			out = append(out, line...)
		}
	}
	return out
}

// Notify wakes Run (a message was queued).
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
