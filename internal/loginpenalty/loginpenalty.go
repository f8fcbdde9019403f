// Package loginpenalty owns the penalty for failed logins that every front door (IMAP, SMTP
// submission, the HTTP API) applies: a source that recently failed to log in waits before its next
// attempt is answered, with a delay that grows with its failures (2 s, 4 s, 8 s, then 15 s) and decays
// while it stops failing. It is modelled on Dovecot's auth penalty (auth-penalty.c).
//
// It delays and never locks out. Every local client shares one source (loopback), so a lockout would let
// anyone on the machine lock the owner out; with a delay the owner's right password still succeeds, only
// after the wait. The delay applies to every attempt from a penalised source, right or wrong, before the
// answer, so its length says nothing about the password. A success clears the source's penalty, as in
// Dovecot. Repeating the same wrong password does not raise the penalty (a client with an old saved
// password that retries is not an attack that gains anything).
//
// Sources are what an attacker cannot cheaply change: an IPv4 address, an IPv6 /64 (one customer's
// network), or "local" for loopback, Unix sockets and in-process pipes.
//
// Limits: attempts on parallel connections wait in parallel, so an attacker with c connections gets c
// attempts per 15 s, not one (Dovecot behaves the same). With the node's generated passwords (128 bits
// and more) guessing stays hopeless either way; the penalty cuts the rate of an attacker from thousands
// a second to c/15 per second.
//
// Locking: one mutex guards the table of sources; waits happen outside it. The table is bounded
// (Options.MaxSources): when it is full, sources whose penalty has decayed to nothing are dropped first,
// then the one that failed longest ago.
package loginpenalty

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Defaults (Dovecot's AUTH_PENALTY_INIT_SECS and AUTH_PENALTY_MAX_SECS).
const (
	DefaultInitial    = 2 * time.Second
	DefaultMax        = 15 * time.Second
	DefaultHalfLife   = 5 * time.Minute
	DefaultMaxSources = 10_000
	// maxFailures bounds a source's failure count, so that it decays within minutes once the attack
	// stops: 8 → 0 in four half-lives.
	maxFailures = 8
)

var (
	metricFailed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tanglemail_login_failures_total",
		Help: "Failed logins, per front door (imap, smtp, http).",
	}, []string{"door"})
	metricDelayed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tanglemail_login_delayed_total",
		Help: "Login attempts delayed by a failed-login penalty, per front door.",
	}, []string{"door"})
)

// Source is where login attempts come from, as the penalty counts them (SourceOf).
type Source string

// Local is the source of every loopback, Unix socket and in-process connection.
const Local Source = "local"

// SourceOf returns the source of a connection's remote address: Local for loopback, Unix sockets and
// pipes, the address for IPv4, the /64 prefix for IPv6.
func SourceOf(remote net.Addr) Source {
	if remote == nil {
		return Local
	}
	switch remote.Network() {
	case "unix", "unixpacket", "pipe":
		return Local
	}
	var ip netip.Addr
	if a, ok := remote.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(a.IP)
	} else if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		ip = ap.Addr()
	} else {
		return Source(remote.String())
	}
	return sourceOfIP(ip)
}

// SourceOfHostPort is SourceOf for an address written "host:port" (http.Request.RemoteAddr).
func SourceOfHostPort(hostport string) Source {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		if ip, err := netip.ParseAddr(hostport); err == nil {
			return sourceOfIP(ip)
		}
		return Local // httptest and pipes: "pipe", "" and the like
	}
	return sourceOfIP(ap.Addr())
}

func sourceOfIP(ip netip.Addr) Source {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid() || ip.IsLoopback():
		return Local
	case ip.Is4():
		return Source(ip.String())
	}
	p, _ := ip.WithZone("").Prefix(64)
	return Source(p.String())
}

// Secret is a password as the front doors check it: its SHA-256, compared in constant time, so the
// comparison takes the same time whatever the given password's length.
type Secret struct {
	h   [32]byte
	set bool
}

// NewSecret returns the secret for password; the empty password matches nothing.
func NewSecret(password string) Secret {
	return Secret{h: sha256.Sum256([]byte(password)), set: password != ""}
}

// Matches reports, in constant time, whether given is the password.
func (s Secret) Matches(given string) bool {
	h := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(h[:], s.h[:]) == 1 && s.set
}

// Options configure New. Zero values take the defaults.
type Options struct {
	Initial    time.Duration // delay after the first failure; DefaultInitial
	Max        time.Duration // longest delay; DefaultMax
	HalfLife   time.Duration // a source's failure count halves each HalfLife without a failure; DefaultHalfLife
	MaxSources int           // sources remembered at once; DefaultMaxSources
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Sleep waits d or until ctx ends (then it returns ctx's error); a real timer if nil. Tests inject
	// one that records the delays and returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Penalty is the failed-login penalty of one node, shared by its front doors. It is safe for
// concurrent use.
type Penalty struct {
	opts Options
	key  [32]byte // keys the fingerprints of wrong passwords

	mu sync.Mutex
	m  map[Source]*entry
}

type entry struct {
	failures  int       // as of last
	last      time.Time // last failure
	lastWrong [16]byte  // keyed fingerprint of the last wrong password
}

// New returns a penalty table.
func New(opts Options) *Penalty {
	if opts.Initial <= 0 {
		opts.Initial = DefaultInitial
	}
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	if opts.HalfLife <= 0 {
		opts.HalfLife = DefaultHalfLife
	}
	if opts.MaxSources <= 0 {
		opts.MaxSources = DefaultMaxSources
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	p := &Penalty{opts: opts, m: map[Source]*entry{}}
	rand.Read(p.key[:])
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decayed is e's failure count at now.
func (p *Penalty) decayed(e *entry, now time.Time) int {
	halvings := now.Sub(e.last) / p.opts.HalfLife
	if halvings >= 8 {
		return 0
	}
	return e.failures >> max(halvings, 0)
}

// Delay is how long the next attempt from src waits.
func (p *Penalty) Delay(src Source) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[src]
	if e == nil {
		return 0
	}
	return p.delayFor(p.decayed(e, p.opts.Now()))
}

func (p *Penalty) delayFor(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := p.opts.Initial << min(failures-1, 30)
	return min(d, p.opts.Max)
}

// Attempt is one login attempt from src at door ("imap", "smtp", "http", for the metrics): it waits
// out src's penalty, then records the outcome (valid: the credentials were right; given: the password
// tried, only fingerprinted, so that repeating one wrong password does not raise the penalty) and
// returns valid. If ctx ends during the wait, it returns ctx's error and records nothing: the client
// has gone, and gets no answer.
//
// The wait comes before the answer, right password or wrong, so that its length says nothing about the
// password; compute valid in constant time (Secret.Matches).
func (p *Penalty) Attempt(ctx context.Context, door string, src Source, given string, valid bool) (bool, error) {
	if d := p.Delay(src); d > 0 {
		metricDelayed.WithLabelValues(door).Inc()
		if err := p.opts.Sleep(ctx, d); err != nil {
			return false, err
		}
	}
	if valid {
		p.succeeded(src)
	} else {
		metricFailed.WithLabelValues(door).Inc()
		p.failed(src, given)
	}
	return valid, nil
}

func (p *Penalty) succeeded(src Source) {
	p.mu.Lock()
	delete(p.m, src)
	p.mu.Unlock()
}

func (p *Penalty) failed(src Source, given string) {
	mac := hmac.New(sha256.New, p.key[:])
	mac.Write([]byte(given))
	var fp [16]byte
	copy(fp[:], mac.Sum(nil))

	now := p.opts.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[src]
	if e == nil {
		if len(p.m) >= p.opts.MaxSources {
			p.evict(now)
		}
		e = &entry{}
		p.m[src] = e
	} else if n := p.decayed(e, now); n > 0 && e.lastWrong == fp {
		// The same wrong password again: keep the penalty as it is (decayed), restart its clock.
		e.failures, e.last = n, now
		return
	}
	e.failures = min(p.decayed(e, now)+1, maxFailures)
	e.last = now
	e.lastWrong = fp
}

// evict makes room for one source: it drops the sources whose penalty has decayed to nothing, or else
// the one that failed longest ago. Called with mu held.
func (p *Penalty) evict(now time.Time) {
	var oldest Source
	var oldestAt time.Time
	for s, e := range p.m {
		if p.decayed(e, now) == 0 {
			delete(p.m, s)
			continue
		}
		if oldestAt.IsZero() || e.last.Before(oldestAt) {
			oldest, oldestAt = s, e.last
		}
	}
	if len(p.m) >= p.opts.MaxSources {
		delete(p.m, oldest)
	}
}
