package storage

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/core/peer"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/supervise"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

//go:embed migrations/*.sql
var migrations embed.FS

var schema = sqlitedb.Schema{FS: migrations, Dir: "migrations"}

// FileName is the provider's database in the node's data directory.
const FileName = "storage.db"

const (
	mib = 1 << 20
	day = 24 * time.Hour
)

// Publisher hands a validated block to the network (*p2p.Node): it stores and gossips it.
type Publisher interface {
	Publish(ctx context.Context, b *tangle.Block) error
}

// TipSource selects parents for a new block of a shard (*dag.Store).
type TipSource interface {
	SelectParents(shard uint32, n int) []tangle.ID
}

// Config configures a Provider. Zero values take the defaults noted.
type Config struct {
	Dir    string // the directory of storage.db (created 0700)
	Params tangle.Params
	Now    func() time.Time // default time.Now
	Log    *slog.Logger

	// CapBytes is the global disk cap: the sum of the active subscriptions' quotas may not exceed it
	// (admission), and stored bytes never exceed it. Default 1 GiB.
	CapBytes int64
	// MaxQuotaMiB and MaxRetentionDays bound a request (defaults 1024 and 365); DefaultQuotaMiB and
	// DefaultRetentionDays fill a request's zeros (64 and 30).
	MaxQuotaMiB, MaxRetentionDays         uint32
	DefaultQuotaMiB, DefaultRetentionDays uint32
	// MaxSubs bounds subscriptions in all states (default 10,000); MaxPerKey the subscriptions of one
	// key (default 1: a fresh key per subscription); MaxPerAddr the subscriptions created from one IP
	// address per day (default 8; counted in memory only, never stored).
	MaxSubs, MaxPerKey, MaxPerAddr int
	// Allow lists subscription keys the operator activates without a grant (--storage-allow), for
	// AllowDays (default 365).
	Allow     []ed25519.PublicKey
	AllowDays uint32
	// PendingTTL: a pending subscription not activated within it is deleted (default 24 h).
	// ExpiredGrace: an expired subscription's blocks are kept this long for a renewal, unserved
	// (default 7 days).
	PendingTTL, ExpiredGrace time.Duration
	// PruneInterval is the period of Run's pruning (default 1 min).
	PruneInterval time.Duration

	// Public enables publish and tips for clients (a public node); Publisher and Tips must be set.
	Public    bool
	Publisher Publisher
	Tips      TipSource
	// PublishRate (blocks/s) and PublishBurst bound each client's (IP address's) publishing; defaults
	// 5 and 50.
	PublishRate  float64
	PublishBurst int

	// MaxStreams bounds concurrent inbound streams (default 256); IdleTimeout closes a request stream
	// idle that long (default 2 min).
	MaxStreams  int
	IdleTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.CapBytes <= 0 {
		c.CapBytes = 1 << 30
	}
	def(&c.MaxQuotaMiB, 1024)
	def(&c.MaxRetentionDays, 365)
	def(&c.DefaultQuotaMiB, 64)
	def(&c.DefaultRetentionDays, 30)
	def(&c.AllowDays, 365)
	defi(&c.MaxSubs, 10000)
	defi(&c.MaxPerKey, 1)
	defi(&c.MaxPerAddr, 8)
	defi(&c.PublishBurst, 50)
	defi(&c.MaxStreams, 256)
	defd(&c.PendingTTL, day)
	defd(&c.ExpiredGrace, 7*day)
	defd(&c.PruneInterval, time.Minute)
	defd(&c.IdleTimeout, 2*time.Minute)
	if c.PublishRate <= 0 {
		c.PublishRate = 5
	}
}

// sub is a subscription's cached row.
type sub struct {
	id        wire.SubID
	prefix    wire.Prefix
	key       ed25519.PublicKey
	retention uint32
	quota     uint64
	state     wire.SubState
	until     int64 // Unix ms
	created   int64
	nextSeq   uint64
	used      uint64
	blocks    uint64
	refused   uint64
}

func (s *sub) status() wire.Status {
	st := wire.Status{ID: s.id, State: s.state, UsedBytes: s.used, QuotaBytes: s.quota, Blocks: s.blocks,
		Prefix: s.prefix, RetentionDays: s.retention}
	if s.until != 0 {
		st.Expires = time.UnixMilli(s.until).UTC()
	}
	return st
}

// Provider is the storage service (package doc). Its methods are safe for concurrent use.
type Provider struct {
	cfg  Config
	log  *slog.Logger
	path string
	w    *sql.DB // the writer: one connection, BEGIN IMMEDIATE
	r    *sql.DB // readers

	wmu sync.Mutex // serialises write transactions and the cache updates that follow them

	mu       sync.Mutex
	subs     map[wire.SubID]*sub
	used     uint64 // stored bytes, all subscriptions
	watchers map[wire.SubID]map[chan wire.Pushed]struct{}
	authed   map[peer.ID]wire.SubID // the subscription each peer last authenticated for (Subscriber)
	perAddr  map[string][]time.Time
	limiter  *buckets

	streams chan struct{}
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	ctr     counters
}

// Errors of the provider's own API (the wire carries *wire.Error).
var (
	ErrClosed   = errors.New("storage: provider closed")
	ErrNotFound = errors.New("storage: no such subscription")
	ErrInvalid  = errors.New("storage: invalid request")
)

// Open opens (creating) storage.db in cfg.Dir and loads the subscriptions.
func Open(cfg Config) (*Provider, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("storage: no directory")
	}
	if cfg.Public && (cfg.Publisher == nil || cfg.Tips == nil) {
		return nil, errors.New("storage: a public provider needs a publisher and a tip source")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	path := filepath.Join(cfg.Dir, FileName)
	common := []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}
	w, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{Pragmas: common, Immediate: true, MaxConns: 1, Mode: 0o600}, schema)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	r, err := sqlitedb.Open(path, sqlitedb.Options{Pragmas: append(common[:2:2], "query_only(1)"), MaxConns: 4})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("storage: open: %w", err)
	}
	p := &Provider{cfg: cfg, log: cfg.Log.With("component", "storage"), path: path, w: w, r: r,
		subs: map[wire.SubID]*sub{}, watchers: map[wire.SubID]map[chan wire.Pushed]struct{}{},
		authed:  map[peer.ID]wire.SubID{},
		perAddr: map[string][]time.Time{}, limiter: newBuckets(cfg.PublishRate, cfg.PublishBurst),
		streams: make(chan struct{}, cfg.MaxStreams), closed: make(chan struct{})}
	if err := p.load(context.Background()); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Provider) load(ctx context.Context) error {
	rows, err := p.w.QueryContext(ctx, `SELECT id, prefix_bits, prefix_tag, pubkey, retention_days, quota_bytes,
		state, active_until, created_at, next_seq, used_bytes, blocks, refused FROM subs`)
	if err != nil {
		return fmt.Errorf("storage: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s sub
		var id, tag, key []byte
		if err := rows.Scan(&id, &s.prefix.Bits, &tag, &key, &s.retention, &s.quota, &s.state, &s.until,
			&s.created, &s.nextSeq, &s.used, &s.blocks, &s.refused); err != nil {
			return fmt.Errorf("storage: load: %w", err)
		}
		copy(s.id[:], id)
		copy(s.prefix.Tag[:], tag)
		s.key = ed25519.PublicKey(key)
		p.subs[s.id] = &s
		p.used += s.used
	}
	return rows.Err()
}

// Close stops serving and closes the database. Streams in progress are reset.
func (p *Provider) Close() error {
	var err error
	p.once.Do(func() {
		p.mu.Lock()
		close(p.closed)
		p.mu.Unlock()
		p.wg.Wait()
		p.wmu.Lock()
		defer p.wmu.Unlock()
		err = errors.Join(p.r.Close(), p.w.Close())
	})
	return err
}

func (p *Provider) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

// Run prunes every PruneInterval until ctx ends (panics are recovered and counted by supervise).
func (p *Provider) Run(ctx context.Context) error {
	return supervise.Run(ctx, p.log, "storage_prune", &p.ctr.panics, func(ctx context.Context) error {
		t := time.NewTicker(p.cfg.PruneInterval)
		defer t.Stop()
		for {
			if _, err := p.Prune(ctx); err != nil && !p.isClosed() {
				p.log.Warn("storage: prune failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-p.closed:
				return nil
			case <-t.C:
			}
		}
	})
}

// Grant creates an operator's one-time token that activates one subscription of at most quotaMiB for
// days days. Only its SHA-256 is stored.
func (p *Provider) Grant(ctx context.Context, quotaMiB, days uint32) (string, error) {
	if quotaMiB == 0 || quotaMiB > p.cfg.MaxQuotaMiB || days == 0 || days > 3650 {
		return "", fmt.Errorf("%w: a grant needs 1..%d MiB and 1..3650 days (got %d MiB, %d days)", ErrInvalid, p.cfg.MaxQuotaMiB, quotaMiB, days)
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := "tmg_" + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(tok))
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.isClosed() {
		return "", ErrClosed
	}
	_, err := p.w.ExecContext(ctx, `INSERT INTO grants (token_hash, quota_bytes, days, created_at) VALUES (?, ?, ?, ?)`,
		h[:], uint64(quotaMiB)*mib, days, p.cfg.Now().UnixMilli())
	if err != nil {
		return "", fmt.Errorf("storage: grant: %w", err)
	}
	p.ctr.grants.Add(1)
	return tok, nil
}

// Activate makes subscription id active until until (the seam for payments: called after a verified
// payment; also by grants and the allowlist). An active subscription's expiry only moves later. It
// refuses when the active quotas would exceed the disk cap.
func (p *Provider) Activate(ctx context.Context, id wire.SubID, until time.Time) error {
	return p.ActivateQuota(ctx, id, until, 0)
}

// CanRaise says whether subscription id's quota may grow to quotaMiB MiB now (the provider's bound
// and disk cap), before a top-up is quoted.
func (p *Provider) CanRaise(id wire.SubID, quotaMiB uint32) error {
	if quotaMiB > p.cfg.MaxQuotaMiB {
		return fmt.Errorf("a quota of %d MiB is above the provider's %d MiB", quotaMiB, p.cfg.MaxQuotaMiB)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[id]
	if !ok {
		return ErrNotFound
	}
	committed := p.activeQuotaLocked()
	if s.state == wire.Active {
		committed -= s.quota
	}
	if committed+max(s.quota, uint64(quotaMiB)*mib) > uint64(p.cfg.CapBytes) {
		return errors.New("the provider's disk cap is committed: no room for that quota")
	}
	return nil
}

// ActivateQuota is Activate that also raises the subscription's quota to quotaMiB (a paid top-up,
// protocol.md §14.5); a quota only grows, and 0 keeps it. Idempotent: the same call twice leaves the
// same state.
func (p *Provider) ActivateQuota(ctx context.Context, id wire.SubID, until time.Time, quotaMiB uint32) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	if quotaMiB > p.cfg.MaxQuotaMiB {
		return wire.Errorf(wire.CodeRefused, "a quota of %d MiB is above the provider's %d MiB", quotaMiB, p.cfg.MaxQuotaMiB)
	}
	p.mu.Lock()
	s, ok := p.subs[id]
	var committed, quota uint64
	if ok {
		committed = p.activeQuotaLocked()
		if s.state == wire.Active {
			committed -= s.quota
		}
		quota = max(s.quota, uint64(quotaMiB)*mib)
	}
	p.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	if quota > s.quota && committed+quota > uint64(p.cfg.CapBytes) {
		// The raise was quoted when it fitted (CanRaise) and no longer does: the paid period is kept,
		// the quota stays; the counted payment must not stay unactivated.
		p.cfg.Log.Warn("storage: a paid quota raise no longer fits the disk cap; quota kept", "mib", quotaMiB)
		quota = s.quota
	}
	if s.state != wire.Active && committed+quota > uint64(p.cfg.CapBytes) {
		return wire.Errorf(wire.CodeQuotaFull, "the provider's disk cap is committed")
	}
	u := until.UnixMilli()
	if s.state == wire.Active && s.until > u {
		u = s.until
	}
	if _, err := p.w.ExecContext(ctx, `UPDATE subs SET state = ?, active_until = ?, quota_bytes = ? WHERE id = ?`, wire.Active, u, quota, id[:]); err != nil {
		return fmt.Errorf("storage: activate: %w", err)
	}
	p.mu.Lock()
	s.state, s.until, s.quota = wire.Active, u, quota
	p.mu.Unlock()
	return nil
}

func (p *Provider) activeQuotaLocked() uint64 {
	var q uint64
	for _, s := range p.subs {
		if s.state == wire.Active {
			q += s.quota
		}
	}
	return q
}

func hashEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// create makes a subscription (the Create request); addr is the client's IP address, used only for the
// in-memory per-address limit.
func (p *Provider) create(ctx context.Context, req wire.CreateRequest, addr string) (wire.SubID, wire.SubState, error) {
	cfg := &p.cfg
	if len(req.Key) != ed25519.PublicKeySize {
		return wire.SubID{}, 0, wire.Errorf(wire.CodeMalformed, "subscription key of %d bytes", len(req.Key))
	}
	if req.QuotaMiB == 0 {
		req.QuotaMiB = cfg.DefaultQuotaMiB
	}
	if req.RetentionDays == 0 {
		req.RetentionDays = cfg.DefaultRetentionDays
	}
	if req.QuotaMiB > cfg.MaxQuotaMiB || req.RetentionDays > cfg.MaxRetentionDays {
		return wire.SubID{}, 0, wire.Errorf(wire.CodeRefused, "at most %d MiB and %d days per subscription", cfg.MaxQuotaMiB, cfg.MaxRetentionDays)
	}
	quota := uint64(req.QuotaMiB) * mib
	now := cfg.Now()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.isClosed() {
		return wire.SubID{}, 0, ErrClosed
	}
	p.mu.Lock()
	n, perKey := len(p.subs), 0
	for _, s := range p.subs {
		if hashEqual(s.key, req.Key) {
			perKey++
		}
	}
	recent := p.recentCreatesLocked(addr, now)
	p.mu.Unlock()
	if n >= cfg.MaxSubs {
		return wire.SubID{}, 0, wire.Errorf(wire.CodeRefused, "the provider holds its maximum of subscriptions")
	}
	if perKey >= cfg.MaxPerKey {
		return wire.SubID{}, 0, wire.Errorf(wire.CodeRefused, "this key already holds %d subscription(s): use a fresh key per subscription", perKey)
	}
	if recent >= cfg.MaxPerAddr {
		return wire.SubID{}, 0, wire.Errorf(wire.CodeRefused, "too many subscriptions from this address today")
	}

	state, until := wire.Pending, int64(0)
	var grantHash []byte
	allowed := false
	for _, k := range cfg.Allow {
		if hashEqual(k, req.Key) {
			allowed = true
		}
	}
	tx, err := p.w.BeginTx(ctx, nil)
	if err != nil {
		return wire.SubID{}, 0, fmt.Errorf("storage: create: %w", err)
	}
	defer tx.Rollback()
	switch {
	case req.Grant != "":
		h := sha256.Sum256([]byte(req.Grant))
		var gq uint64
		var days int64
		var usedBy []byte
		err := tx.QueryRowContext(ctx, `SELECT quota_bytes, days, used_by FROM grants WHERE token_hash = ?`, h[:]).Scan(&gq, &days, &usedBy)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && usedBy != nil) {
			p.ctr.grantRefused.Add(1)
			return wire.SubID{}, 0, wire.Errorf(wire.CodeRefused, "grant unknown or already used: ask the operator for a new one")
		}
		if err != nil {
			return wire.SubID{}, 0, fmt.Errorf("storage: create: %w", err)
		}
		if quota > gq {
			quota = gq
		}
		state, until, grantHash = wire.Active, now.Add(time.Duration(days)*day).UnixMilli(), h[:]
	case allowed:
		state, until = wire.Active, now.Add(time.Duration(cfg.AllowDays)*day).UnixMilli()
	}
	if state == wire.Active {
		p.mu.Lock()
		committed := p.activeQuotaLocked()
		p.mu.Unlock()
		if committed+quota > uint64(cfg.CapBytes) {
			return wire.SubID{}, 0, wire.Errorf(wire.CodeQuotaFull, "the provider's disk cap is committed: ask for a smaller quota")
		}
	}
	var id wire.SubID
	if _, err := rand.Read(id[:]); err != nil {
		return wire.SubID{}, 0, err
	}
	pfx := req.Prefix.Canonical()
	s := &sub{id: id, prefix: pfx, key: append(ed25519.PublicKey(nil), req.Key...), retention: req.RetentionDays,
		quota: quota, state: state, until: until, created: now.UnixMilli(), nextSeq: 1}
	if _, err := tx.ExecContext(ctx, `INSERT INTO subs (id, prefix_bits, prefix_tag, pubkey, retention_days, quota_bytes,
		state, active_until, created_at, next_seq, used_bytes, blocks, refused) VALUES (?,?,?,?,?,?,?,?,?,1,0,0,0)`,
		id[:], pfx.Bits, pfx.Tag[:], []byte(s.key), s.retention, s.quota, s.state, s.until, s.created); err != nil {
		return wire.SubID{}, 0, fmt.Errorf("storage: create: %w", err)
	}
	if grantHash != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET used_by = ? WHERE token_hash = ?`, id[:], grantHash); err != nil {
			return wire.SubID{}, 0, fmt.Errorf("storage: create: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return wire.SubID{}, 0, fmt.Errorf("storage: create: %w", err)
	}
	p.mu.Lock()
	p.subs[id] = s
	p.perAddr[addr] = append(p.perAddr[addr], now)
	p.mu.Unlock()
	p.ctr.created.Add(1)
	return id, state, nil
}

// recentCreatesLocked counts the subscriptions created from addr in the last day, and trims the table.
func (p *Provider) recentCreatesLocked(addr string, now time.Time) int {
	ts := p.perAddr[addr]
	keep := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < day {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		delete(p.perAddr, addr)
	} else {
		p.perAddr[addr] = keep
	}
	if len(p.perAddr) > 4096 { // bounded: forget the table rather than grow
		clear(p.perAddr)
	}
	return len(keep)
}

// lookup returns a copy of subscription id's cached state.
func (p *Provider) lookup(id wire.SubID) (sub, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[id]
	if !ok {
		return sub{}, false
	}
	return *s, true
}

// Subscriber reports whether peer authenticated on a storage stream (since the provider opened) for a
// subscription that may be served now: the node's blob service takes blob uploads only from them.
func (p *Provider) Subscriber(peer peer.ID) bool {
	_, err := p.subscriberOf(peer)
	return err == nil
}

// subscriberOf returns the subscription peer last authenticated for, if it may be served now:
// ErrNotFound, or usable's error.
func (p *Provider) subscriberOf(peer peer.ID) (wire.SubID, error) {
	p.mu.Lock()
	id, ok := p.authed[peer]
	p.mu.Unlock()
	if !ok {
		return id, ErrNotFound
	}
	s, ok := p.lookup(id)
	if !ok {
		return id, ErrNotFound
	}
	return id, p.usable(s)
}

// usable checks that s may be served now.
func (p *Provider) usable(s sub) error {
	switch {
	case s.state == wire.Pending:
		return wire.Errorf(wire.CodePending, "the subscription is not active yet (grant or payment missing)")
	case s.state == wire.Expired || s.until <= p.cfg.Now().UnixMilli():
		return wire.Errorf(wire.CodeExpired, "the subscription expired at %s: renew it", time.UnixMilli(s.until).UTC().Format(time.RFC3339))
	}
	return nil
}

// Lookup returns subscription id's state (for payments: the quota and retention it asked for, to
// price it before Activate), or ErrNotFound.
func (p *Provider) Lookup(id wire.SubID) (wire.Status, error) {
	s, ok := p.lookup(id)
	if !ok {
		return wire.Status{}, ErrNotFound
	}
	return s.status(), nil
}

// Subscription is a subscription as the operator sees it (no key, no client address).
type Subscription = wire.Status

// Subscriptions lists the subscriptions' states.
func (p *Provider) Subscriptions() []Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Subscription, 0, len(p.subs))
	for _, s := range p.subs {
		out = append(out, s.status())
	}
	return out
}

// Stats is the provider's summary for status pages and the API.
type Stats struct {
	Pending, Active, Expired int
	StoredBytes              uint64
	CommittedBytes           uint64 // the active subscriptions' quotas
	CapBytes                 uint64
	Public                   bool
}

// Stats returns the provider's summary.
func (p *Provider) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{StoredBytes: p.used, CommittedBytes: p.activeQuotaLocked(), CapBytes: uint64(p.cfg.CapBytes), Public: p.cfg.Public}
	for _, s := range p.subs {
		switch s.state {
		case wire.Pending:
			st.Pending++
		case wire.Active:
			st.Active++
		case wire.Expired:
			st.Expired++
		}
	}
	return st
}

type counters struct {
	panics, grants, grantRefused, created, authFail, authOK atomic.Uint64
	stored, storedBytes, refusedQuota, released, fetched    atomic.Uint64
	published, publishRefused, pushDropped                  atomic.Uint64
}
